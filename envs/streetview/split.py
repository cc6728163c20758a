"""An unseen-area validation split of Street View routes (Touchdown / map2seq), by region.

Touchdown's and map2seq's "unseen" splits hold out a geographic area of Manhattan: the lon/lat polygon in the
graph folder's ``unseen_area_bbox.txt`` (first line ``bounding_box = [[lng, lat], ...]``, the ring closed or
not). A route that **touches** the area (any of its panoramas inside the polygon) must stay out of training;
:func:`split_by_area` puts it in ``unseen``. The routes outside are ``train``, minus an optional seeded share
held out as ``seen`` (routes in the training area the model has not been trained on). Records are kept unchanged,
in input order.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valan.envs.streetview.dataset import StreetViewRoute
from valan.envs.streetview.graph import StreetGraph
from valan.errors import InputError

UNSEEN_AREA_FILE = "unseen_area_bbox.txt"


def read_unseen_area(path: str | os.PathLike) -> np.ndarray:
    """The polygon of ``unseen_area_bbox.txt``: ``(K, 2)`` float64 longitude, latitude (degrees)."""
    path = Path(path)
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
    name, _, value = first.partition("=")
    try:
        polygon = np.asarray(json.loads(value), dtype=np.float64) if name.strip() == "bounding_box" else None
    except (json.JSONDecodeError, ValueError):
        polygon = None
    if polygon is None or polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
        raise InputError("line 1: expected 'bounding_box = [[lng, lat], ...]' with at least 3 points",
                         source=str(path))
    return polygon


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Bool ``(N,)``: which ``(N, 2)`` points lie inside ``polygon`` ``(K, 2)`` (even-odd rule: a horizontal ray
    from the point crosses the boundary an odd number of times). Both in the same (x, y) order."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (straddles & (x < crossing_x)).sum(axis=1) % 2 == 1


@dataclass(frozen=True)
class AreaSplit:
    """Positions (into the routes given to :func:`split_by_area`) of each part."""

    train: list[int]
    seen: list[int]
    unseen: list[int]


def panoramas_inside(graph: StreetGraph, polygon: np.ndarray) -> np.ndarray:
    """Bool ``(N,)``: which of ``graph``'s panoramas lie inside ``polygon`` (``read_unseen_area``'s lng, lat)."""
    return inside_polygon(graph.latlng[:, ::-1], polygon)  # graph rows are (lat, lng)


def routes_touching(routes: list[StreetViewRoute], graph: StreetGraph, polygon: np.ndarray) -> np.ndarray:
    """Bool per route: whether any of its panoramas (those in ``graph``) lies inside ``polygon``."""
    inside = panoramas_inside(graph, polygon)
    return np.array([any(inside[graph.index[p]] for p in r.route if p in graph.index) for r in routes], dtype=bool)


def split_by_area(routes: list[StreetViewRoute], graph: StreetGraph, polygon: np.ndarray,
                  seen_fraction: float = 0.0, seed: int = 0) -> AreaSplit:
    """Routes touching ``polygon`` -> ``unseen``; of the others a seeded ``seen_fraction`` -> ``seen``, the
    rest -> ``train``."""
    if not 0.0 <= seen_fraction < 1.0:
        raise ValueError(f"seen_fraction must be in [0, 1), got {seen_fraction}")
    touching = routes_touching(routes, graph, polygon)
    outside = [i for i in range(len(routes)) if not touching[i]]
    chosen = set(random.Random(seed).sample(outside, round(seen_fraction * len(outside))))
    return AreaSplit(train=[i for i in outside if i not in chosen], seen=[i for i in outside if i in chosen],
                     unseen=[i for i in range(len(routes)) if touching[i]])
