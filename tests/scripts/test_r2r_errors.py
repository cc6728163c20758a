"""scripts/r2r_errors.py: the first-step and path-length breakdown and the word shares, on the bundled R2R sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.graph import Connectivity

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "r2r_errors.py"
DATA, TRAIN = ROOT / "data" / "R2R_sample_val_seen.json", ROOT / "data" / "R2R_sample_train.json"
CONNECTIVITY = ROOT / "data" / "connectivity"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def wrong_neighbour(connectivity: Connectivity, scan: str, start: str, avoid: str) -> str | None:
    graph = connectivity.graph(scan)
    return next((graph.viewpoints[i] for i in graph.neighbors[graph.local_index(start)]
                 if graph.viewpoints[i] != avoid), None)


def test_episodes_split_by_their_first_step_and_path_length(tmp_path):
    connectivity = Connectivity(CONNECTIVITY)
    episodes = load_r2r(DATA, connectivity)
    predictions, right = [], []
    for n, ep in enumerate(episodes):
        wrong = wrong_neighbour(connectivity, ep.scan, ep.path[0], ep.path[1])
        right.append(n % 3 != 0 or wrong is None)
        if not right[-1]:  # a wrong first step, then stop: a failure
            path = [ep.path[0], wrong]
        elif n % 3 == 2:  # the right first step, then stop there: a failure where the path is longer than 3 m
            path = list(ep.path[:2])
        else:  # the reference path, turning on the spot first: right first step, success
            path = [ep.path[0], *ep.path]
        predictions.append({"instr_id": ep.instr_id, "trajectory": [[v, 0.0, 0.0] for v in path]})
    (tmp_path / "pred.json").write_text(json.dumps(predictions))
    result = run("--data", str(DATA), "--predictions", str(tmp_path / "pred.json"), "--connectivity",
                 str(CONNECTIVITY), "--train", str(TRAIN), "--vocab", str(ROOT / "data" / "train_vocab.txt"))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["episodes"] == len(episodes)
    assert out["first_step_accuracy"] == pytest.approx(sum(right) / len(right))
    assert out["success_rate_after_first_step"]["wrong"] == 0.0
    assert 0.4 < out["success_rate_after_first_step"]["right"] < 0.8  # the reference paths succeed
    assert sum(h["episodes"] for h in out["by_hops"].values()) == len(episodes)
    assert set(out["by_hops"]) == {str(len(ep.path) - 1) for ep in episodes}
    words = out["words"]
    assert words["tokens"] > 1000
    assert 0 <= words["seen_under_1_times"] <= words["seen_under_5_times"] <= words["seen_under_50_times"] < 1
    assert words["out_of_vocabulary"] > 0  # the sample's vocabulary is R2R's train vocabulary: it misses some


def test_predictions_that_miss_an_episode_are_a_one_line_error(tmp_path):
    (tmp_path / "pred.json").write_text("[]")
    result = run("--data", str(DATA), "--predictions", str(tmp_path / "pred.json"), "--connectivity",
                 str(CONNECTIVITY))
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "pred.json" in result.stderr


def test_failures_split_into_passing_the_goal_stopping_short_and_going_long(tmp_path):
    connectivity = Connectivity(CONNECTIVITY)
    predictions, expected = [], {"passed_goal": 0, "stopped_short": 0, "went_long": 0}
    episodes = load_r2r(DATA, connectivity)
    for n, ep in enumerate(episodes):
        graph = connectivity.graph(ep.scan)
        goal = ep.path[-1]
        far = lambda v: graph.distance(v, goal) >= 3.0  # noqa: E731  (outside the success radius)
        beyond = next((graph.viewpoints[i] for i in graph.neighbors[graph.local_index(goal)]
                       if far(graph.viewpoints[i])), None)
        wrong = wrong_neighbour(connectivity, ep.scan, ep.path[0], ep.path[1])
        if n % 3 == 0 and beyond is not None:  # the reference path, one step past the goal
            path, kind = [*ep.path, beyond], "passed_goal"
        elif n % 3 == 1 and far(ep.path[0]) and far(ep.path[1]):  # one step, then stop
            path, kind = list(ep.path[:2]), "stopped_short"
        elif n % 3 == 2 and wrong is not None and far(ep.path[0]) and far(wrong):  # back and forth, never near
            path, kind = [ep.path[0], *[wrong, ep.path[0]] * 20], "went_long"
        else:  # the reference path: a success, counted nowhere
            path, kind = list(ep.path), None
        if kind is not None:
            expected[kind] += 1
        predictions.append({"instr_id": ep.instr_id, "trajectory": [[v, 0.0, 0.0] for v in path]})
    (tmp_path / "pred.json").write_text(json.dumps(predictions))
    result = run("--data", str(DATA), "--predictions", str(tmp_path / "pred.json"), "--connectivity",
                 str(CONNECTIVITY))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert all(count > 5 for count in expected.values()), expected  # every kind occurs
    assert out["failures"] == {k: pytest.approx(v / len(episodes)) for k, v in expected.items()}
    assert out["success_rate"] == pytest.approx(1 - sum(expected.values()) / len(episodes))
