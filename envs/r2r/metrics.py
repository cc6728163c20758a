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

``evaluate_r2r`` scores leaderboard-format predictions
(``[{"instr_id": "4332_0", "trajectory": [[viewpoint, heading, elevation], ...]}]``) and checks them first: every
instruction of the data has exactly one prediction, each trajectory starts at the episode's start viewpoint and
moves only along graph edges (or stays in place).

Sequences of viewpoints may be given as viewpoint ids (``str``) or as local indices into the graph (``int``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from valan.envs.r2r.dataset import R2REpisode
from valan.envs.predictions import check_one_per_episode, finite_number
from valan.envs.r2r.graph import Connectivity, ScanGraph
from valan.errors import InputError

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
    return _length(graph.distance_table, len(graph), _indices(graph, viewpoints))


def dtw(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints) -> float:
    """DTW between the trajectory (consecutive duplicates removed) and the reference path, metres."""
    t = remove_repeats(_indices(graph, trajectory))
    r = _indices(graph, reference)
    if not t or not r:
        raise ValueError("dtw needs a non-empty trajectory and reference")
    return _dtw(graph.distance_table, len(graph), t, r)


def ndtw(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints, threshold: float = DTW_THRESHOLD) -> float:
    """Normalized DTW in (0, 1]: ``exp(-dtw / (threshold * len(reference)))``; ``threshold`` in metres."""
    return _normalized(dtw(graph, trajectory, reference), len(reference), threshold)


def sdtw(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints, threshold: float = DTW_THRESHOLD,
         success_threshold: float = SUCCESS_THRESHOLD) -> float:
    """Success weighted by nDTW: ``ndtw`` when the final viewpoint is < ``success_threshold`` metres from the
    reference's last viewpoint, else 0."""
    t, r = _indices(graph, trajectory), _indices(graph, reference)
    if not graph.distance_table[t[-1] * len(graph) + r[-1]] < success_threshold:
        return 0.0
    return ndtw(graph, t, r, threshold)


def cls(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints, threshold: float = DTW_THRESHOLD) -> float:
    """Coverage weighted by Length Score in [0, 1]; ``threshold`` (``d_th``) in metres."""
    t, r = _indices(graph, trajectory), _indices(graph, reference)
    if not t or not r:
        raise ValueError("cls needs a non-empty trajectory and reference")
    return _cls(graph.distance_table, len(graph), t, r, threshold)


# The metrics over local indices and a scan's flat distance table ``d`` (``d[i * n + j]``, metres): plain Python,
# which on paths of a few viewpoints beats array calls (and needs no NumPy import).

def _length(d: Sequence[float], n: int, idx: list[int]) -> float:
    return float(sum(d[a * n + b] for a, b in zip(idx, idx[1:])))


def _dtw_from_costs(costs: list[list[float]]) -> float:
    """Dynamic time warping of a cost matrix ``costs[i][j]``: the cheapest monotone alignment of all rows and
    columns, with steps (i-1, j), (i, j-1), (i-1, j-1)."""
    inf = math.inf
    previous = [0.0] + [inf] * len(costs[0])
    for row in costs:
        current, left, diagonal = [inf], inf, previous[0]
        for cost, up in zip(row, previous[1:]):  # comparisons, not min(): this loop is most of the scoring time
            best = up if up < left else left
            left = cost + (diagonal if diagonal < best else best)
            current.append(left)
            diagonal = up
        previous = current
    return previous[-1]


def _dtw(d: Sequence[float], n: int, t: list[int], r: list[int]) -> float:
    return _dtw_from_costs([[d[i * n + j] for j in r] for i in t])


def _normalized(dtw_metres: float, reference_length: int, threshold: float) -> float:
    return math.exp(-dtw_metres / (threshold * reference_length))


def _cls(d: Sequence[float], n: int, t: list[int], r: list[int], threshold: float) -> float:
    exp = math.exp
    coverage = sum(exp(-min([d[i * n + j] for j in t]) / threshold) for i in r) / len(r)
    expected = coverage * _length(d, n, r)
    length = _length(d, n, t)
    if expected == 0.0 and length == 0.0:
        return coverage
    return coverage * expected / (expected + abs(expected - length))


SUMMARY_KEYS = ("num_episodes", "success_rate", "spl", "nav_error", "oracle_success_rate", "trajectory_length",
                "steps", "ndtw", "sdtw", "cls")
"""Keys of ``evaluate_r2r``'s summary, in display order."""


def score_episode(graph: ScanGraph, trajectory: Viewpoints, reference: Viewpoints,
                  success_threshold: float = SUCCESS_THRESHOLD) -> dict[str, Any]:
    """All metrics of one episode; ``trajectory`` as submitted (repeats allowed), assumed valid on ``graph``.

    Returns ``nav_error``, ``oracle_error``, ``trajectory_length``, ``shortest_path_length`` (metres),
    ``success``, ``oracle_success`` (bool), ``spl``, ``ndtw``, ``sdtw``, ``cls`` (in [0, 1]) and ``steps``
    (``len(trajectory) - 1``).
    """
    t, r = _indices(graph, trajectory), _indices(graph, reference)
    d, n = graph.distance_table, len(graph)
    goal = r[-1]
    nav_error = d[t[-1] * n + goal]
    oracle_error = min(d[i * n + goal] for i in t)
    success = nav_error < success_threshold
    length = _length(d, n, t)
    shortest = d[r[0] * n + goal]
    longest = max(length, shortest)
    spl = (shortest / longest if longest > 0 else 1.0) if success else 0.0
    normalized_dtw = _normalized(_dtw(d, n, remove_repeats(t), r), len(r), DTW_THRESHOLD)
    return {
        "nav_error": nav_error,
        "oracle_error": oracle_error,
        "success": success,
        "oracle_success": oracle_error < success_threshold,
        "spl": spl,
        "trajectory_length": length,
        "shortest_path_length": shortest,
        "steps": len(t) - 1,
        "ndtw": normalized_dtw,
        "sdtw": normalized_dtw if success else 0.0,
        "cls": _cls(d, n, t, r, DTW_THRESHOLD),
    }


def parse_predictions(records: object, source: str = "") -> dict[str, list[str]]:
    """Viewpoint ids per ``instr_id`` from leaderboard-format records; ``InputError`` naming ``source`` and the
    record for a wrong structure or a duplicate ``instr_id``."""
    if not isinstance(records, list):
        raise InputError("expected a JSON list of {\"instr_id\", \"trajectory\"} objects", source=source)
    trajectories: dict[str, list[str]] = {}
    for n, item in enumerate(records):
        if not isinstance(item, dict):
            raise InputError("expected a JSON object with 'instr_id' and 'trajectory'", source=source,
                             record=f"record {n}")
        instr_id = item.get("instr_id")
        where = f"instr_id {instr_id}" if isinstance(instr_id, str) else f"record {n}"
        for key in ("instr_id", "trajectory"):
            if key not in item:
                raise InputError(f"missing field {key!r}", source=source, record=where)
        if not isinstance(instr_id, str):
            raise InputError(f"field 'instr_id' must be a string, got {instr_id!r}", source=source, record=where)
        trajectory = item["trajectory"]
        if not isinstance(trajectory, list) or not trajectory:
            raise InputError("field 'trajectory' must be a non-empty list of [viewpoint, heading, elevation]",
                             source=source, record=where)
        viewpoints = []
        for k, entry in enumerate(trajectory):
            if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
                raise InputError(f"trajectory entry {k} must be [viewpoint, heading, elevation], got {entry!r}",
                                 source=source, record=where)
            for name, value in zip(("heading", "elevation"), entry[1:]):
                if not finite_number(value):
                    raise InputError(f"trajectory entry {k}: {name} must be a finite number (radians), got "
                                     f"{value!r}", source=source, record=where)
            viewpoints.append(entry[0])
        if instr_id in trajectories:
            raise InputError("duplicate prediction (each instruction needs exactly one)", source=source, record=where)
        trajectories[instr_id] = viewpoints
    return trajectories


def _check_trajectory(graph: ScanGraph, episode: R2REpisode, viewpoints: list[str], source: str) -> None:
    where = f"instr_id {episode.instr_id}"
    for k, vp in enumerate(viewpoints):
        if vp not in graph:
            raise InputError(f"trajectory entry {k}: unknown viewpoint {vp!r} in scan {episode.scan}",
                             source=source, record=where)
    if viewpoints[0] != episode.start:
        raise InputError(f"trajectory starts at {viewpoints[0]!r}, not at the episode's start {episode.start!r}",
                         source=source, record=where)
    for k in range(1, len(viewpoints)):
        a, b = viewpoints[k - 1], viewpoints[k]
        if a != b and not graph.adjacent(a, b):
            raise InputError(f"trajectory entry {k}: no edge from {a!r} to {b!r} in scan {episode.scan}",
                             source=source, record=where)


def evaluate_r2r(episodes: Sequence[R2REpisode], predictions: object, connectivity: Connectivity | str | os.PathLike,
                 success_threshold: float = SUCCESS_THRESHOLD, *, predictions_source: str = "",
                 data_source: str = "") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score leaderboard-format ``predictions`` (a list of ``{"instr_id", "trajectory"}`` records) on ``episodes``.

    Every episode needs exactly one prediction and a reference path; trajectories must start at the episode's
    start and move along graph edges. Bad input raises ``InputError`` naming ``predictions_source`` or
    ``data_source`` and the ``instr_id``.

    Returns ``(summary, per_episode)``: ``summary`` has ``SUMMARY_KEYS`` (rates and scores as fractions in
    [0, 1], distances in metres, averages over episodes); ``per_episode`` has, in the order of ``episodes``,
    ``{"instr_id", "scan", **score_episode(...)}``.
    """
    if not isinstance(connectivity, Connectivity):
        connectivity = Connectivity(connectivity)
    trajectories = parse_predictions(predictions, predictions_source)
    if not episodes:
        raise InputError("no episodes to score", source=data_source)
    known: set[str] = set()
    for episode in episodes:
        if episode.instr_id in known:
            raise InputError("duplicate instruction id", source=data_source, record=f"instr_id {episode.instr_id}")
        known.add(episode.instr_id)
        if not episode.has_reference:
            raise InputError("no reference path (a test split?): predictions on it cannot be scored",
                             source=data_source, record=f"instr_id {episode.instr_id}")
    check_one_per_episode(trajectories, [e.instr_id for e in episodes], "instr_id", ("an instruction", "instructions"),
                          predictions_source=predictions_source, data_source=data_source)
    per_episode = []
    for episode in episodes:
        graph = connectivity.graph(episode.scan)
        for vp in episode.path:
            if vp not in graph:
                raise InputError(f"reference path has unknown viewpoint {vp!r} in scan {episode.scan}",
                                 source=data_source, record=f"instr_id {episode.instr_id}")
        viewpoints = trajectories[episode.instr_id]
        _check_trajectory(graph, episode, viewpoints, predictions_source)
        per_episode.append({"instr_id": episode.instr_id, "scan": episode.scan,
                            **score_episode(graph, viewpoints, episode.path, success_threshold)})
    return summarize(per_episode), per_episode


def summarize(per_episode: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Averages over episodes of ``score_episode``'s results, under ``SUMMARY_KEYS``."""
    n = len(per_episode)

    def mean(key: str) -> float:
        return float(sum(float(e[key]) for e in per_episode) / n)

    return {"num_episodes": n, "success_rate": mean("success"), "spl": mean("spl"), "nav_error": mean("nav_error"),
            "oracle_success_rate": mean("oracle_success"), "trajectory_length": mean("trajectory_length"),
            "steps": mean("steps"), "ndtw": mean("ndtw"), "sdtw": mean("sdtw"), "cls": mean("cls")}
