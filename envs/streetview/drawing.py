"""Top-down pictures of Street View episodes (``valan.envs.drawing``): the route and the trajectory on the
StreetLearn graph's latitude/longitude positions.

Positions are projected to metres on a plane tangent at the route's centre (equirectangular: east = longitude
difference x cos(latitude) x metres per degree, north = latitude difference x metres per degree), accurate to
well under a metre over a few kilometres. There is no success circle: Touchdown's task completion is stopping
at the goal or a panorama adjacent to it, not a distance.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from valan.envs.drawing import draw_map
from valan.envs.streetview.graph import StreetGraph

METRES_PER_DEGREE = 111_195.0
"""Metres per degree of latitude (and of longitude at the equator) on a sphere of radius 6,371 km."""
MIN_EXTENT = 60.0
"""Metres across the smallest window (a few panoramas, which are ~10 m apart)."""


def project(latlng: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``(N, 2)`` east/north metres of ``latlng`` (degrees) from ``origin`` (latitude, longitude in degrees)."""
    latlng = np.asarray(latlng, np.float64)
    east = (latlng[:, 1] - origin[1]) * math.cos(math.radians(float(origin[0]))) * METRES_PER_DEGREE
    north = (latlng[:, 0] - origin[0]) * METRES_PER_DEGREE
    return np.stack([east, north], axis=1)


@functools.lru_cache(maxsize=4)
def edges_of(graph: StreetGraph) -> np.ndarray:
    """``(E, 2)`` index pairs ``i < j`` of the undirected adjacency (cached per graph)."""
    sources = np.repeat(np.arange(len(graph)), np.diff(graph.neighbor_offsets))
    pairs = np.stack([sources, graph.neighbor_indices.astype(np.int64)], axis=1)
    return pairs[pairs[:, 0] < pairs[:, 1]]


def draw_streetview_episode(graph: StreetGraph, route: Sequence[str], trajectory: Sequence[str], title: str,
                            instruction: str = "", size: int = 512) -> Image.Image:
    """The picture of one episode: ``route`` (the reference) and ``trajectory`` are panorama ids."""
    ref = [graph.node(p) for p in route]
    traj = [graph.node(p) for p in trajectory]
    xy = project(graph.latlng, graph.latlng[ref].mean(axis=0))
    return draw_map(xy, edges_of(graph), ref, traj, title=title, subtitle=f"graph {graph.name}",
                    instruction=instruction, min_extent=MIN_EXTENT, size=size)
