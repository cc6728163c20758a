"""Top-down pictures of R2R episodes (``valan.envs.drawing``), one map panel per floor the paths visit.

The view looks down the z axis at the viewpoints' pose translations (x right, y up). Floors are clusters of
viewpoint heights: sorted heights split where consecutive ones are more than ``FLOOR_GAP`` metres apart, groups
of at least ``MIN_FLOOR_VIEWPOINTS`` are floor candidates, a candidate whose mean height is less than
``MIN_FLOOR_SEPARATION`` above the floor below joins it (split levels), and every viewpoint (stairs too) belongs
to the floor whose height range is nearest. On the 90 Matterport3D scans this finds 1 floor in 35, 2 in 31, 3 in
16, 4 in 6 and 5 in 2. Callers pass the success radius around the goal (the evaluation's
``SUCCESS_THRESHOLD``, 3 m).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from valan.envs.drawing import Panel, draw_map
from valan.envs.r2r.graph import ScanGraph

FLOOR_GAP = 0.5
"""Metres between consecutive viewpoint heights that separate two floors."""
MIN_FLOOR_VIEWPOINTS = 4
"""A height cluster with fewer viewpoints (a staircase) joins the nearest floor."""
MIN_FLOOR_SEPARATION = 2.0
"""Metres between the mean heights of two floors; closer clusters are levels of one floor."""


def floor_of(heights: np.ndarray) -> np.ndarray:
    """Floor number (0 = lowest) of each viewpoint, from its height ``heights`` (metres); see the module docstring."""
    heights = np.asarray(heights, np.float64)
    order = np.argsort(heights, kind="stable")
    groups = np.split(heights[order], np.flatnonzero(np.diff(heights[order]) > FLOOR_GAP) + 1)
    floors: list[np.ndarray] = []
    for group in (g for g in groups if len(g) >= MIN_FLOOR_VIEWPOINTS):
        if floors and group.mean() - floors[-1].mean() < MIN_FLOOR_SEPARATION:
            floors[-1] = np.concatenate([floors[-1], group])
        else:
            floors.append(group)
    ranges = np.array([(f.min(), f.max()) for f in floors]).reshape(-1, 2)
    if len(ranges) <= 1:
        return np.zeros(len(heights), np.int64)
    below, above = ranges[:, 0][None, :] - heights[:, None], heights[:, None] - ranges[:, 1][None, :]
    return np.maximum(np.maximum(below, above), 0.0).argmin(axis=1)


def edges_of(graph: ScanGraph) -> np.ndarray:
    """``(E, 2)`` local index pairs ``i < j`` of the scan's navigation edges."""
    pairs = [(i, int(j)) for i, neighbours in enumerate(graph.neighbors) for j in neighbours if i < j]
    return np.array(pairs, np.int64).reshape(-1, 2)


def draw_r2r_episode(graph: ScanGraph, reference: Sequence[str], trajectory: Sequence[str], title: str,
                     instruction: str = "", success_radius: float | None = None, size: int = 512) -> Image.Image:
    """The picture of one episode on ``graph``: ``reference`` and ``trajectory`` are viewpoint ids (a one-viewpoint
    reference: no known goal, as in test splits); one panel per floor either path visits; ``success_radius``
    (metres) is circled around the goal."""
    ref = [graph.local_index(v) for v in reference]
    traj = [graph.local_index(v) for v in trajectory]
    floors = floor_of(graph.positions[:, 2])
    count = int(floors.max()) + 1
    visited = sorted({int(floors[i]) for i in ref + traj})
    panels = [Panel(floors == f, f"floor {f + 1} of {count}" if count > 1 else "") for f in visited]
    return draw_map(graph.positions[:, :2], edges_of(graph), ref, traj, title=title, subtitle=f"scan {graph.scan}",
                    instruction=instruction, goal_radius=success_radius, panels=panels, size=size)
