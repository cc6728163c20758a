"""Touchdown navigation metrics (Chen et al. 2019), as used for Touchdown and map2seq.

For a predicted trajectory (panorama ids from the route's start) and the reference route, after removing
consecutive duplicate panoramas from both (turns in place repeat a panorama):

- ``task_completion`` (TC): 1 when the final panorama is the goal or adjacent to it (a link joins them in either
  direction), else 0.
- ``spd``: shortest-path distance in hops from the final panorama to the goal on the undirected graph.
- ``sed``: success-weighted edit distance, ``TC * (1 - lev(trajectory, route) / max(len(trajectory),
  len(route)))`` with ``lev`` the Levenshtein distance over panorama sequences (unit insert, delete and
  substitute costs).

The summary holds means over episodes under ``task_completion``, ``spd``, ``sed`` and ``num_episodes``.

Checked against the public implementations: the map2seq code (Schumann & Riezler, ``vln/env.py``) uses the same
TC (goal or a neighbour on the undirected ``networkx`` graph of ``links.txt``), SPD (unweighted shortest path)
and TC-weighted normalised edit distance, but its edit distance is Damerau-Levenshtein (an adjacent
transposition costs 1, not 2); trajectories rarely contain swapped neighbours, and we follow the Touchdown
paper's Levenshtein. Touchdown's repository ships no evaluation code.
"""

from __future__ import annotations

from typing import Any, Sequence

from valan.envs.predictions import check_one_per_episode
from valan.envs.streetview.dataset import StreetViewRoute
from valan.envs.streetview.graph import UNREACHABLE, StreetGraph
from valan.errors import InputError

SUMMARY_KEYS = ("task_completion", "spd", "sed", "num_episodes")
ID_KEYS = ("id", "route_id", "instr_id")  # instr_id: prediction files written by valan 0.1


def remove_repeats(panoids: Sequence[str]) -> list[str]:
    """``panoids`` without consecutive duplicates."""
    return [p for k, p in enumerate(panoids) if k == 0 or p != panoids[k - 1]]


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edit distance between two sequences: fewest single-item insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def task_completion(graph: StreetGraph, final: int, goal: int) -> float:
    """1.0 when panorama ``final`` is ``goal`` or adjacent to it (indices), else 0.0."""
    return 1.0 if final == goal or graph.adjacent(final, goal) else 0.0


def edit_similarity(trajectory: Sequence[Any], route: Sequence[Any]) -> float:
    """``1 - lev(trajectory, route) / max(len(trajectory), len(route))``."""
    return 1.0 - levenshtein(trajectory, route) / max(len(trajectory), len(route))


def score_episode(graph: StreetGraph, trajectory: Sequence[str], route: Sequence[str]) -> dict[str, float]:
    """``task_completion``, ``spd`` (hops) and ``sed`` of one trajectory (panorama ids, repeats allowed)."""
    t, r = remove_repeats(trajectory), remove_repeats(route)
    final, goal = graph.node(t[-1]), graph.node(r[-1])
    tc = task_completion(graph, final, goal)
    spd = graph.hops(final, goal)
    if spd == UNREACHABLE:
        raise InputError(f"the goal {r[-1]!r} cannot be reached from the final panorama {t[-1]!r}")
    return {"task_completion": tc, "spd": spd, "sed": tc * edit_similarity(t, r)}


def _prediction_id(item: dict, n: int, source: str) -> str:
    present = [k for k in ID_KEYS if k in item]
    if not present:
        raise InputError("missing field 'id' (or 'route_id', 'instr_id')", source=source, record=f"record {n}")
    values = {str(item[k]) for k in present}
    for k in present:
        if isinstance(item[k], bool) or not isinstance(item[k], (int, str)):
            raise InputError(f"field {k!r} must be an integer or a string, got {item[k]!r}", source=source,
                             record=f"record {n}")
    if len(values) > 1:
        raise InputError(f"id fields disagree: {', '.join(f'{k}={item[k]!r}' for k in present)}", source=source,
                         record=f"record {n}")
    return values.pop()


