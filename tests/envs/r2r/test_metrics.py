"""R2R metrics: hand-computed fixtures, the reference implementations' worked examples, and agreement with an
independent re-implementation of the official evaluation on random valid trajectories over real scans."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from valan.problems.r2r.baselines import baseline_predictions
from valan.envs.r2r.dataset import R2REpisode, load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError
from valan.envs.r2r.metrics import (SUMMARY_KEYS, cls, dtw, evaluate_r2r, ndtw, parse_predictions, path_length,
                               remove_repeats, score_episode, sdtw)
from reference.r2r_eval import ReferenceEvaluation, all_pairs_dijkstra, dtw_distance, load_nav_graphs


def write_connectivity(directory, scan, positions, edges, excluded=()):
    """A ``{scan}_connectivity.json`` with viewpoints at ``positions`` {id: (x, y, z)} and undirected ``edges``."""
    ids = list(positions)
    records = []
    for vp in ids:
        x, y, z = positions[vp]
        records.append({
            "image_id": vp, "included": vp not in excluded, "height": 1.5, "visible": [False] * len(ids),
            "pose": [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1],
            "unobstructed": [(vp, w) in edges or (w, vp) in edges for w in ids]})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{scan}_connectivity.json").write_text(json.dumps(records))
    return directory


@pytest.fixture
def house(tmp_path):
    """A 3 m x 4 m room A-B-C-D with a corridor B-E, and an excluded viewpoint G.

        D(0,4) ---3--- C(3,4)
          |              |
          4              4
          |              |
        A(0,0) ---3--- B(3,0) ---3--- E(6,0)
    """
    positions = {"A": (0, 0, 0), "B": (3, 0, 0), "C": (3, 4, 0), "D": (0, 4, 0), "E": (6, 0, 0), "G": (9, 9, 0)}
    edges = {("A", "B"), ("B", "C"), ("C", "D"), ("D", "A"), ("B", "E"), ("E", "G")}
    return Connectivity(write_connectivity(tmp_path / "conn", "house", positions, edges, excluded={"G"}))


def episode(instr_id="7_0", path=("A", "B", "C"), scan="house"):
    return R2REpisode(instr_id=instr_id, path_id=int(instr_id.split("_")[0]), scan=scan, path=tuple(path),
                      heading=0.0, instruction="walk to the far corner")


def prediction(instr_id, viewpoints):
    return {"instr_id": instr_id, "trajectory": [[v, 0.0, 0.0] for v in viewpoints]}


def test_hand_computed_episode_turning_in_place_then_detour(house):
    g = house.graph("house")
    # Turns in place at A, walks A-D-C: 4 + 3 = 7 m, same as the 7 m shortest path A-B-C.
    r = score_episode(g, ["A", "A", "D", "C"], ["A", "B", "C"])
    assert r["nav_error"] == 0.0 and r["success"] and r["oracle_success"]
    assert r["trajectory_length"] == pytest.approx(7.0, abs=1e-12)
    assert r["shortest_path_length"] == pytest.approx(7.0, abs=1e-12)
    assert r["spl"] == pytest.approx(1.0, abs=1e-12)
    assert r["steps"] == 3  # every submitted entry counts, as in the official evaluation
    # DTW of [A, D, C] against [A, B, C] by hand: the cheapest monotone alignment is
    # (A,A)=0, (A,B)=3, (D,C)=3, (C,C)=0 -> 6 m.
    assert dtw(g, ["A", "A", "D", "C"], ["A", "B", "C"]) == pytest.approx(6.0, abs=1e-12)
    assert r["ndtw"] == pytest.approx(math.exp(-6.0 / (3.0 * 3)), abs=1e-12)
    assert r["sdtw"] == r["ndtw"]
    # Coverage: A and C are visited (distance 0), B is 3 m from A -> PC = (2 + e^-1) / 3; both paths are 7 m,
    # so LS = E / (E + |E - 7|) = PC and CLS = PC^2.
    pc = (2 + math.exp(-1.0)) / 3
    assert r["cls"] == pytest.approx(pc * pc, abs=1e-12)


def test_hand_computed_failures_and_the_strict_success_rule(house):
    g = house.graph("house")
    # Ends at E, 7 m from C; the closest it came was B at 4 m: neither success nor oracle success.
    r = score_episode(g, ["A", "B", "E"], ["A", "B", "C"])
    assert (r["nav_error"], r["oracle_error"], r["success"], r["oracle_success"]) == (7.0, 4.0, False, False)
    assert r["trajectory_length"] == 6.0 and r["spl"] == 0.0 and r["sdtw"] == 0.0 and r["steps"] == 2
    # Ends at D, exactly 3.0 m from the goal C: not a success (< 3.0 m everywhere), also for SDTW and oracle.
    r = score_episode(g, ["A", "D"], ["A", "B", "C"])
    assert r["nav_error"] == 3.0
    assert not r["success"] and not r["oracle_success"] and r["sdtw"] == 0.0 and r["spl"] == 0.0
    assert sdtw(g, ["A", "D"], ["A", "B", "C"]) == 0.0
    assert sdtw(g, ["A", "D"], ["A", "B", "C"], success_threshold=3.0 + 1e-9) == ndtw(g, ["A", "D"], ["A", "B", "C"])
    # Overshoot: A-B-E-B-C is 3+3+3+4 = 13 m for a 7 m path: success with SPL 7/13.
    r = score_episode(g, ["A", "B", "E", "B", "C"], ["A", "B", "C"])
    assert r["success"] and r["spl"] == pytest.approx(7.0 / 13.0, abs=1e-12)
    assert r["trajectory_length"] == pytest.approx(13.0, abs=1e-12)


def test_stopping_at_the_start(house):
    g = house.graph("house")
    r = score_episode(g, ["A"], ["A", "B", "C"])
    assert r["trajectory_length"] == 0.0 and r["steps"] == 0 and r["nav_error"] == 7.0
    # DTW of [A] against [A, B, C] = 0 + 3 + 7 m; coverage PC = (1 + e^-1 + e^-7/3) / 3; trajectory length 0, so
    # LS = E / (E + |E - 0|) = 1/2 and CLS = PC / 2.
    assert r["ndtw"] == pytest.approx(math.exp(-10.0 / 9.0), abs=1e-12)
    assert r["cls"] == pytest.approx((1 + math.exp(-1.0) + math.exp(-7.0 / 3.0)) / 3 / 2, abs=1e-12)


def test_reference_implementations_worked_examples(tmp_path):
    """The doctests of the nDTW/SDTW and CLS reference code, on networkx's 4 x 3 unit grid."""
    nodes = [(x, y) for x in range(4) for y in range(3)]
    name = {n: f"n{n[0]}{n[1]}" for n in nodes}
    edges = {(name[a], name[b]) for a in nodes for b in nodes if abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1}
    g = Connectivity(write_connectivity(tmp_path, "grid", {name[n]: (*n, 1.5) for n in nodes}, edges)).graph("grid")

    def path(*points):
        return [name[p] for p in points]

    prediction_ = path((0, 0), (1, 0), (2, 0), (3, 0))
    reference = path((0, 0), (1, 0), (2, 1), (3, 2))
    assert dtw(g, prediction_, reference) == pytest.approx(3.0, abs=1e-12)
    assert ndtw(g, prediction_, reference) == pytest.approx(0.77880078307140488, abs=1e-12)
    assert sdtw(g, prediction_, reference) == pytest.approx(0.77880078307140488, abs=1e-12)
    assert sdtw(g, prediction_[:2], reference) == 0.0

    reference = path((0, 0), (1, 0), (1, 1), (2, 1), (2, 2), (3, 2))
    assert cls(g, reference, reference) == pytest.approx(1.0, abs=1e-12)
    other = path((0, 0), (0, 1), (1, 1), (2, 1), (3, 1), (3, 2))
    assert cls(g, other, reference) == pytest.approx(0.81994915125863865, abs=1e-12)
    # The reference doctest calls cls(reference, prediction) with its (prediction, reference) signature, so its
    # third value scores the 6-node path as the trajectory against the 4-node path as the reference.
    short = path((0, 1), (1, 1), (2, 1), (3, 1))
    assert cls(g, reference, short) == pytest.approx(0.44197196102702557, abs=1e-12)


