"""R2R navigation metrics as published, computed exactly over Matterport3D navigation graphs.

Every distance is a shortest-path distance along the scan's navigation graph (``ScanGraph.distances``), in
metres. A trajectory is the sequence of viewpoints an agent visited; repeated viewpoints (turning in place) add
no length.

Definitions (``d`` = graph distance, ``g`` = goal = last reference viewpoint, ``d_th`` = 3.0 m):

- ``nav_error``: ``d(final viewpoint, g)`` (Anderson et al., CVPR 2018).
- ``success``: ``nav_error < 3.0`` m. **One success rule everywhere**: success rate, oracle success, SPL and
  SDTW all use the strict ``< success_threshold`` test of the Matterport3D simulator's ``tasks/R2R/eval.py``.
  (The nDTW reference code tests SDTW success with ``<=``; the two differ only when the error is exactly 3.0 m.)
- ``oracle_success``: some viewpoint of the trajectory has ``d(v, g) < 3.0`` m.
- ``trajectory_length``: sum of ``d`` over consecutive trajectory viewpoints, metres.
- ``spl``: ``success * d(start, g) / max(trajectory_length, d(start, g))`` (Anderson et al., 2018,
  "On Evaluation of Embodied Navigation Agents"); ``success`` when both lengths are zero.
- ``steps``: ``len(trajectory) - 1``, counting every entry of the submitted trajectory as the official
  evaluation does.
- ``dtw``/``ndtw``/``sdtw`` (Ilharco et al., 2019, "General Evaluation for Instruction Conditioned Navigation
  using Dynamic Time Warping"): DTW over graph distances between the trajectory with consecutive duplicates
  removed and the reference path; ``ndtw = exp(-dtw / (d_th * len(reference)))``; ``sdtw = success * ndtw``.
- ``cls`` (Jain et al., ACL 2019, "Stay on the Path"): path coverage
  ``PC = mean over reference viewpoints r of exp(-min over trajectory viewpoints v of d(r, v) / d_th)``,
  expected length ``E = PC * length(reference)``, length score ``LS = E / (E + |E - length(trajectory)|)``,
  ``CLS = PC * LS`` (``LS = 1`` when ``E`` and the trajectory length are both zero).

Sequences of viewpoints may be given as viewpoint ids (``str``) or as local indices into the graph (``int``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from valan.envs.r2r.graph import ScanGraph

SUCCESS_THRESHOLD = 3.0
"""Metres; an episode succeeds when the final viewpoint is strictly closer than this to the goal."""

DTW_THRESHOLD = 3.0
"""Metres; ``d_th`` of nDTW and CLS."""

Viewpoints = Sequence["str | int"]


def _indices(graph: ScanGraph, viewpoints: Viewpoints) -> list[int]:
    """Local indices of ``viewpoints`` (ids or indices)."""
    return [graph.local_index(v) if isinstance(v, str) else int(v) for v in viewpoints]


def remove_repeats(indices: Sequence[int]) -> list[int]:
    """``indices`` with consecutive duplicates removed (an agent turning in place stays at one viewpoint)."""
    out: list[int] = []
    for i in indices:
        if not out or out[-1] != i:
            out.append(i)
    return out


def path_length(graph: ScanGraph, viewpoints: Viewpoints) -> float:
    """Length of a walk along the graph, metres: the sum of distances between consecutive viewpoints."""
    idx = _indices(graph, viewpoints)
    if len(idx) < 2:
        return 0.0
    return float(sum(graph.distances[idx[:-1], idx[1:]].tolist()))


def _dtw_from_costs(costs: list[list[float]]) -> float:
    """Dynamic time warping of a cost matrix ``costs[i][j]``: the cheapest monotone alignment of all rows and
    columns, with steps (i-1, j), (i, j-1), (i-1, j-1)."""
    m = len(costs[0])
    previous = [0.0] + [math.inf] * m
    for row in costs:
        current = [math.inf] * (m + 1)
        for j in range(1, m + 1):
            current[j] = row[j - 1] + min(previous[j], current[j - 1], previous[j - 1])
        previous = current
    return previous[m]


def dtw(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints) -> float:
    """DTW between the trajectory (consecutive duplicates removed) and the reference path, metres."""
    t = remove_repeats(_indices(graph, trajectory))
    r = _indices(graph, reference)
    if not t or not r:
        raise ValueError("dtw needs a non-empty trajectory and reference")
    return _dtw_from_costs(graph.distances[np.ix_(t, r)].tolist())


def ndtw(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints, threshold: float = DTW_THRESHOLD) -> float:
    """Normalized DTW in (0, 1]: ``exp(-dtw / (threshold * len(reference)))``; ``threshold`` in metres."""
    return math.exp(-dtw(graph, trajectory, reference) / (threshold * len(reference)))


def sdtw(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints, threshold: float = DTW_THRESHOLD,
         success_threshold: float = SUCCESS_THRESHOLD) -> float:
    """Success weighted by nDTW: ``ndtw`` when the final viewpoint is < ``success_threshold`` metres from the
    reference's last viewpoint, else 0."""
    t, r = _indices(graph, trajectory), _indices(graph, reference)
    if not graph.distances[t[-1], r[-1]] < success_threshold:
        return 0.0
    return ndtw(graph, t, r, threshold)


def cls(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints, threshold: float = DTW_THRESHOLD) -> float:
    """Coverage weighted by Length Score in [0, 1]; ``threshold`` (``d_th``) in metres."""
    t, r = _indices(graph, trajectory), _indices(graph, reference)
    if not t or not r:
        raise ValueError("cls needs a non-empty trajectory and reference")
    nearest = graph.distances[np.ix_(r, t)].min(axis=1).tolist()
    coverage = sum(math.exp(-d / threshold) for d in nearest) / len(r)
    expected = coverage * path_length(graph, r)
    length = path_length(graph, t)
    if expected == 0.0 and length == 0.0:
        return coverage
    return coverage * expected / (expected + abs(expected - length))
