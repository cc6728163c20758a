"""The agent interface shared by every navigation agent (R2R, Touchdown) and the training machinery.

An agent is an ``nn.Module`` with

- ``initial_state(batch_size) -> tuple[Tensor, ...]``: batch-first recurrent state;
- ``forward(obs, state, first) -> (AgentOutput, new_state)``: ``obs`` a dict of tensors shaped ``(T, B, ...)``,
  ``first`` bool ``(T, B)`` resetting the state before that step. The same code acts (``T = 1``) and learns
  (``T + 1`` steps of an unroll).

Logits of invalid actions are set to :data:`MASKED_LOGIT`, a large finite negative number: the action gets
probability 0, and log-softmax, entropy and cross-entropy stay finite (no ``-inf * 0``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

MASKED_LOGIT = -1e9


class AgentOutput(NamedTuple):
    logits: torch.Tensor  # (T, B, A), invalid actions at MASKED_LOGIT
    values: torch.Tensor  # (T, B) state values
    progress: torch.Tensor | None = None  # (T, B) a progress monitor's estimate in [-1, 1], for agents with one


def mask_logits(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``logits`` with entries where ``valid`` is false replaced by :data:`MASKED_LOGIT`."""
    return logits.masked_fill(~valid.bool(), MASKED_LOGIT)
