"""What every task's environment does with visual features: open the store it was given (an object or a path) and
bound the ``features`` observation by the values that store holds for the environment's nodes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

from valan.features.stores import FeatureStore, open_feature_store

TABLE_CHUNK = 4096
"""Nodes read at a time while bounding features (memory: ``TABLE_CHUNK x views x dim`` floats)."""


def feature_store(features: FeatureStore | str | os.PathLike | None, default: FeatureStore,
                  views: int) -> FeatureStore:
    """``features`` as a store: a store as given, ``None`` -> ``default``, a path (a store folder or a ``.tsv``
    file; ``"synthetic"``) -> ``valan.features.stores.open_feature_store`` with ``views`` views per node."""
    if features is None:
        return default
    if isinstance(features, FeatureStore):
        return features
    return open_feature_store(features, views=views, dim=default.dim)


def feature_space(store: FeatureStore, keys: Sequence[tuple[str, str]]) -> spaces.Box:
    """``(views, dim)`` float32 Box bounded by the smallest and largest value ``store`` holds for ``keys`` (every
    node an observation can show; read once, in chunks), so the bounds are finite and exact."""
    low, high = np.inf, -np.inf
    for start in range(0, len(keys), TABLE_CHUNK):
        table = store.table(keys[start:start + TABLE_CHUNK])
        low, high = min(low, float(table.min())), max(high, float(table.max()))
    return spaces.Box(np.float32(low), np.float32(high), (store.views, store.dim), np.float32)