def test_ndtw_ignores_turning_in_place_and_accepts_indices(house):
    g = house.graph("house")
    ref = ["A", "B", "C"]
    assert ndtw(g, ref, ref) == 1.0 and cls(g, ref, ref) == 1.0
    assert ndtw(g, ["A", "A", "B", "B", "B", "C"], ref) == 1.0
    trajectory = ["A", "D", "D", "C"]
    ids = [g.local_index(v) for v in trajectory]
    assert ndtw(g, ids, [g.local_index(v) for v in ref]) == ndtw(g, trajectory, ref)
    assert remove_repeats([3, 3, 1, 1, 3]) == [3, 1, 3]
    assert path_length(g, ["A", "A", "D", "D", "C"]) == pytest.approx(7.0, abs=1e-12)


def test_dtw_matches_the_textbook_recursion_on_arbitrary_sequences(shared_r2r):
    """DTW is defined for any two node sequences: compare with the full-matrix recursion on a real scan."""
    connectivity = Connectivity(shared_r2r / "connectivity")
    scan = "17DRP5sb8fy"
    g = connectivity.graph(scan)
    distance = all_pairs_dijkstra(load_nav_graphs(shared_r2r / "connectivity", {scan})[scan])
    rng = random.Random(0)
    for _ in range(200):
        a = remove_repeats([rng.choice(g.viewpoints) for _ in range(rng.randint(1, 15))])
        b = [rng.choice(g.viewpoints) for _ in range(rng.randint(1, 8))]
        expected = dtw_distance(distance, a, b)
        assert abs(dtw(g, a, b) - expected) <= 1e-9
        assert abs(ndtw(g, a, b) - math.exp(-expected / (3.0 * len(b)))) <= 1e-12


