"""A slow, independent re-implementation of CVDN's NDH evaluation (``tasks/NDH/eval.py``), for cross-checking
``valan.envs.ndh.metrics``.

It follows CVDN's algorithm step by step: graphs built with networkx as its ``load_nav_graphs`` builds them
(included viewpoints, unobstructed edges, Euclidean weights), all-pairs distances from networkx's
``all_pairs_dijkstra_path_length``, ``trusted_path`` as its ``Evaluation.__init__`` derives it, per-instance scores as
``Evaluation._score_item`` (``_get_nearest`` scanning for the strictly nearest viewpoint, trajectory length summed
over consecutive entries) and the summary as ``Evaluation.score`` (SPL's zero-length rule). It works on raw JSON
records and shares no code with valan.
"""

from __future__ import annotations

import json
import os

import networkx as nx

ERROR_MARGIN = 3.0  # metres


def load_nav_graphs(connectivity_dir: str | os.PathLike, scans: set[str]) -> dict[str, nx.Graph]:
    graphs = {}
    for scan in scans:
        with open(os.path.join(connectivity_dir, f"{scan}_connectivity.json")) as f:
            data = json.load(f)
        graph = nx.Graph()
        for item in data:
            if not item["included"]:
                continue
            for j, connected in enumerate(item["unobstructed"]):
                if connected and data[j]["included"]:
                    weight = sum((item["pose"][k] - data[j]["pose"][k]) ** 2 for k in (3, 7, 11)) ** 0.5
                    graph.add_edge(item["image_id"], data[j]["image_id"], weight=weight)
        graphs[scan] = graph
    return graphs


class Evaluation:
    """CVDN's ``Evaluation`` over NDH ``records`` (JSON dicts) for ``path_type``."""

    def __init__(self, records: list[dict], connectivity_dir: str | os.PathLike, path_type: str = "planner_path"):
        self.path_type = path_type
        self.gt = {}
        for item in records:
            item = dict(item)
            if path_type == "trusted_path":
                planner_goal = item["planner_path"][-1]
                item["trusted_path"] = (item["player_path"][:] if planner_goal in item["player_path"][1:]
                                        else item["planner_path"][:])
            self.gt[item["inst_idx"]] = item
        self.graphs = load_nav_graphs(connectivity_dir, {item["scan"] for item in records})
        self.distances = {scan: dict(nx.all_pairs_dijkstra_path_length(g)) for scan, g in self.graphs.items()}

    def _get_nearest(self, scan: str, goal: str, path: list) -> str:
        near_id = path[0][0]
        near_d = self.distances[scan][near_id][goal]
        for item in path:
            d = self.distances[scan][item[0]][goal]
            if d < near_d:
                near_id, near_d = item[0], d
        return near_id

    def score_item(self, inst_idx: int, path: list) -> dict[str, float]:
        gt = self.gt[inst_idx]
        dist = self.distances[gt["scan"]]
        start, goal = gt[self.path_type][0], gt[self.path_type][-1]
        assert start == path[0][0]
        planner_goal = gt["planner_path"][-1]
        final = path[-1][0]
        nearest = self._get_nearest(gt["scan"], goal, path)
        nearest_planner = self._get_nearest(gt["scan"], planner_goal, path)
        to_end_start = to_end_final = None
        for end in gt["end_panos"]:
            d = dist[start][end]
            if to_end_start is None or d < to_end_start:
                to_end_start = d
            d = dist[final][end]
            if to_end_final is None or d < to_end_final:
                to_end_final = d
        length = 0.0
        previous = path[0]
        for current in path[1:]:
            if previous[0] != current[0]:
                self.graphs[gt["scan"]][previous[0]][current[0]]  # KeyError when not an edge, as in CVDN
            length += dist[previous[0]][current[0]]
            previous = current
        return {"nav_error": dist[final][goal], "oracle_error": dist[nearest][goal],
                "oracle_plan_error": dist[nearest_planner][planner_goal],
                "goal_progress": to_end_start - to_end_final, "trajectory_length": length,
                "shortest_path_length": dist[start][goal]}

    def score(self, predictions: list[dict]) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
        """Summary (valan's key names) and per-instance scores."""
        items = {p["inst_idx"]: self.score_item(p["inst_idx"], p["trajectory"]) for p in predictions}
        assert set(items) == set(self.gt)
        spls = {}
        for inst_idx, s in items.items():
            if s["nav_error"] < ERROR_MARGIN:
                sp = s["shortest_path_length"]
                spls[inst_idx] = sp / max(s["trajectory_length"], sp) if sp > 0 else (
                    1 if s["trajectory_length"] == 0 else 0)
            else:
                spls[inst_idx] = 0
            s["spl"] = spls[inst_idx]
        n = float(len(items))

        def rate(key: str) -> float:
            return len([s for s in items.values() if s[key] < ERROR_MARGIN]) / n

        def average(key: str) -> float:
            return sum(s[key] for s in items.values()) / n

        return {"trajectory_length": average("trajectory_length"), "nav_error": average("nav_error"),
                "oracle_error": average("oracle_error"), "oracle_success_rate": rate("oracle_error"),
                "success_rate": rate("nav_error"), "spl": average("spl"),
                "oracle_path_success_rate": rate("oracle_plan_error"),
                "goal_progress": average("goal_progress")}, items
