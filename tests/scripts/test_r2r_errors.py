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