def random_trajectory(graph, start, rng, max_entries=20):
    """A valid leaderboard trajectory: each entry stays in place (turning) or moves to a neighbour."""
    viewpoints = [start]
    for _ in range(rng.randint(0, max_entries)):
        here = graph.local_index(viewpoints[-1])
        if rng.random() < 0.25:
            viewpoints.append(viewpoints[-1])
        else:
            viewpoints.append(graph.viewpoints[int(rng.choice(list(graph.neighbors[here])))])
    return viewpoints


def test_equals_official_algorithm_on_random_valid_trajectories(shared_r2r):
    data = shared_r2r / "R2R_val_seen.json"
    episodes = load_r2r(data)
    connectivity = Connectivity(shared_r2r / "connectivity")
    reference = ReferenceEvaluation(data, shared_r2r / "connectivity")
    # The reference's own Dijkstra agrees with the graph module's distances (cross-check of the graphs).
    for scan in ("17DRP5sb8fy", "r47D5H71a5s"):
        g = connectivity.graph(scan)
        for i in range(0, len(g), 7):
            row = reference.distances[scan][g.viewpoints[i]]
            assert max(abs(row[v] - g.distances[i, j]) for j, v in enumerate(g.viewpoints)) <= 1e-9
    for seed in range(3):
        rng = random.Random(seed)
        predictions = [prediction(e.instr_id, random_trajectory(connectivity.graph(e.scan), e.start, rng))
                       for e in episodes]
        summary, per_episode = evaluate_r2r(episodes, predictions, connectivity)
        expected_summary, expected = reference.score(predictions)
        assert summary["num_episodes"] == expected_summary["num_episodes"] == 1021
        for key in SUMMARY_KEYS:
            assert abs(summary[key] - expected_summary[key]) <= 1e-9, key
        worst = max(abs(float(e[k]) - expected[e["instr_id"]][k]) for e in per_episode for k in expected[e["instr_id"]])
        assert worst <= 1e-9
        # Random trajectories exercise both outcomes, so the comparison covers SPL/SDTW for successes too.
        assert 0 < summary["success_rate"] < 1 and 0 < summary["oracle_success_rate"] < 1


def test_baselines_score_as_expected(shared_r2r):
    episodes = load_r2r(shared_r2r / "R2R_val_seen.json")
    connectivity = Connectivity(shared_r2r / "connectivity")
    shortest, _ = evaluate_r2r(episodes, baseline_predictions("shortest", episodes, connectivity), connectivity)
    assert shortest["success_rate"] == shortest["spl"] == shortest["ndtw"] == shortest["cls"] == 1.0
    assert shortest["nav_error"] == 0.0
    stop, _ = evaluate_r2r(episodes, baseline_predictions("stop", episodes, connectivity), connectivity)
    assert stop["trajectory_length"] == stop["steps"] == stop["success_rate"] == 0.0
    # Stopping at the start leaves the whole shortest path as error: the mean navigation error equals the
    # mean shortest-path length of the split, which the shortest-path agent walks.
    assert stop["nav_error"] == pytest.approx(shortest["trajectory_length"], abs=1e-9)
    random_walk, _ = evaluate_r2r(episodes, baseline_predictions("random", episodes, connectivity), connectivity)
    assert 0 < random_walk["success_rate"] < 0.2 and random_walk["steps"] <= 12


