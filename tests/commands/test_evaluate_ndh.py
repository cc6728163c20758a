"""``valan evaluate ndh`` end to end on the bundled format sample: JSON keys, per-episode output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from valan.cli import main
from valan.data import sample_path
from valan.envs.ndh.dataset import load_ndh
from valan.envs.ndh.metrics import EPISODE_KEYS, SUMMARY_KEYS, evaluate_ndh
from valan.envs.r2r.graph import Connectivity

VAL = sample_path("ndh/NDH_sample_val.json")


@pytest.fixture
def player_predictions(tmp_path):
    predictions = [{"inst_idx": e.inst_idx, "trajectory": [[vp, 0.0, 0.0] for vp in e.player_path]}
                   for e in load_ndh(VAL)]
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(predictions))
    return path, predictions


def run_cli(capsys, *argv):
    rc = main(["evaluate", "ndh", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_equals_the_library_for_each_path_type(capsys, player_predictions):
    path, predictions = player_predictions
    for path_type in ("planner_path", "player_path", "trusted_path"):
        rc, out, _ = run_cli(capsys, "--predictions", path, "--json", "--path-type", path_type)
        assert rc == 0
        result = json.loads(out)
        assert list(result) == list(SUMMARY_KEYS) and result["num_episodes"] == 87
        expected, _ = evaluate_ndh(load_ndh(VAL), predictions, Connectivity(sample_path("connectivity")), path_type)
        assert result == pytest.approx(expected, abs=1e-12)
        if path_type == "player_path":
            assert result["nav_error"] == 0.0 and result["success_rate"] == 1.0


def test_per_episode_json_and_table(capsys, player_predictions):
    path, predictions = player_predictions
    rc, out, _ = run_cli(capsys, "--predictions", path, "--json", "--per-episode")
    episodes = json.loads(out)["episodes"]
    assert rc == 0 and [e["inst_idx"] for e in episodes] == [p["inst_idx"] for p in predictions]
    assert all(set(e) == set(EPISODE_KEYS) | {"inst_idx", "scan"} for e in episodes)
    rc, out, _ = run_cli(capsys, "--predictions", path, "--per-episode")
    assert rc == 0 and "goal progress (GP), m" in out and "87 instances" in out and out.count("\n") > 87


def test_bad_input_is_one_line_exit_2(capsys, player_predictions, tmp_path):
    path, predictions = player_predictions
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps(predictions[1:]))
    rc, out, err = run_cli(capsys, "--predictions", missing)
    assert rc == 2 and out == "" and err.count("\n") == 1 and "no prediction for 1 of 87" in err
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    rc, _, err = run_cli(capsys, "--predictions", broken)
    assert rc == 2 and err.count("\n") == 1 and str(broken) in err
    test_form = tmp_path / "test.json"
    test_form.write_text(json.dumps([{k: v for k, v in r.items() if k not in ("end_panos", "planner_path",
                                                                              "player_path")}
                                     for r in json.loads(VAL.read_text())]))
    rc, _, err = run_cli(capsys, "--predictions", path, "--data", test_form)
    assert rc == 2 and err.count("\n") == 1 and "cannot be scored" in err


def test_the_installed_command_runs():
    result = subprocess.run([sys.executable, "-m", "valan.cli", "evaluate", "ndh", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--path-type" in result.stdout
