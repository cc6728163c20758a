"""Shared fixtures: the real data in ``../shared/data`` (tests skip cleanly without it) and the bundled sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from valan.data import sample_path

SHARED_DATA = Path(os.environ.get("VALAN_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_r2r() -> Path:
    """Folder with the full R2R data (``R2R_*.json``, ``connectivity/``); skips the test when absent."""
    path = SHARED_DATA / "r2r"
    if not (path / "connectivity").is_dir():
        pytest.skip(f"real R2R data not found at {path} (set VALAN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_streetview() -> Path:
    """Folder with the StreetLearn graph and Touchdown/map2seq routes; skips the test when absent."""
    path = SHARED_DATA / "streetview"
    if not (path / "graph" / "nodes.txt").is_file():
        pytest.skip(f"real Street View data not found at {path} (set VALAN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def sample_connectivity() -> Path:
    return sample_path("connectivity")


@pytest.fixture(scope="session")
def sample_train() -> Path:
    return sample_path("R2R_sample_train.json")


@pytest.fixture(scope="session")
def sample_val() -> Path:
    return sample_path("R2R_sample_val_seen.json")


@pytest.fixture()
def one_torch_thread():
    """Small models on a shared 2-core machine: intra-op threads only add contention. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
