"""One learner update, written straight down: learning rate, forward over the unroll, loss, backward, clip, step.

The distributed learner (``valan.distributed``) calls :func:`train_step` with its problem's ``loss`` for every
batch of unrolls it takes from the queue; nothing here knows about Ray or about a task.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, ContextManager

import torch

from valan.learning.config import LearningConfig
from valan.learning.unroll import Unroll

# (agent, tensor unroll, run config) -> (scalar loss, float statistics): a problem's ``loss``.
LossFn = Callable[[torch.nn.Module, Unroll, Any], tuple[torch.Tensor, dict[str, float]]]


def make_optimizer(agent: torch.nn.Module, learning: LearningConfig) -> torch.optim.Optimizer:
    """Adam over the agent's parameters at ``learning.lr`` with decoupled weight decay ``learning.weight_decay``
    (AdamW; none by default), fused: one kernel for all parameters instead of a dozen small ops per parameter (the
    R2R follower's step on one CPU thread: 0.28 ms against 0.91, and a process trainer holds the weights lock that
    much shorter; ``scripts/bench_learner_step.py``)."""
    return torch.optim.Adam(agent.parameters(), lr=learning.lr, weight_decay=learning.weight_decay,
                            decoupled_weight_decay=True, fused=True)


def compile_agent(agent: torch.nn.Module, enabled: bool) -> bool:
    """``torch.compile`` ``agent`` in place when ``enabled`` (``learning.compile``) and the compiler works here;
    otherwise leave it eager, with a one-line warning on stderr when compiling was asked for. Returns whether the
    agent is compiled. Parameter names (checkpoints) do not change."""
    if not enabled:
        return False
    try:  # a compiler backend is only exercised on the first call: try one on a tiny function
        probe = torch.compile(lambda x: torch.tanh(x) * 2.0 + 1.0)
        probe(torch.ones(3, device=next(agent.parameters()).device))
    except Exception as e:  # no C++ compiler, unsupported platform, ...: train eager
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"valan: warning: learning.compile: torch.compile is not available here ({reason}); running eager",
              file=sys.stderr)
        return False
    agent.compile()
    return True


def learning_rate(learning: LearningConfig, step: int) -> float:
    """Learning rate after ``step`` learner steps: constant, or ``lr * rate ** (step / lr_decay_steps)``."""
    if learning.lr_decay == "exponential":
        return learning.lr * learning.lr_decay_rate ** (step / learning.lr_decay_steps)
    return learning.lr


def train_step(agent: torch.nn.Module, optimizer: torch.optim.Optimizer, unroll: Unroll, config: Any, step: int,
               loss_fn: LossFn, weights_lock: ContextManager[Any] | None = None) -> dict[str, float]:
    """One update on a batch of tensor unrolls; ``step`` = learner steps so far.

    ``config`` is the run's config: its ``learning`` section (:class:`LearningConfig`) sets the learning rate and
    the gradient clipping, and ``loss_fn(agent, unroll, config)`` (the problem's ``loss``) gets it whole. Returns
    the loss statistics plus ``lr`` and ``grad_norm`` (global norm before clipping). ``weights_lock``, when given,
    is held while the optimizer changes the parameters (another process may be acting with them).
    """
    learning: LearningConfig = config.learning
    lr = learning_rate(learning, step)
    for group in optimizer.param_groups:  # set every step: a resumed optimizer's state carries its old values
        group["lr"], group["weight_decay"] = lr, learning.weight_decay
        if "decoupled_weight_decay" in group:  # Adam: AdamW's decay, not an L2 term (older checkpoints saved False)
            group["decoupled_weight_decay"] = True
    # 1. Re-run the agent over the unrolls from their initial states and compute the loss.
    loss, stats = loss_fn(agent, unroll, config)
    # 2. Backward, clip the global gradient norm, Adam(W) step.
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parameters = [p for p in agent.parameters() if p.grad is not None]
    max_norm = learning.grad_clip if learning.grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    with weights_lock if weights_lock is not None else contextlib.nullcontext():
        optimizer.step()
    return {**stats, "lr": lr, "grad_norm": float(grad_norm)}
