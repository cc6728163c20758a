"""``valan train`` on the bundled R2R sample, and ``valan evaluate r2r --checkpoint`` on what it wrote."""

from __future__ import annotations

import json

import pytest

from valan.cli import main
from valan.features.stores import SYNTHETIC_NOTE
from valan.distributed.evaluation import EvalAggregator


def test_resume_without_checkpoint_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("valan: error: ") and "no checkpoint to resume from" in err and err.count("\n") == 1


def test_init_from_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--init-from", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]) == 2
    assert "checkpoint file not found" in capsys.readouterr().err


def test_unknown_override_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--set", "learning.lr_typo=1", "--out", str(tmp_path)]) == 2
    assert "learning.lr_typo" in capsys.readouterr().err


@pytest.mark.slow
def test_train_on_the_sample_then_evaluate_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--out", str(out), "--no-progress",
                   "--set", "run.total_env_steps=384", "--set", "run.checkpoint_every_env_steps=0",
                   "--set", "distributed.num_actors=1", "--set", "distributed.envs_per_actor=8",
                   "--set", "learning.batch_size=8", "--set", "learning.unroll_length=6"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "untrained" in printed and "success_rate" in printed and "spl" in printed and "ndtw" in printed
    assert SYNTHETIC_NOTE in printed
    assert (out / "config.yaml").is_file()
    (checkpoint,) = (out / "checkpoints").glob("ckpt-*.pt")
    final = EvalAggregator.read_history(out)[-1]
    assert final["split"] == "val_seen" and final["step"] == 384 // (8 * 6)

    # The same greedy policy, run in process from the checkpoint, scores exactly what the eval actors scored.
    predictions = tmp_path / "predictions.json"
    assert main(["evaluate", "r2r", "--checkpoint", str(checkpoint), "--json",
                 "--save-predictions", str(predictions)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for name in ("success_rate", "spl", "ndtw", "nav_error", "trajectory_length"):
        assert metrics[name] == pytest.approx(final[name], abs=1e-9)
    saved = json.loads(predictions.read_text())
    eval_actor_predictions = json.loads((out / "eval" / "val_seen" / f"predictions-{final['step']:09d}.json").read_text())
    assert saved == eval_actor_predictions
