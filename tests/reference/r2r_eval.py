"""A slow, independent re-implementation of the community's R2R evaluation, for cross-checking ``valan.envs.r2r.metrics``.

It follows the algorithms of the Matterport3D simulator's ``tasks/R2R/eval.py`` (graphs built as its
``load_nav_graphs`` does, all-pairs shortest path lengths by one Dijkstra per source viewpoint as networkx's
``all_pairs_dijkstra_path_length`` does, per-episode errors, lengths and SPL as its ``Evaluation._score_item`` and
``score``) and of the nDTW/SDTW/CLS reference implementations (Ilharco et al. 2019; Jain et al. 2019): a full
``(n+1) x (m+1)`` DTW matrix, CLS lengths summed over graph edge weights. Pure Python (dicts, ``heapq``); it shares
no code with ``valan.envs.r2r.metrics`` or ``valan.envs.r2r.graph`` so that agreement means something.

Success everywhere is ``error < 3.0`` m, as in ``valan.envs.r2r.metrics`` (the DTW reference code tests SDTW success
with ``<=``; the rules differ only at exactly 3.0 m).
"""

from __future__ import annotations

import heapq
import json
import math
import os
from typing import Any

ERROR_MARGIN = 3.0  # metres


def load_nav_graphs(connectivity_dir: str | os.PathLike, scans: set[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scan, ``{viewpoint: {neighbour: edge weight in metres}}`` over included viewpoints with an
    unobstructed edge, weight = Euclidean distance between pose translations."""
    graphs = {}
    for scan in scans:
        with open(os.path.join(connectivity_dir, f"{scan}_connectivity.json")) as f:
            data = json.load(f)
        adjacency: dict[str, dict[str, float]] = {}
        for i, item in enumerate(data):
            if not item["included"]:
                continue
            adjacency.setdefault(item["image_id"], {})
            for j, connected in enumerate(item["unobstructed"]):
                other = data[j]
                if connected and other["included"]:
                    weight = ((item["pose"][3] - other["pose"][3]) ** 2 + (item["pose"][7] - other["pose"][7]) ** 2
                              + (item["pose"][11] - other["pose"][11]) ** 2) ** 0.5
                    adjacency[item["image_id"]][other["image_id"]] = weight
                    adjacency.setdefault(other["image_id"], {})[item["image_id"]] = weight
        graphs[scan] = adjacency
    return graphs


def single_source_dijkstra(adjacency: dict[str, dict[str, float]], source: str) -> dict[str, float]:
    """Shortest path lengths (metres) from ``source`` to every reachable viewpoint."""
    distance: dict[str, float] = {}
    seen = {source: 0.0}
    heap = [(0.0, 0, source)]
    counter = 1
    while heap:
        d, _, u = heapq.heappop(heap)
        if u in distance:
            continue
        distance[u] = d
        for v, w in adjacency[u].items():
            candidate = d + w
            if v not in distance and (v not in seen or candidate < seen[v]):
                seen[v] = candidate
                heapq.heappush(heap, (candidate, counter, v))
                counter += 1
    return distance


def all_pairs_dijkstra(adjacency: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {source: single_source_dijkstra(adjacency, source) for source in adjacency}


def _deduplicate(path: list[str]) -> list[str]:
    return [v for k, v in enumerate(path) if k == 0 or path[k - 1] != v]


def dtw_distance(distance: dict[str, dict[str, float]], prediction: list[str], reference: list[str]) -> float:
    """DTW by the textbook recursion over a full matrix with infinite borders."""
    n, m = len(prediction), len(reference)
    matrix = [[math.inf] * (m + 1) for _ in range(n + 1)]
    matrix[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best = min(matrix[i - 1][j], matrix[i][j - 1], matrix[i - 1][j - 1])
            matrix[i][j] = distance[prediction[i - 1]][reference[j - 1]] + best
    return matrix[n][m]


def coverage_weighted_by_length(adjacency: dict[str, dict[str, float]], distance: dict[str, dict[str, float]],
                                prediction: list[str], reference: list[str], threshold: float = 3.0) -> float:
    def length(nodes: list[str]) -> float:
        return sum(adjacency[a][b] for a, b in zip(nodes[:-1], nodes[1:]))

    coverage = sum(math.exp(-min(distance[u][v] for v in prediction) / threshold) for u in reference) / len(reference)
    expected = coverage * length(reference)
    actual = length(prediction)
    if expected == 0 and actual == 0:
        return coverage
    return coverage * expected / (expected + abs(expected - actual))


class ReferenceEvaluation:
    """The official evaluation's algorithm, extended with nDTW, SDTW and CLS."""

    def __init__(self, data_file: str | os.PathLike, connectivity_dir: str | os.PathLike):
        with open(data_file) as f:
            items = json.load(f)
        self.gt: dict[str, dict[str, Any]] = {}
        for item in items:
            for i in range(len(item["instructions"])):
                self.gt[f"{item['path_id']}_{i}"] = item
        self.graphs = load_nav_graphs(connectivity_dir, {item["scan"] for item in items})
        self.distances = {scan: all_pairs_dijkstra(g) for scan, g in self.graphs.items()}

    def score_item(self, instr_id: str, trajectory: list) -> dict[str, float]:
        gt = self.gt[instr_id]
        scan, reference = gt["scan"], gt["path"]
        dist = self.distances[scan]
        path = [entry[0] for entry in trajectory]
        start, goal = reference[0], reference[-1]
        assert path[0] == start, "trajectories must include the start position"
        nav_error = dist[path[-1]][goal]
        oracle_error = min(dist[v][goal] for v in path)
        length = 0.0
        for prev, curr in zip(path[:-1], path[1:]):
            assert prev == curr or curr in self.graphs[scan][prev], f"no edge from {prev} to {curr}"
            length += dist[prev][curr]
        shortest = dist[start][goal]
        success = nav_error < ERROR_MARGIN
        moved = _deduplicate(path)
        ndtw = math.exp(-dtw_distance(dist, moved, reference) / (ERROR_MARGIN * len(reference)))
        return {
            "nav_error": nav_error, "oracle_error": oracle_error, "success": float(success),
            "oracle_success": float(oracle_error < ERROR_MARGIN),
            "spl": shortest / max(length, shortest) if success else 0.0,
            "trajectory_length": length, "steps": len(path) - 1, "ndtw": ndtw, "sdtw": ndtw if success else 0.0,
            "cls": coverage_weighted_by_length(self.graphs[scan], dist, moved, reference),
        }

    def score(self, predictions: list[dict]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        remaining = set(self.gt)
        scores = {}
        for item in predictions:
            if item["instr_id"] in remaining:
                remaining.remove(item["instr_id"])
                scores[item["instr_id"]] = self.score_item(item["instr_id"], item["trajectory"])
        assert not remaining, f"trajectories not provided for {len(remaining)} instruction ids"
        n = len(scores)
        keys = ("nav_error", "spl", "trajectory_length", "steps", "ndtw", "sdtw", "cls")
        summary = {key: sum(s[key] for s in scores.values()) / n for key in keys}
        summary["success_rate"] = sum(s["success"] for s in scores.values()) / n
        summary["oracle_success_rate"] = sum(s["oracle_success"] for s in scores.values()) / n
        summary["num_episodes"] = n
        return summary, scores
