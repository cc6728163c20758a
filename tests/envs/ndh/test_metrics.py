"""valan's NDH metrics equal CVDN's evaluator (tests/reference/ndh_eval.py, networkx as CVDN) and reject bad input."""

from __future__ import annotations

import numpy as np
import pytest
from reference.ndh_eval import Evaluation

from valan.envs.ndh.dataset import PATH_TYPES, parse_ndh
from valan.envs.ndh.metrics import evaluate_ndh
from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError


def random_walk(graph, start: str, hops: int, rng: np.random.Generator, repeat: float = 0.0) -> list[str]:
    """A walk of ``hops`` moves along edges from ``start``; with probability ``repeat`` a step stays in place."""
    walk = [start]
    for _ in range(hops):
        here = graph.local_index(walk[-1])
        neighbours = graph.neighbors[here]
        if rng.random() < repeat or len(neighbours) == 0:
            walk.append(walk[-1])
        else:
            walk.append(graph.viewpoints[int(rng.choice(neighbours))])
    return walk


def random_records(connectivity: Connectivity, scans: list[str], count: int, seed: int) -> list[dict]:
    """``count`` NDH training-form records: player paths that do and do not pass the planner goal, planner paths
    of length 1 (already at the goal), end regions of 1-4 viewpoints around the planner goal."""
    rng = np.random.default_rng(seed)
    records = []
    for n in range(count):
        scan = scans[n % len(scans)]
        graph = connectivity.graph(scan)
        connected = [vp for i, vp in enumerate(graph.viewpoints) if len(graph.neighbors[i])]
        start = connected[int(rng.integers(len(connected)))]
        planner = random_walk(graph, start, int(rng.integers(0, 6)), rng)
        if n % 3 == 0:  # the player walks through the planner goal, then on
            player = planner + random_walk(graph, planner[-1], int(rng.integers(0, 4)), rng)[1:]
        else:
            player = random_walk(graph, start, int(rng.integers(0, 8)), rng)
        region = random_walk(graph, planner[-1], int(rng.integers(0, 4)), rng)
        records.append({
            "inst_idx": 1000 + n, "scan": scan, "target": "plant",
            "start_pano": {"heading": float(rng.uniform(0, 6.28)), "elevation": 0.0, "pano": start},
            "nav_camera": [], "nav_history": [start], "game_idx": n,
            "dialog_history": [{"nav_idx": 0, "role": "navigator", "message": "where?"},
                               {"nav_idx": 0, "role": "oracle", "message": "go left"}],
            "end_panos": sorted(set(region)), "planner_path": planner, "player_path": player})
    return records


def random_predictions(connectivity: Connectivity, records: list[dict], path_type_start, seed: int) -> list[dict]:
    """One random walk (0-15 moves, some turns in place) per record from ``path_type_start(record)``."""
    rng = np.random.default_rng(seed)
    return [{"inst_idx": r["inst_idx"],
             "trajectory": [[vp, 0.0, 0.0] for vp in random_walk(connectivity.graph(r["scan"]), path_type_start(r),
                                                                  int(rng.integers(0, 16)), rng, repeat=0.2)]}
            for r in records]


def trusted_start(record: dict) -> str:
    return record["player_path"][0]  # every path of a record starts at the same viewpoint here


@pytest.mark.parametrize("path_type", PATH_TYPES)
def test_equals_cvdn_evaluator_on_random_valid_predictions(shared_r2r, path_type):
    connectivity = Connectivity(shared_r2r / "connectivity")
    scans = connectivity.scans()[::9]  # 10 scans of the 90
    records = random_records(connectivity, scans, 300, seed=1)
    predictions = random_predictions(connectivity, records, trusted_start, seed=2)
    summary, per_episode = evaluate_ndh(parse_ndh(records, connectivity=connectivity), predictions, connectivity,
                                        path_type)
    expected, items = Evaluation(records, shared_r2r / "connectivity", path_type).score(predictions)
    assert set(summary) == set(expected) | {"num_episodes"} and summary["num_episodes"] == 300
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, abs=1e-9), key
    for ours in per_episode:
        theirs = items[ours["inst_idx"]]
        for key in ("nav_error", "oracle_error", "goal_progress", "trajectory_length", "spl", "shortest_path_length"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9), (key, ours["inst_idx"])
    # the sample exercises both branches of trusted_path and of the zero-length SPL rule
    assert 0 < sum(r["planner_path"][-1] in r["player_path"][1:] for r in records) < 300
    assert any(e["shortest_path_length"] == 0 and e["success"] for e in per_episode)
    assert 0 < summary["success_rate"] < 1


def small_case(sample_connectivity):
    from valan.data import sample_path
    from valan.envs.ndh.dataset import load_ndh

    episodes = load_ndh(sample_path("ndh/NDH_sample_val.json"))[:3]
    connectivity = Connectivity(sample_connectivity)
    stop = [{"inst_idx": e.inst_idx, "trajectory": [[e.planner_path[0], 0.0, 0.0]]} for e in episodes]
    return episodes, connectivity, stop


def test_hand_checked_stop_and_follow(sample_connectivity):
    episodes, connectivity, stop = small_case(sample_connectivity)
    summary, per_episode = evaluate_ndh(episodes, stop, connectivity)
    assert summary["goal_progress"] == 0.0 and summary["trajectory_length"] == 0.0
    follow = [{"inst_idx": e.inst_idx, "trajectory": [[vp, 0.0, 0.0] for vp in e.planner_path]} for e in episodes]
    summary, per_episode = evaluate_ndh(episodes, follow, connectivity)
    assert summary["nav_error"] == 0.0 and summary["success_rate"] == 1.0 and summary["spl"] == pytest.approx(1.0)
    graph = connectivity.graph(episodes[0].scan)
    start_to_region = min(graph.distance(episodes[0].planner_path[0], e) for e in episodes[0].end_panos)
    end_to_region = min(graph.distance(episodes[0].planner_path[-1], e) for e in episodes[0].end_panos)
    assert per_episode[0]["goal_progress"] == pytest.approx(start_to_region - end_to_region)


@pytest.mark.parametrize("change, message", [
    (lambda p: p[:-1], "no prediction for 1 of 3 instances"),
    (lambda p: p + [{"inst_idx": 1, "trajectory": p[0]["trajectory"]}], "not in the data"),
    (lambda p: p + [p[0]], "duplicate prediction"),
    (lambda p: [{**p[0], "inst_idx": "7"}] + p[1:], "'inst_idx' must be an integer"),
    (lambda p: [{**p[0], "trajectory": [["nowhere", 0, 0]]}] + p[1:], "unknown viewpoint 'nowhere'"),
])
def test_rejects_bad_predictions(sample_connectivity, change, message):
    episodes, connectivity, stop = small_case(sample_connectivity)
    with pytest.raises(InputError, match=message):
        evaluate_ndh(episodes, change(stop), connectivity)


def test_rejects_trajectories_off_the_graph_or_the_start(sample_connectivity):
    episodes, connectivity, stop = small_case(sample_connectivity)
    far = episodes[0].planner_path[-1]
    jump = [{**stop[0], "trajectory": stop[0]["trajectory"] + [[far, 0, 0]]}] + stop[1:]
    with pytest.raises(InputError, match="no edge from"):
        evaluate_ndh(episodes, jump, connectivity)
    elsewhere = [{**stop[0], "trajectory": [[far, 0, 0]]}] + stop[1:]
    with pytest.raises(InputError, match="not at the path's start"):
        evaluate_ndh(episodes, elsewhere, connectivity)
