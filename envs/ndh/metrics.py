"""NDH metrics exactly as CVDN's evaluator (``tasks/NDH/eval.py``) computes them, over Matterport3D graphs.

Distances ``d`` are shortest-path distances along the scan's navigation graph, metres. For a path type ``P`` (see
``valan.envs.ndh.dataset``): start ``s = P[0]``, goal ``g = P[-1]``, planner goal ``p = planner_path[-1]``, end
region ``E = end_panos``, final viewpoint ``f``; ``d(v, E) = min over e in E of d(v, e)``.

- ``goal_progress``: ``d(s, E) - d(f, E)``, metres (CVDN's ``dist_to_end_reduction``, the NDH headline metric).
- ``nav_error``: ``d(f, g)``; ``oracle_error``: ``min over trajectory viewpoints v of d(v, g)``.
- ``success``: ``nav_error < 3.0`` m; ``oracle_success``: ``oracle_error < 3.0`` m.
- ``oracle_path_success``: ``min over v of d(v, p) < 3.0`` m (to the planner goal whatever the path type).
- ``trajectory_length``: sum of ``d`` over consecutive trajectory entries (turning in place adds nothing).
- ``spl``: 0 without success; else ``d(s, g) / max(trajectory_length, d(s, g))`` when ``d(s, g) > 0``, and when
  the start is the goal (a dialog turn inside the goal region) 1 if the agent did not move, else 0.

``evaluate_ndh`` averages them over the instances (``SUMMARY_KEYS``). Predictions are
``[{"inst_idx": int, "trajectory": [[viewpoint, heading, elevation], ...]}]``, exactly one per instance (CVDN
ignores unknown ids; here they are an error), each starting at ``s`` and moving along graph edges.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from valan.envs.ndh.dataset import NDHEpisode
from valan.envs.predictions import check_one_per_episode
from valan.envs.r2r.graph import Connectivity, ScanGraph
from valan.envs.r2r.metrics import SUCCESS_THRESHOLD, path_length
from valan.errors import InputError

SUMMARY_KEYS = ("num_episodes", "goal_progress", "nav_error", "oracle_error", "success_rate", "oracle_success_rate",
                "spl", "oracle_path_success_rate", "trajectory_length")
"""Keys of ``evaluate_ndh``'s summary, in display order."""

EPISODE_KEYS = ("goal_progress", "nav_error", "oracle_error", "success", "oracle_success", "spl",
                "oracle_path_success", "trajectory_length", "shortest_path_length")


def score_episode(graph: ScanGraph, episode: NDHEpisode, viewpoints: Sequence[str], path_type: str,
                  success_threshold: float = SUCCESS_THRESHOLD) -> dict[str, Any]:
    """The metrics of one instance (``EPISODE_KEYS``) for a trajectory's viewpoints, assumed valid on ``graph``."""
    d = graph.distances
    path = episode.path(path_type)
    t = [graph.local_index(v) for v in viewpoints]
    start, goal = graph.local_index(path[0]), graph.local_index(path[-1])
    planner_goal = graph.local_index(episode.planner_path[-1])
    region = [graph.local_index(v) for v in episode.end_panos]
    nav_error = float(d[t[-1], goal])
    length = path_length(graph, t)
    shortest = float(d[start, goal])
    success = nav_error < success_threshold
    if not success:
        spl = 0.0
    elif shortest > 0:
        spl = shortest / max(length, shortest)
    else:
        spl = 1.0 if length == 0 else 0.0
    oracle_error = float(d[t, goal].min())
    return {
        "goal_progress": float(d[start, region].min() - d[t[-1], region].min()),
        "nav_error": nav_error,
        "oracle_error": oracle_error,
        "success": success,
        "oracle_success": oracle_error < success_threshold,
        "spl": spl,
        "oracle_path_success": bool(d[t, planner_goal].min() < success_threshold),
        "trajectory_length": length,
        "shortest_path_length": shortest,
    }


