"""Bundled real data samples (installed as ``valan.data``); see README.md in this folder for attribution."""

from pathlib import Path


def sample_path(name: str) -> Path:
    """Filesystem path of a bundled sample file or folder, e.g. ``sample_path("connectivity")``. The package's own
    folder: valan installs as files (not from a zip), and ``importlib.resources`` would cost ~10 ms of imports on
    every command that names a default."""
    return Path(__file__).resolve().parent / name