def parse_predictions(records: object, source: str = "") -> dict[str, list[str]]:
    """Panorama ids per route id from ``[{"id": ..., "trajectory": [panoid, ...]}]`` (the id's key may also be
    ``route_id`` as Touchdown's files have it, or ``instr_id`` as prediction files of valan 0.1 had it).

    ``InputError`` naming ``source`` and the record for a wrong structure or a duplicate id.
    """
    if not isinstance(records, list):
        raise InputError('expected a JSON list of {"id", "trajectory"} objects', source=source)
    trajectories: dict[str, list[str]] = {}
    for n, item in enumerate(records):
        if not isinstance(item, dict):
            raise InputError("expected a JSON object with 'id' and 'trajectory'", source=source, record=f"record {n}")
        route_id = _prediction_id(item, n, source)
        where = f"id {route_id}"
        trajectory = item.get("trajectory")
        if not isinstance(trajectory, list) or not trajectory or not all(isinstance(p, str) for p in trajectory):
            raise InputError("field 'trajectory' must be a non-empty list of panorama ids", source=source,
                             record=where)
        if route_id in trajectories:
            raise InputError("duplicate prediction (each route needs exactly one)", source=source, record=where)
        trajectories[route_id] = trajectory
    return trajectories


def _check_trajectory(graph: StreetGraph, route: StreetViewRoute, trajectory: list[str], source: str) -> None:
    where = f"id {route.id}"
    for k, panoid in enumerate(trajectory):
        if panoid not in graph:
            raise InputError(f"trajectory entry {k}: unknown panorama {panoid!r}", source=source, record=where)
    if trajectory[0] != route.start:
        raise InputError(f"trajectory starts at {trajectory[0]!r}, not at the route's start {route.start!r}",
                         source=source, record=where)
    for k in range(1, len(trajectory)):
        a, b = trajectory[k - 1], trajectory[k]
        if a != b and not graph.adjacent(graph.index[a], graph.index[b]):
            raise InputError(f"trajectory entry {k}: no link between {a!r} and {b!r}", source=source, record=where)


def evaluate_streetview(routes: Sequence[StreetViewRoute], predictions: object, graph: StreetGraph, *,
                        predictions_source: str = "", data_source: str = ""
                        ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score ``predictions`` on ``routes``: exactly one per route, starting at its start and moving along links.

    Bad input raises ``InputError`` naming the file (``predictions_source`` / ``data_source``) and the id.
    Returns ``(summary, per_episode)``: ``summary`` has ``SUMMARY_KEYS`` (means over episodes; TC and SED in
    [0, 1], SPD in hops); ``per_episode`` is ``[{"id", "task_completion", "spd", "sed"}]`` in route order.
    """
    trajectories = parse_predictions(predictions, predictions_source)
    if not routes:
        raise InputError("no routes to score", source=data_source)
    check_one_per_episode(trajectories, [r.id for r in routes], "id", ("a route", "routes"),
                          predictions_source=predictions_source, data_source=data_source)
    per_episode = []
    for route in routes:
        for k, panoid in enumerate(route.route):
            if panoid not in graph:
                raise InputError(f"route panorama {k} {panoid!r} is not in the graph", source=data_source,
                                 record=f"id {route.id}")
        trajectory = trajectories[route.id]
        _check_trajectory(graph, route, trajectory, predictions_source)
        per_episode.append({"id": route.id, **score_episode(graph, trajectory, route.route)})
    return summarize(per_episode), per_episode


def summarize(per_episode: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means of ``task_completion``, ``spd`` and ``sed`` over episodes, and ``num_episodes``."""
    n = len(per_episode)
    return {"task_completion": sum(e["task_completion"] for e in per_episode) / n,
            "spd": sum(float(e["spd"]) for e in per_episode) / n,
            "sed": sum(e["sed"] for e in per_episode) / n, "num_episodes": n}
