"""The supervised training loop: ``train-discriminator``, ``pretrain-alignment`` and ``train-sdr`` all run it.

A task hands :func:`train_supervised` its config (sections ``problem``, ``run``: :class:`SupervisedRunConfig`,
``learning``: :class:`SupervisedLearningConfig` or a subclass) and a factory that builds a
:class:`SupervisedTask`: the model, the vocabulary, a function drawing the next training batch and returning its
loss, and a function evaluating every validation split. The loop seeds torch, builds the task, then steps Adam
(with global gradient-norm clipping) until ``run.total_steps`` or a time budget, and every
``run.eval_every_steps`` (and at the end) evaluates and checkpoints.

Run folder (``config.yaml`` and ``tensorboard/`` as in the RL trainer's):

- ``config.yaml``: the effective config; ``vocab.txt``: the vocabulary, one token a line;
- ``metrics.jsonl``: one JSON object a line: ``step``, ``split`` (``train`` or an evaluation split),
  ``elapsed_s`` (wall clock) and ``cpu_s`` (this process's CPU time) since the start of this invocation, and the
  scalars (``train``: ``loss``, the mean over the last ``run.log_every_steps`` steps, plus the task's extras);
- ``tensorboard/``: the same scalars, tagged ``{split}/{name}``;
- ``checkpoints/ckpt-<step>.pt``: atomic, the last ``run.keep_last`` kept; ``model``, ``optimizer``, ``step``,
  ``config``, ``problem``, ``vocab``, ``eval_metrics`` (``{split}/{name}``) and the task's extras;
  ``checkpoints/LATEST.pt`` is the newest, ``checkpoints/BEST.pt`` (with ``run.select_metric``) the one that
  scored highest on that evaluation scalar (its ``select`` records the score).

The command claims the run folder first (:class:`valan.runs.RunFolder`: a lock; another run's folder only with
``--resume`` or ``--overwrite``).

``resume=True`` continues from the run folder's latest checkpoint (model, optimizer and step count) after
checking that the vocabulary is the checkpoint's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

import torch

from valan.checkpoint import BEST, CheckpointManager, link_or_copy, load_checkpoint
from valan.config import from_dict, require, save_config, to_dict
from valan.errors import InputError
from valan.text import Vocabulary


@dataclass
class SupervisedRunConfig:
    """Budget, evaluation, checkpoints. A run stops at whichever budget is reached first."""

    total_steps: int = 2000  # optimizer steps
    total_minutes: float = 0.0  # wall-clock limit; 0: none
    total_cpu_minutes: float = 0.0  # limit on this process's CPU time (all threads; fair on a shared machine); 0: none
    eval_every_steps: int = 500  # evaluate and checkpoint every this many steps and at the end
    log_every_steps: int = 50  # steps between training scalars
    eval_batch_size: int = 512
    keep_last: int = 3  # checkpoints kept
    logdir: str = "runs/supervised"
    seed: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = torch's default
    # "<split>/<scalar>" of the evaluation (e.g. val_seen/auc/all; higher is better) that picks
    # checkpoints/BEST.pt; "": no BEST.pt
    select_metric: str = ""

    def __post_init__(self) -> None:
        require(min(self.total_steps, self.eval_every_steps, self.log_every_steps, self.eval_batch_size,
                    self.keep_last) >= 1,
                "run.total_steps, eval_every_steps, log_every_steps, eval_batch_size and keep_last must be >= 1")
        require(min(self.total_minutes, self.total_cpu_minutes, self.num_threads) >= 0,
                "run.total_minutes, total_cpu_minutes and num_threads must be >= 0")


@dataclass
class SupervisedLearningConfig:
    """The optimizer: Adam with a global gradient-norm clip. Tasks extend this section with their losses."""

    batch_size: int = 128  # examples per step
    lr: float = 1e-3  # Adam learning rate
    grad_clip: float = 5.0  # global gradient norm clip; 0 disables

    def __post_init__(self) -> None:
        require(self.batch_size >= 1 and self.lr > 0 and self.grad_clip >= 0,
                "learning.batch_size must be >= 1, learning.lr > 0 and learning.grad_clip >= 0")


class SupervisedConfig(Protocol):
    """What the loop reads of a task's config."""

    problem: str
    run: SupervisedRunConfig
    learning: SupervisedLearningConfig


def _no_scalars() -> dict[str, float]:
    return {}


@dataclass
class SupervisedTask:
    """What one task gives the loop.

    ``batch_loss()`` draws the next training batch and returns its scalar loss (moving tensors to the model's
    device itself); ``evaluate()`` scores every validation split (split -> scalars) and leaves the model in the
    mode it found it; ``train_scalars()`` adds scalars to each training record (e.g. the epoch);
    ``checkpoint_extras`` are stored in every checkpoint (e.g. the feature size a loader needs).
    """

    model: torch.nn.Module
    vocab: Vocabulary
    batch_loss: Callable[[], torch.Tensor]
    evaluate: Callable[[], dict[str, dict[str, float]]]
    checkpoint_extras: dict[str, Any] = field(default_factory=dict)
    train_scalars: Callable[[], dict[str, float]] = _no_scalars


@dataclass
class SupervisedResult:
    """How a run ended: its step, its last evaluation (split -> scalars; empty if none ran) and newest checkpoint."""

    step: int
    metrics: dict[str, dict[str, float]]
    checkpoint: Path | None


