"""The supervised loop on a toy regression task: budgets, logging, checkpoints, resume and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from valan.checkpoint import load_checkpoint
from valan.errors import InputError
from valan.io import read_jsonl
from valan.learning.supervised import (SupervisedLearningConfig, SupervisedRunConfig, SupervisedTask,
                                       train_supervised)
from valan.text import Vocabulary


@dataclass
class ToyConfig:
    problem: str = "toy"
    learning: SupervisedLearningConfig = field(default_factory=lambda: SupervisedLearningConfig(lr=0.1))
    run: SupervisedRunConfig = field(default_factory=lambda: SupervisedRunConfig(
        total_steps=6, eval_every_steps=4, log_every_steps=2, num_threads=1))


def toy_task(tokens=("<PAD>", "<UNK>", "<EOS>", "go")) -> SupervisedTask:
    """Fit y = 3x with one weight; evaluation reports the weight's distance to 3."""
    model = torch.nn.Linear(1, 1, bias=False)
    x = torch.linspace(-1, 1, 16)[:, None]

    def evaluate() -> dict[str, dict[str, float]]:
        return {"val": {"error": abs(model.weight.item() - 3.0)}}

    return SupervisedTask(model, Vocabulary(list(tokens)), lambda: ((model(x) - 3 * x) ** 2).mean(), evaluate,
                          checkpoint_extras={"answer": 3}, train_scalars=lambda: {"epoch": 0})


def test_schedule_records_and_resume_continue_the_step_count(tmp_path):
    config = ToyConfig()
    result = train_supervised("toy", config, toy_task, tmp_path)
    assert result.step == 6 and result.checkpoint.name == "ckpt-000000006.pt"
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in records] == [(2, "train"), (4, "train"), (4, "val"), (6, "train"),
                                                          (6, "val")]
    assert {"loss", "epoch", "elapsed_s", "cpu_s"} <= set(records[0])
    state = load_checkpoint(result.checkpoint)
    assert state["answer"] == 3 and state["problem"] == "toy" and state["eval_metrics"] == {
        "val/error": result.metrics["val"]["error"]}
    assert (tmp_path / "vocab.txt").read_text().split() == ["<PAD>", "<UNK>", "<EOS>", "go"]
    assert any((tmp_path / "tensorboard").iterdir())

    config.run.total_steps = 10
    resumed = train_supervised("toy", config, toy_task, tmp_path, resume=True)
    assert resumed.step == 10 and resumed.metrics["val"]["error"] < result.metrics["val"]["error"]
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl") if r["split"] == "val"] == [4, 6, 8, 10]


def test_resume_refuses_an_empty_folder_and_another_vocabulary(tmp_path):
    with pytest.raises(InputError, match="no checkpoint"):
        train_supervised("toy", ToyConfig(), toy_task, tmp_path, resume=True)
    train_supervised("toy", ToyConfig(), toy_task, tmp_path)
    with pytest.raises(InputError, match="vocabulary differs"):
        train_supervised("toy", ToyConfig(), lambda: toy_task(("<PAD>", "<UNK>", "<EOS>", "stop")), tmp_path,
                         resume=True)


def test_a_time_budget_stops_with_an_evaluation_and_a_checkpoint(tmp_path):
    config = ToyConfig()
    config.run.total_steps, config.run.total_cpu_minutes = 10**9, 1e-9
    result = train_supervised("toy", config, toy_task, tmp_path)
    assert result.step == 1 and result.checkpoint.name == "ckpt-000000001.pt" and "val" in result.metrics


def test_run_section_checks_its_values():
    with pytest.raises(InputError, match="eval_every_steps"):
        SupervisedRunConfig(eval_every_steps=0)
    with pytest.raises(InputError, match="learning.lr"):
        SupervisedLearningConfig(lr=0)


def test_latest_and_best_are_real_checkpoints_and_best_holds_the_weights_that_scored(tmp_path):
    scores, evaluated = iter([0.5, 0.9, 0.7]), []

    def scored_task() -> SupervisedTask:
        task = toy_task()

        def evaluate() -> dict[str, dict[str, float]]:
            evaluated.append(task.model.weight.detach().clone())
            return {"val": {"score": next(scores)}}

        task.evaluate = evaluate
        return task

    config = ToyConfig()
    config.run.eval_every_steps, config.run.keep_last, config.run.select_metric = 2, 1, "val/score"
    result = train_supervised("toy", config, scored_task, tmp_path)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["BEST.pt", "LATEST.pt", "ckpt-000000006.pt"]
    assert load_checkpoint(folder / "LATEST.pt")["step"] == result.step == 6
    best = load_checkpoint(folder / "BEST.pt")
    assert best["step"] == 4 and best["select"] == {"split": "val", "metric": "score", "value": 0.9}
    assert torch.equal(best["model"]["weight"], evaluated[1])  # the weights evaluated at step 4, not later ones

    config.run.select_metric = "val/typo"
    with pytest.raises(InputError, match="run.select_metric.*val/typo.*val/error"):
        train_supervised("toy", config, toy_task, tmp_path / "other")
