"""train-discriminator, pretrain-alignment and train-sdr all run the one supervised loop: the same run folder,
the same records and checkpoint keys, and ``--resume`` continuing the step count."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from valan.checkpoint import load_checkpoint
from valan.cli import main
from valan.io import read_jsonl

PAIR_TINY = ["model.hidden_dim=16", "model.embed_dim=8", "learning.batch_size=24", "run.num_threads=1",
             "data.synthetic_dim=8", "run.log_every_steps=1"]
COMMANDS = {
    "train-discriminator": PAIR_TINY,
    "pretrain-alignment": PAIR_TINY,
    "train-sdr": ["learning.batch_size=4", "features.height=5", "features.width=24", "model.channels=4",
                  "model.hidden_size=4", "model.embedding_size=4", "model.head_hidden_size=4", "run.log_every_steps=1"],
}
LOOP_CHECKPOINT_KEYS = {"model", "optimizer", "step", "config", "problem", "vocab", "eval_metrics"}


def sets(items):
    return [arg for item in items for arg in ("--set", item)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_task_writes_the_loop_run_folder_and_resumes_its_step_count(command, tmp_path, capsys):
    out = tmp_path / "run"
    tiny = sets([*COMMANDS[command], "run.eval_every_steps=2"])
    assert main([command, "--out", str(out), *tiny, *sets(["run.total_steps=2"])]) == 0
    assert main([command, "--out", str(out), "--resume", *tiny, *sets(["run.total_steps=4"])]) == 0
    assert "ckpt-000000004.pt" in capsys.readouterr().out

    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl", "tensorboard",
                                                    "vocab.txt"]
    assert any((out / "tensorboard").iterdir())
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
    assert sorted({r["step"] for r in records if r["split"] != "train"}) == [2, 4]
    assert all({"step", "split", "elapsed_s", "cpu_s"} <= set(r) for r in records)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["LATEST.pt", "ckpt-000000002.pt",
                                                                        "ckpt-000000004.pt"]
    state = load_checkpoint(out / "checkpoints" / "ckpt-000000004.pt")
    assert LOOP_CHECKPOINT_KEYS <= set(state) and state["step"] == 4
    assert load_checkpoint(out / "checkpoints" / "LATEST.pt")["step"] == 4
    assert state["vocab"] == (out / "vocab.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_step_reached_and_resume_continues_from_it(signum, tmp_path):
    """SIGTERM / SIGINT in the middle of training: exit 128 + signum, one line naming the saved checkpoint (of a
    step between evaluations, so it was written because of the signal), and ``--resume`` goes on from it."""
    out = tmp_path / "run"
    endless = ["valan.cli", "train-discriminator", "--out", str(out),
               *sets([*PAIR_TINY, "run.eval_every_steps=100000", "run.total_steps=100000"])]
    process = subprocess.Popen([sys.executable, "-m", *endless], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):  # a few training steps logged
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    lines = [line for line in stderr.splitlines() if line.startswith("valan:")]
    assert len(lines) == 1 and f"stopped by {signal.Signals(signum).name}" in lines[0], stderr
    assert "Traceback" not in stderr
    saved = load_checkpoint(out / "checkpoints" / "LATEST.pt")
    assert saved["step"] >= 3 and str(out / "checkpoints" / f"ckpt-{saved['step']:09d}.pt") in lines[0]

    finish = saved["step"] + 2
    resumed = subprocess.run([sys.executable, "-m", *endless[:-2], "--resume",
                              *sets([*PAIR_TINY, f"run.eval_every_steps={finish}", f"run.total_steps={finish}"])],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "checkpoints" / "LATEST.pt")["step"] == finish
