"""One learner update, written straight down: learning rate, forward over the unroll, loss, backward, clip, step.

The distributed learner (``valan.distributed``) calls :func:`train_step` for every batch of unrolls it takes
from the queue; nothing here knows about Ray.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from valan.config import LearningConfig, TrainConfig

LossFn = Callable[[torch.nn.Module, dict[str, Any], TrainConfig], tuple[torch.Tensor, dict[str, float]]]


def make_optimizer(agent: torch.nn.Module, learning: LearningConfig) -> torch.optim.Optimizer:
    """Adam over the agent's parameters at ``learning.lr``."""
    return torch.optim.Adam(agent.parameters(), lr=learning.lr)


def learning_rate(learning: LearningConfig, step: int) -> float:
    """Learning rate after ``step`` learner steps: constant, or ``lr * rate ** (step / lr_decay_steps)``."""
    if learning.lr_decay == "exponential":
        return learning.lr * learning.lr_decay_rate ** (step / learning.lr_decay_steps)
    return learning.lr


def to_tensors(unroll: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, Any]:
    """An unroll of numpy arrays (as the inference server assembles it) as tensors on ``device``;
    ``initial_state`` stays a tuple."""
    def convert(value: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value, device=device)

    return {key: tuple(convert(v) for v in value) if key == "initial_state" else convert(value)
            for key, value in unroll.items()}


def _default_loss(agent: torch.nn.Module, unroll: dict[str, Any], config: TrainConfig
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    from valan.learning.losses import agent_loss

    return agent_loss(agent, unroll, config.learning)


def train_step(agent: torch.nn.Module, optimizer: torch.optim.Optimizer, unroll: dict[str, Any], config: TrainConfig,
               step: int, loss_fn: LossFn | None = None) -> dict[str, float]:
    """One update on a batch of unrolls (tensors, ``(T + 1, B)`` leading dims); ``step`` = learner steps so far.

    ``loss_fn`` is the problem's ``loss`` (default: V-trace/imitation of ``valan.learning.losses``). Returns the loss
    statistics plus ``lr`` and ``grad_norm`` (global norm before clipping).
    """
    lr = learning_rate(config.learning, step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    # 1. Re-run the agent over the unrolls from their initial states and compute the loss.
    loss, stats = (loss_fn or _default_loss)(agent, unroll, config)
    # 2. Backward, clip the global gradient norm, Adam step.
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parameters = [p for p in agent.parameters() if p.grad is not None]
    max_norm = config.learning.grad_clip if config.learning.grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()
    return {**stats, "lr": lr, "grad_norm": float(grad_norm)}