def _resume(checkpoints: CheckpointManager, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            vocab: Vocabulary) -> int:
    """Load the latest checkpoint's model and optimizer; returns its step."""
    latest = checkpoints.latest()
    if latest is None:
        raise InputError("--resume: no checkpoint in the run folder", source=str(checkpoints.directory))
    state = load_checkpoint(latest)
    if state.get("vocab") != vocab.tokens:
        raise InputError("--resume: the checkpoint's vocabulary differs from this run's", source=str(latest))
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def _selected(select_metric: str, scalars: dict[str, float]) -> float | None:
    """The value of ``run.select_metric`` among an evaluation's ``{split}/{name}`` scalars (``None`` when none is
    configured); ``InputError`` when the evaluation has no such scalar."""
    if not select_metric:
        return None
    if select_metric not in scalars:
        raise InputError(f"run.select_metric: the evaluation has no scalar {select_metric!r} (it has: "
                         f"{', '.join(sorted(scalars)) or 'none'})")
    return float(scalars[select_metric])


T = TypeVar("T")


def load_trained(path: str | Path, problem: str, schema: type[T]) -> tuple[dict[str, Any], T, Vocabulary]:
    """A checkpoint this loop wrote for ``problem``: its state, its config typed by ``schema`` and its vocabulary;
    ``InputError`` naming the file when it is missing, unsafe or another problem's."""
    state = load_checkpoint(path)
    if state.get("problem") != problem:
        raise InputError(f"not a {problem} checkpoint (problem {state.get('problem')!r})", source=str(path))
    return state, from_dict(schema, state["config"], source=str(path)), Vocabulary(state["vocab"])


def train_supervised(name: str, config: SupervisedConfig, make_task: Callable[[], SupervisedTask], out: Path,
                     resume: bool = False) -> SupervisedResult:
    """Train the task ``make_task()`` builds (after seeding torch with ``run.seed``) into the run folder ``out``.

    ``name`` labels the progress bar (the command's name).
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    run, learning = config.run, config.learning
    if run.num_threads > 0:
        torch.set_num_threads(run.num_threads)
    torch.manual_seed(run.seed)
    task = make_task()
    model = task.model
    optimizer = torch.optim.Adam(model.parameters(), lr=learning.lr)
    checkpoints = CheckpointManager(out / "checkpoints", keep_last=run.keep_last)
    step = _resume(checkpoints, model, optimizer, task.vocab) if resume else 0
    best = checkpoints.best_value() if resume else None
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", config)
    task.vocab.save(out / "vocab.txt")

    writer = SummaryWriter(str(out / "tensorboard"))
    metrics: dict[str, dict[str, float]] = {}
    started, started_cpu = time.monotonic(), time.process_time()
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as log, \
            tqdm(total=run.total_steps, initial=step, desc=name, unit="step") as bar:
        def record(split: str, scalars: dict[str, float]) -> None:
            for key, value in scalars.items():
                writer.add_scalar(f"{split}/{key}", value, step)
            log.write(json.dumps({"step": step, "split": split, "elapsed_s": round(time.monotonic() - started, 1),
                                  "cpu_s": round(time.process_time() - started_cpu, 1), **scalars}) + "\n")
            log.flush()

        def training_state() -> dict[str, Any]:
            return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "config": to_dict(config), "problem": config.problem, "vocab": task.vocab.tokens,
                    **task.checkpoint_extras}

        def evaluate_and_save() -> None:
            metrics.clear()
            metrics.update(task.evaluate())
            for split, scalars in metrics.items():
                record(split, scalars)
            nonlocal best
            flat = {f"{split}/{key}": value for split, scalars in metrics.items() for key, value in scalars.items()}
            state = {**training_state(), "eval_metrics": flat}
            value = _selected(run.select_metric, flat)
            if value is not None:
                split, _, name = run.select_metric.partition("/")
                state["select"] = {"split": split, "metric": name, "value": value}
            path = checkpoints.save(step, state)
            if value is not None and (best is None or value > best):
                link_or_copy(path, checkpoints.directory / BEST)
                best = value
            bar.set_postfix({key: f"{value:.3f}" for key, value in list(flat.items())[:3]})

        def out_of_time() -> bool:
            return ((run.total_minutes > 0 and time.monotonic() - started >= 60 * run.total_minutes)
                    or (run.total_cpu_minutes > 0 and time.process_time() - started_cpu >= 60 * run.total_cpu_minutes))

        def save_on_stop() -> Path | None:
            """A checkpoint of the step reached (no evaluation), unless one of that step exists already."""
            if step == 0 or checkpoints.path(step).is_file():
                return checkpoints.latest()
            return checkpoints.save(step, training_state())

        model.train()
        losses: list[float] = []
        try:
            while step < run.total_steps:
                loss = task.batch_loss()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if learning.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), learning.grad_clip)
                optimizer.step()
                step += 1
                bar.update(1)
                losses.append(loss.item())
                stop = out_of_time()
                if step % run.log_every_steps == 0:
                    record("train", {"loss": sum(losses) / len(losses), **task.train_scalars()})
                    losses.clear()
                if step % run.eval_every_steps == 0 or step == run.total_steps or stop:
                    evaluate_and_save()
                if stop:
                    break
        except KeyboardInterrupt as stop:  # Ctrl-C, or valan.runs.Stopped (SIGINT/SIGTERM): keep the work done
            stop.checkpoint = save_on_stop()
            raise
    writer.close()
    return SupervisedResult(step, metrics, checkpoints.latest())
