"""``valan train`` on the bundled R2R sample, and ``valan evaluate r2r --checkpoint`` on what it wrote."""

from __future__ import annotations

import json

import pytest

from valan.checkpoint import load_checkpoint
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


TINY = ["--no-progress", "--set", "data.eval={}", "--set", "run.checkpoint_every_env_steps=96",
        "--set", "distributed.num_actors=1", "--set", "distributed.envs_per_actor=8",
        "--set", "learning.batch_size=8", "--set", "learning.unroll_length=6"]  # 48 env steps a learner step


def _one_error_line(err: str) -> str:
    assert err.startswith("valan: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("override, message", [
    ("distributed.num_actors=0", "distributed.num_actors must be >= 1"),
    ("run.select_split=val_typo", "run.select_split: 'val_typo' is not an eval split (data.eval has: val_seen)"),
])
def test_impossible_layouts_are_one_line_errors_before_anything_is_written(tmp_path, capsys, override, message):
    assert main(["train", "--set", override, "--out", str(tmp_path / "run")]) == 2
    assert message in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_an_unreachable_ray_address_is_one_line_naming_it(tmp_path, capsys):
    assert main(["train", "--ray-address", "127.0.0.1:9", "--out", str(tmp_path / "run")]) == 2
    assert "--ray-address 127.0.0.1:9: no Ray cluster answers there" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_resume_from_another_problems_checkpoint_is_refused_up_front(tmp_path, capsys):
    from valan.checkpoint import CheckpointManager

    CheckpointManager(tmp_path / "checkpoints").save(4, {"problem": "touchdown", "model": {}, "step": 4})
    assert main(["train", "--resume", "--out", str(tmp_path)]) == 2
    assert "a 'touchdown' checkpoint cannot resume a 'r2r' run" in _one_error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_a_run_folder_has_one_owner_sigint_saves_and_resume_or_overwrite_take_it_over(tmp_path, capfd):
    import re
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "valan.cli", "train", "--out", str(out), *TINY,
                              "--set", "run.total_env_steps=1000000"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list((out / "checkpoints").glob("ckpt-*.pt")) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
        # A second run on the folder fails at once, naming the owner.
        started = time.monotonic()
        assert main(["train", "--out", str(out), *TINY]) == 2
        assert f"in use by another run (pid {first.pid} on host" in _one_error_line(capfd.readouterr().err)
        assert time.monotonic() - started < 10
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    # SIGINT: a checkpoint of the step reached, exit 130, one line, no Ray noise.
    assert first.returncode == 130, err
    saved = re.fullmatch(r"valan: stopped by SIGINT: saved (\S+/ckpt-(\d+)\.pt); continue with: valan train "
                         rf"--resume --out {re.escape(str(out))}\n", err)
    assert saved, err
    step = int(saved.group(2))
    assert load_checkpoint(out / "checkpoints" / "LATEST.pt")["step"] == step
    assert not (out / "run.lock").exists()

    # The folder now holds a run: refused without --resume / --overwrite.
    assert main(["train", "--out", str(out), *TINY]) == 2
    assert "holds another run" in _one_error_line(capfd.readouterr().err)
    # --resume continues the step count from the saved checkpoint.
    assert main(["train", "--resume", "--out", str(out), *TINY,
                 "--set", f"run.total_env_steps={(step + 2) * 48}"]) == 0
    assert f"trained {step + 2} learner steps" in capfd.readouterr().out
    # --overwrite starts over, the old run moved aside.
    assert main(["train", "--overwrite", "--out", str(out), *TINY, "--set", "run.total_env_steps=96"]) == 0
    (previous,) = tmp_path.glob("run.previous-*")
    assert f"moved the previous run to {previous}" in capfd.readouterr().err
    assert (previous / "checkpoints" / f"ckpt-{step + 2:09d}.pt").is_file()
    assert [p.name for p in (out / "checkpoints").glob("ckpt-*.pt")] == ["ckpt-000000002.pt"]  # a fresh count