def parse_predictions(records: object, source: str = "") -> dict[int, list[str]]:
    """Viewpoint ids per ``inst_idx`` from ``[{"inst_idx", "trajectory"}]`` records; ``InputError`` naming
    ``source`` and the record for a wrong structure or a duplicate ``inst_idx``."""
    if not isinstance(records, list):
        raise InputError('expected a JSON list of {"inst_idx", "trajectory"} objects', source=source)
    trajectories: dict[int, list[str]] = {}
    for n, item in enumerate(records):
        if not isinstance(item, dict):
            raise InputError("expected a JSON object with 'inst_idx' and 'trajectory'", source=source,
                             record=f"record {n}")
        inst_idx = item.get("inst_idx")
        valid_id = isinstance(inst_idx, int) and not isinstance(inst_idx, bool)
        where = f"inst_idx {inst_idx}" if valid_id else f"record {n}"
        for key in ("inst_idx", "trajectory"):
            if key not in item:
                raise InputError(f"missing field {key!r}", source=source, record=where)
        if not valid_id:
            raise InputError(f"field 'inst_idx' must be an integer, got {inst_idx!r}", source=source, record=where)
        trajectory = item["trajectory"]
        if not isinstance(trajectory, list) or not trajectory:
            raise InputError("field 'trajectory' must be a non-empty list of [viewpoint, heading, elevation]",
                             source=source, record=where)
        for k, entry in enumerate(trajectory):
            if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
                raise InputError(f"trajectory entry {k} must be [viewpoint, heading, elevation], got {entry!r}",
                                 source=source, record=where)
        if inst_idx in trajectories:
            raise InputError("duplicate prediction (each instance needs exactly one)", source=source, record=where)
        trajectories[inst_idx] = [entry[0] for entry in trajectory]
    return trajectories


def _trajectory_problem(graph: ScanGraph, start: str, viewpoints: list[str]) -> str | None:
    """What is wrong with a trajectory on ``graph`` that must begin at ``start``, or None."""
    unknown = next((k for k, vp in enumerate(viewpoints) if vp not in graph), None)
    if unknown is not None:
        return f"trajectory entry {unknown}: unknown viewpoint {viewpoints[unknown]!r} in scan {graph.scan}"
    if viewpoints[0] != start:
        return f"trajectory starts at {viewpoints[0]!r}, not at the path's start {start!r}"
    for k in range(1, len(viewpoints)):
        a, b = viewpoints[k - 1], viewpoints[k]
        if a != b and not graph.adjacent(a, b):
            return f"trajectory entry {k}: no edge from {a!r} to {b!r} in scan {graph.scan}"
    return None


def evaluate_ndh(episodes: Sequence[NDHEpisode], predictions: object, connectivity: Connectivity | str | os.PathLike,
                 path_type: str = "planner_path", success_threshold: float = SUCCESS_THRESHOLD, *,
                 predictions_source: str = "", data_source: str = "") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score ``predictions`` on NDH ``episodes`` for ``path_type`` (see the module docstring).

    Returns ``(summary, per_episode)``: the summary has ``SUMMARY_KEYS`` (rates in [0, 1], distances in metres);
    ``per_episode`` lists ``{"inst_idx", "scan", **score_episode(...)}`` in the order of ``episodes``. Bad input
    (test-split instances, missing or unknown predictions, invalid trajectories) raises ``InputError``.
    """
    if not isinstance(connectivity, Connectivity):
        connectivity = Connectivity(connectivity)
    trajectories = parse_predictions(predictions, predictions_source)
    if not episodes:
        raise InputError("no episodes to score", source=data_source)
    for episode in episodes:
        if not episode.has_reference:
            raise InputError("no end_panos or paths (a test split?): predictions on it cannot be scored",
                             source=data_source, record=f"inst_idx {episode.inst_idx}")
    check_one_per_episode(trajectories, [e.inst_idx for e in episodes], "inst_idx", ("an instance", "instances"),
                          predictions_source=predictions_source, data_source=data_source)
    per_episode = []
    for episode in episodes:
        graph = connectivity.graph(episode.scan)
        viewpoints = trajectories[episode.inst_idx]
        problem = _trajectory_problem(graph, episode.path(path_type)[0], viewpoints)
        if problem:
            raise InputError(problem, source=predictions_source, record=f"inst_idx {episode.inst_idx}")
        per_episode.append({"inst_idx": episode.inst_idx, "scan": episode.scan,
                            **score_episode(graph, episode, viewpoints, path_type, success_threshold)})
    return summarize(per_episode), per_episode


def summarize(per_episode: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Averages of ``score_episode``'s results over the instances, under ``SUMMARY_KEYS``."""
    n = len(per_episode)

    def mean(key: str) -> float:
        return float(sum(float(e[key]) for e in per_episode) / n)

    return {"num_episodes": n, "goal_progress": mean("goal_progress"), "nav_error": mean("nav_error"),
            "oracle_error": mean("oracle_error"), "success_rate": mean("success"),
            "oracle_success_rate": mean("oracle_success"), "spl": mean("spl"),
            "oracle_path_success_rate": mean("oracle_path_success"), "trajectory_length": mean("trajectory_length")}
