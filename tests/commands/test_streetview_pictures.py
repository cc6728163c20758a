"""Street View pictures and predictions: ``valan evaluate streetview --plot-dir / --save-predictions`` and the
Touchdown problem's evaluation plots."""

from __future__ import annotations

import json

from PIL import Image

from helpers.checkpoints import save_trained
from valan.cli import main
from valan.data import sample_path
from valan.envs.drawing import END, REFERENCE, TRAJECTORY
from valan.envs.streetview.dataset import load_routes

ROUTES = sample_path("streetview/touchdown_sample.jsonl")


def colours_of(path):
    with Image.open(path) as image:
        return {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}


def test_plot_dir_draws_every_route_with_its_trajectory(tmp_path, capsys):
    routes = load_routes(ROUTES)
    predictions = [{"route_id": r.id, "trajectory": list(r.route[:max(1, len(r.route) // 2)])} for r in routes]
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(predictions))
    assert main(["evaluate", "streetview", "--predictions", str(preds), "--plot-dir", str(tmp_path / "plots")]) == 0
    files = sorted((tmp_path / "plots").iterdir())
    assert [f.name for f in files] == sorted(f"{r.id}.png" for r in routes)
    assert {REFERENCE, TRAJECTORY, END} <= colours_of(files[0])
    # --save-predictions belongs to --checkpoint; the predictions of --predictions are already a file
    assert main(["evaluate", "streetview", "--predictions", str(preds), "--save-predictions", str(tmp_path / "x")]) == 2
    assert "--save-predictions needs --checkpoint" in capsys.readouterr().err


def test_checkpoint_predictions_are_saved_as_predict_writes_them(tmp_path, capsys, one_torch_thread):
    from valan.problems.streetview.config import TouchdownConfig

    ckpt = save_trained(tmp_path / "td.pt", TouchdownConfig())
    saved, predicted = tmp_path / "saved.json", tmp_path / "predicted.json"
    assert main(["evaluate", "streetview", "--checkpoint", str(ckpt), "--save-predictions", str(saved)]) == 0
    assert "task completion (TC)" in capsys.readouterr().out
    assert main(["predict", "streetview", "--checkpoint", str(ckpt), "--data", str(ROUTES), "--output",
                 str(predicted), "--no-progress"]) == 0
    assert json.loads(saved.read_text()) == json.loads(predicted.read_text())
    assert len(json.loads(saved.read_text())) == len(load_routes(ROUTES))


def test_touchdown_evaluation_plots_from_environment_records(tmp_path):
    from valan.problems import get_problem
    from valan.problems.streetview.config import TouchdownConfig

    problem, config = get_problem("touchdown"), TouchdownConfig()
    routes = load_routes(ROUTES)
    records = [{"id": r.id, "trajectory": list(r.route)} for r in routes]  # as BatchedTouchdownEnv reports them
    written = problem.write_plots(config, "dev", records, tmp_path, 3)
    assert [p.name for p in written] == [f"{r.id}.png" for r in routes[:3]]
    assert all(TRAJECTORY in colours_of(p) for p in written)
