"""``valan evaluate r2r`` end to end on the bundled sample: output formats, plots, baselines and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from valan.problems.r2r.baselines import baseline_predictions
from valan.cli import main
from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.envs.r2r.metrics import SUMMARY_KEYS, evaluate_r2r

METRIC_KEYS = {"nav_error", "oracle_error", "success", "oracle_success", "spl", "trajectory_length",
               "shortest_path_length", "steps", "ndtw", "sdtw", "cls"}


@pytest.fixture(scope="module")
def sample(sample_val, sample_connectivity):
    episodes = load_r2r(sample_val)
    return episodes, Connectivity(sample_connectivity)


@pytest.fixture
def random_predictions(sample, tmp_path):
    episodes, connectivity = sample
    predictions = baseline_predictions("random", episodes, connectivity, seed=3)
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(predictions))
    return path, predictions


def run_cli(capsys, *argv):
    rc = main(["evaluate", "r2r", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_summary_equals_the_library(capsys, sample, random_predictions):
    path, predictions = random_predictions
    rc, out, err = run_cli(capsys, "--predictions", path, "--json")
    assert rc == 0
    result = json.loads(out)
    assert list(result) == list(SUMMARY_KEYS)
    expected, _ = evaluate_r2r(*sample[:1], predictions, sample[1])
    assert result == pytest.approx(expected, abs=1e-12)
    assert result["num_episodes"] == 87 and 0 <= result["success_rate"] <= 1


def test_per_episode_json(capsys, random_predictions):
    path, predictions = random_predictions
    rc, out, _ = run_cli(capsys, "--predictions", path, "--json", "--per-episode")
    assert rc == 0
    episodes = json.loads(out)["episodes"]
    assert [e["instr_id"] for e in episodes] == [p["instr_id"] for p in predictions]
    assert all(set(e) == METRIC_KEYS | {"instr_id", "scan"} for e in episodes)
    assert all(e["steps"] == len(p["trajectory"]) - 1 for e, p in zip(episodes, predictions))


def test_table_output(capsys, random_predictions):
    path, _ = random_predictions
    rc, out, _ = run_cli(capsys, "--predictions", path, "--per-episode")
    assert rc == 0
    assert "87 episodes" in out and "success = navigation error < 3.0 m" in out
    for label in ("success rate (SR)", "SPL", "navigation error (NE), m", "nDTW", "SDTW", "CLS"):
        assert label in out
    assert out.count("\n") > 87  # one line per episode


def test_plots_one_png_per_episode(capsys, random_predictions, tmp_path):
    path, predictions = random_predictions
    plots = tmp_path / "plots"
    rc, _, _ = run_cli(capsys, "--predictions", path, "--plot-dir", plots)
    assert rc == 0
    files = sorted(plots.iterdir())
    assert [f.name for f in files] == sorted(f"{p['instr_id']}.png" for p in predictions)
    with Image.open(files[0]) as image:
        assert image.format == "PNG" and image.size[0] % 512 == 0  # one 512-pixel panel per floor visited
        colours = {c for _, c in image.getcolors(maxcolors=1 << 16)}
    assert (100, 149, 237) in colours and (255, 140, 0) in colours  # reference and trajectory drawn


def test_baselines_all(capsys):
    rc, out, _ = run_cli(capsys, "--baseline", "all", "--json")
    assert rc == 0
    result = json.loads(out)
    assert list(result) == ["random", "shortest", "stop"]
    assert result["shortest"]["success_rate"] == 1.0 and result["shortest"]["spl"] == 1.0
    assert result["stop"]["trajectory_length"] == 0.0 and result["stop"]["success_rate"] == 0.0
    rc, again, _ = run_cli(capsys, "--baseline", "random", "--json")
    assert json.loads(again)["random"] == result["random"]  # seeded
    rc, other, _ = run_cli(capsys, "--baseline", "random", "--json", "--seed", "1")
    assert json.loads(other)["random"] != result["random"]
    rc, table, _ = run_cli(capsys, "--baseline", "all")
    assert "random" in table and "shortest" in table and "stop" in table


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_one_line_error(capsys, argv, *fragments, plots=None):
    rc, out, err = run_cli(capsys, *argv, *(["--plot-dir", plots] if plots else []))
    assert rc == 2 and out == ""
    assert err.startswith("valan: error: ") and err.count("\n") == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    if plots:
        assert not plots.exists()  # nothing written on error


def test_errors_are_one_line_with_file_and_instr_id(capsys, sample, tmp_path):
    episodes, connectivity = sample
    good = baseline_predictions("shortest", episodes, connectivity)
    plots = tmp_path / "plots"
    bad_json = write(tmp_path, "bad.json", '[{"instr_id": "139_0",')
    assert_one_line_error(capsys, ["--predictions", bad_json], "bad.json", "malformed JSON", plots=plots)
    not_list = write(tmp_path, "obj.json", '{"instr_id": "139_0"}')
    assert_one_line_error(capsys, ["--predictions", not_list], "obj.json", "expected a JSON list", plots=plots)
    missing = write(tmp_path, "missing.json", json.dumps(good[1:]))
    assert_one_line_error(capsys, ["--predictions", missing], "missing.json", f"instr_id {good[0]['instr_id']}",
                          "no prediction for 1 of 87", plots=plots)
    duplicated = write(tmp_path, "dup.json", json.dumps(good + good[-1:]))
    assert_one_line_error(capsys, ["--predictions", duplicated], "dup.json", f"instr_id {good[-1]['instr_id']}",
                          "duplicate prediction", plots=plots)
    unknown = write(tmp_path, "unknown.json", json.dumps(good + [{"instr_id": "999999_0", "trajectory": [["x"]]}]))
    assert_one_line_error(capsys, ["--predictions", unknown], "instr_id 999999_0", plots=plots)
    # The last episode jumps between two viewpoints with no edge (its start and its goal).
    jump = [dict(p) for p in good]
    ep = episodes[-1]
    jump[-1]["trajectory"] = [[ep.start, 0, 0], [ep.goal, 0, 0]]
    assert not connectivity.graph(ep.scan).adjacent(ep.start, ep.goal)
    jumped = write(tmp_path, "jump.json", json.dumps(jump))
    assert_one_line_error(capsys, ["--predictions", jumped], "jump.json", f"instr_id {ep.instr_id}", "no edge",
                          plots=plots)
    assert_one_line_error(capsys, ["--predictions", tmp_path / "absent.json"], "absent.json", "file not found")
    assert_one_line_error(capsys, [], "--predictions FILE", "--checkpoint CKPT", "--baseline")


def test_test_split_cannot_be_scored(capsys, sample, tmp_path):
    episodes, _ = sample
    ep = episodes[0]
    data = write(tmp_path, "R2R_test.json", json.dumps([{"scan": ep.scan, "path_id": 1, "path": [ep.start],
                                                          "heading": 0.0, "instructions": ["go"]}]))
    preds = write(tmp_path, "p.json", json.dumps([{"instr_id": "1_0", "trajectory": [[ep.start, 0, 0]]}]))
    assert_one_line_error(capsys, ["--data", data, "--predictions", preds], "R2R_test.json", "instr_id 1_0",
                          "no reference path")


def test_console_entry_point_exit_status(tmp_path):
    bad = write(tmp_path, "bad.json", "not json")
    proc = subprocess.run([sys.executable, "-m", "valan.cli", "evaluate", "r2r", "--predictions", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("valan: error: ") and "bad.json" in proc.stderr


def test_checkpoint_of_another_problem_is_refused(capsys, tmp_path):
    from valan.checkpoint import save_checkpoint
    from valan.config import to_dict
    from valan.problems.streetview.config import TouchdownConfig

    save_checkpoint(tmp_path / "touchdown.pt", {"model": {}, "config": to_dict(TouchdownConfig()),
                                                "problem": "touchdown"})
    assert_one_line_error(capsys, ["--checkpoint", tmp_path / "touchdown.pt"],
                          "touchdown.pt", "a 'touchdown' checkpoint, not an R2R one")
