"""Visual feature stores: ``(group, node) -> (views, dim)`` float32 arrays.

``group`` is the Matterport3D scan for R2R and the graph name for Street View; ``node`` is the viewpoint or
panorama id. R2R panoramas have 36 views: 12 headings x 3 elevations, view index
``12 * elevation_level + heading_step`` with elevation levels -30, 0, +30 degrees and heading steps of 30 degrees
clockwise from heading 0.

Stores:
- ``SyntheticFeatures``: deterministic pseudo-random vectors derived from the ids. They carry **no visual
  information**; results obtained with them come from language and path geometry alone.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

R2R_VIEWS = 36
R2R_HEADINGS = 12
R2R_ELEVATIONS_DEG = (-30.0, 0.0, 30.0)


def r2r_view_index(elevation_level: int, heading_step: int) -> int:
    """View index of elevation level (0: -30, 1: 0, 2: +30 degrees) and heading step (30 degrees each)."""
    return R2R_HEADINGS * elevation_level + heading_step


class FeatureStore(ABC):
    """Per-node visual features of ``views`` views, each a ``dim``-vector."""

    views: int
    dim: int
    synthetic: bool = False

    @abstractmethod
    def get(self, group: str, node: str) -> np.ndarray:
        """Features of one node, shape ``(views, dim)`` float32; ``InputError`` when the node is missing."""

    def table(self, keys: Sequence[tuple[str, str]]) -> np.ndarray:
        """Stack the features of ``keys`` into a ``(len(keys), views, dim)`` float32 table."""
        out = np.empty((len(keys), self.views, self.dim), dtype=np.float32)
        for i, (group, node) in enumerate(keys):
            out[i] = self.get(group, node)
        return out


class SyntheticFeatures(FeatureStore):
    """Deterministic stand-in features: unit-variance Gaussian vectors seeded by a hash of ``(group, node)``.

    They carry no visual information. Every run, process and machine sees the same vectors for the same ids.
    """

    synthetic = True

    def __init__(self, dim: int = 64, views: int = R2R_VIEWS, seed: int = 0):
        self.dim, self.views, self.seed = dim, views, seed

    def get(self, group: str, node: str) -> np.ndarray:
        digest = hashlib.blake2b(f"{self.seed}/{group}/{node}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        return rng.standard_normal((self.views, self.dim), dtype=np.float32)