# --- validation -----------------------------------------------------------------------------------------------

def check_error(match, episodes, predictions, connectivity):
    with pytest.raises(InputError, match=match) as info:
        evaluate_r2r(episodes, predictions, connectivity, predictions_source="preds.json", data_source="data.json")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_rejects_incomplete_unknown_and_duplicate_predictions(house):
    episodes = [episode("7_0"), episode("7_1")]
    good = prediction("7_0", ["A", "B", "C"])
    assert "instr_id 7_1" in check_error(r"^preds\.json: .*no prediction for 1 of 2", episodes, [good], house)
    extra = [good, prediction("7_1", ["A"]), prediction("9_0", ["A"])]
    assert "instr_id 9_0" in check_error(r"^preds\.json: instr_id 9_0: .*not in data\.json", episodes, extra, house)
    duplicate = [good, prediction("7_1", ["A"]), good]
    check_error(r"^preds\.json: instr_id 7_0: duplicate prediction", episodes, duplicate, house)


def test_rejects_invalid_trajectories(house):
    episodes = [episode("7_0")]
    check_error(r"instr_id 7_0: trajectory starts at 'B'", episodes, [prediction("7_0", ["B", "C"])], house)
    check_error(r"instr_id 7_0: trajectory entry 2: no edge from 'B' to 'D'", episodes,
                [prediction("7_0", ["A", "B", "D"])], house)
    check_error(r"instr_id 7_0: trajectory entry 1: unknown viewpoint 'Z'", episodes,
                [prediction("7_0", ["A", "Z"])], house)
    # An excluded viewpoint is not part of the navigation graph.
    check_error(r"unknown viewpoint 'G'", episodes, [prediction("7_0", ["A", "B", "E", "G"])], house)


def test_rejects_malformed_prediction_records(house):
    for records, match in (
            ({"7_0": []}, r"^p\.json: expected a JSON list"),
            ([["7_0"]], r"^p\.json: record 0: expected a JSON object"),
            ([{"trajectory": [["A", 0, 0]]}], r"^p\.json: record 0: missing field 'instr_id'"),
            ([{"instr_id": "7_0"}], r"^p\.json: instr_id 7_0: missing field 'trajectory'"),
            ([{"instr_id": 7, "trajectory": [["A", 0, 0]]}], r"record 0: field 'instr_id' must be a string"),
            ([{"instr_id": "7_0", "trajectory": []}], r"instr_id 7_0: field 'trajectory' must be a non-empty"),
            ([{"instr_id": "7_0", "trajectory": [[1.0, 0, 0]]}], r"instr_id 7_0: trajectory entry 0 must be")):
        with pytest.raises(InputError, match=match):
            parse_predictions(records, "p.json")


def test_rejects_splits_without_reference_paths(house):
    test_split = [episode("7_0", path=("A",))]
    check_error(r"^data\.json: instr_id 7_0: no reference path \(a test split\?\)", test_split,
                [prediction("7_0", ["A", "B"])], house)
    check_error(r"^data\.json: no episodes to score", [], [], house)


def test_per_episode_results_follow_the_data_order(house):
    episodes = [episode("7_0"), episode("7_1", path=("A", "D"))]
    predictions = [prediction("7_1", ["A", "D"]), prediction("7_0", ["A", "B", "E"])]
    summary, per_episode = evaluate_r2r(episodes, predictions, house)
    assert [e["instr_id"] for e in per_episode] == ["7_0", "7_1"]
    assert summary["success_rate"] == 0.5 and summary["num_episodes"] == 2
    assert summary["trajectory_length"] == pytest.approx((6.0 + 4.0) / 2, abs=1e-12)
    assert list(summary) == list(SUMMARY_KEYS)
    assert np.isclose(summary["spl"], 0.5)
