"""Instruction-path discriminators: does this instruction describe this path? (Huang et al. 2019)

Two models, both returning one logit per pair (higher = the instruction describes the path):

- ``StepwiseDiscriminator`` (VALAN's alignment model): a BiLSTM over instruction tokens, an LSTM over path steps,
  cosine similarities between every step state and every token state (times a learned inverse temperature),
  a softmax over tokens giving each step its attended similarity, a soft-min over steps (a softmax of the
  negated similarities) pooling them into one score, and a learned affine map to the logit.
- ``TwoTowerDiscriminator``: one unit vector per instruction and per path; the logit is a scaled cosine plus a
  bias, so a batch of instructions and paths can be scored all against all (in-batch softmax training).

Batches come from ``valan.problems.discriminator.pairs.collate``: ``tokens`` (U, L) and ``token_lengths`` (U,) of the U
distinct instructions, ``instruction_index`` (B,) (each pair's instruction row), ``features`` (B, T, D),
``geometry`` (B, T, 5), ``path_lengths`` (B,).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from valan.agents.base import mask_logits
from valan.agents.layers import InstructionEncoder, lengths_mask
from valan.envs.r2r.geometry import GEOMETRY_DIM
from valan.errors import InputError


def stepwise_alignment(step_states: torch.Tensor, step_mask: torch.Tensor, token_states: torch.Tensor,
                       token_mask: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """VALAN's pooled step-token alignment score, ``(B,)``.

    With ``a[t, j] = scale * cos(step_t, token_j)``:
    ``c[t, j] = softmax_j a[t, j]`` (over valid tokens), ``s[t] = sum_j c[t, j] a[t, j]``,
    ``w[t] = softmax_t (-s[t])`` (over valid steps: a soft minimum), score ``= sum_t w[t] s[t]``.
    """
    steps = F.normalize(step_states, dim=-1)
    tokens = F.normalize(token_states, dim=-1)
    alpha = scale * torch.einsum("btd,bld->btl", steps, tokens)
    attention = torch.softmax(mask_logits(alpha, token_mask[:, None, :]), dim=-1)
    per_step = (attention * alpha).sum(dim=-1)
    weights = torch.softmax(mask_logits(-per_step, step_mask), dim=-1)
    return (weights * per_step).sum(dim=-1)


def token_alignment(step_states: torch.Tensor, step_mask: torch.Tensor, token_states: torch.Tensor,
                    token_mask: torch.Tensor, scale: torch.Tensor | float, token_logits: torch.Tensor) -> torch.Tensor:
    """The token-side counterpart, ``(B,)``: each token attends over steps and the tokens are pooled with learned
    weights (so function words can be ignored).

    With ``a[t, j] = scale * cos(step_t, token_j)``: ``d[t, j] = softmax_t a[t, j]`` (over valid steps),
    ``r[j] = sum_t d[t, j] a[t, j]``, ``u[j] = softmax_j token_logits[j]`` (over valid tokens),
    score ``= sum_j u[j] r[j]``.
    """
    steps = F.normalize(step_states, dim=-1)
    tokens = F.normalize(token_states, dim=-1)
    alpha = scale * torch.einsum("btd,bld->btl", steps, tokens)
    attention = torch.softmax(mask_logits(alpha, step_mask[:, :, None]), dim=1)
    per_token = (attention * alpha).sum(dim=1)
    weights = torch.softmax(mask_logits(token_logits, token_mask), dim=-1)
    return (weights * per_token).sum(dim=-1)


class PathEncoder(nn.Module):
    """Per-step visual features and geometry -> a linear projection -> an LSTM: ``(B, T, hidden_dim)`` states."""

    def __init__(self, feature_dim: int, hidden_dim: int = 128, geometry_dim: int = GEOMETRY_DIM,
                 dropout: float = 0.0):
        super().__init__()
        self.project = nn.Linear(feature_dim + geometry_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden_dim, hidden_dim, batch_first=True)

    def forward(self, features: torch.Tensor, geometry: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step states ``(B, T, hidden_dim)`` and their mask ``(B, T)``; a step's state sees only its past, so
        padding after a path does not change it."""
        x = self.dropout(torch.relu(self.project(torch.cat([features, geometry], dim=-1))))
        states, _ = self.lstm(x)
        return states, lengths_mask(lengths, features.shape[1])


class StepwiseAlignment(nn.Module):
    """The alignment head: ``logit = affine_a * stepwise_alignment(...) + affine_b`` with a learned inverse
    temperature ``exp(log_scale)`` on the cosines (VALAN, ``pooling="steps"``).

    ``pooling="steps_and_tokens"`` adds ``affine_c * token_alignment(...)`` with token weights from a linear
    layer over the token states: an instruction that mentions what the path does not (an extra turn, stairs)
    lowers the score too.
    """

    def __init__(self, initial_scale: float = 5.0, pooling: str = "steps", token_dim: int | None = None):
        super().__init__()
        if pooling not in ("steps", "steps_and_tokens"):
            raise InputError(f"pooling must be 'steps' or 'steps_and_tokens', got {pooling!r}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(initial_scale)))
        self.affine_a = nn.Parameter(torch.tensor(1.0))
        self.affine_b = nn.Parameter(torch.tensor(0.0))
        self.pooling = pooling
        if pooling == "steps_and_tokens":
            if token_dim is None:
                raise ValueError("steps_and_tokens pooling needs token_dim")
            self.affine_c = nn.Parameter(torch.tensor(1.0))
            self.token_weight = nn.Linear(token_dim, 1)

    def forward(self, step_states: torch.Tensor, step_mask: torch.Tensor, token_states: torch.Tensor,
                token_mask: torch.Tensor) -> torch.Tensor:
        scale = self.log_scale.exp()
        logit = self.affine_a * stepwise_alignment(step_states, step_mask, token_states, token_mask, scale)
        if self.pooling == "steps_and_tokens":
            token_logits = self.token_weight(token_states).squeeze(-1)
            logit = logit + self.affine_c * token_alignment(step_states, step_mask, token_states, token_mask, scale,
                                                            token_logits)
        return logit + self.affine_b


class StepwiseDiscriminator(nn.Module):
    """BiLSTM over the instruction, LSTM over the path, step-wise alignment head."""

    def __init__(self, vocab_size: int, feature_dim: int, embed_dim: int = 64, hidden_dim: int = 128,
                 dropout: float = 0.0, initial_scale: float = 5.0, pooling: str = "steps"):
        super().__init__()
        self.instruction_encoder = InstructionEncoder(vocab_size, embed_dim, hidden_dim, dropout=dropout)
        self.path_encoder = PathEncoder(feature_dim, hidden_dim, dropout=dropout)
        self.head = StepwiseAlignment(initial_scale, pooling, hidden_dim)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(B,)``."""
        tokens, token_mask = self.instruction_encoder(batch["tokens"], batch["token_lengths"])
        index = batch["instruction_index"]
        tokens, token_mask = tokens[index], token_mask[index]
        steps, step_mask = self.path_encoder(batch["features"], batch["geometry"], batch["path_lengths"])
        return self.head(steps, step_mask, tokens, token_mask)


class TwoTowerDiscriminator(nn.Module):
    """One unit vector per modality: the masked mean of the BiLSTM token states and the path LSTM's state at the
    last step, each through a linear layer; ``logit = exp(log_scale) * cos + bias``."""

    def __init__(self, vocab_size: int, feature_dim: int, embed_dim: int = 64, hidden_dim: int = 128,
                 dropout: float = 0.0, initial_scale: float = 10.0, pooling: str = "steps"):
        super().__init__()
        if pooling != "steps":
            raise InputError("model.pooling applies to the stepwise model only")
        self.instruction_encoder = InstructionEncoder(vocab_size, embed_dim, hidden_dim, dropout=dropout)
        self.path_encoder = PathEncoder(feature_dim, hidden_dim, dropout=dropout)
        self.instruction_head = nn.Linear(hidden_dim, hidden_dim)
        self.path_head = nn.Linear(hidden_dim, hidden_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(initial_scale)))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def embed_instructions(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        states, mask = self.instruction_encoder(tokens, lengths)
        mean = (states * mask[..., None]).sum(1) / lengths[:, None].clamp(min=1)
        return F.normalize(self.instruction_head(mean), dim=-1)

    def embed_paths(self, features: torch.Tensor, geometry: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        states, _ = self.path_encoder(features, geometry, lengths)
        last = states[torch.arange(len(lengths)), lengths - 1]
        return F.normalize(self.path_head(last), dim=-1)

    def similarity(self, instructions: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
        """All-against-all logits ``(N_instructions, N_paths)`` of embedded instructions and paths."""
        return self.log_scale.exp() * instructions @ paths.T + self.bias

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(B,)`` of the pairs in the batch (row i's instruction with row i's path)."""
        u = self.embed_instructions(batch["tokens"], batch["token_lengths"])[batch["instruction_index"]]
        v = self.embed_paths(batch["features"], batch["geometry"], batch["path_lengths"])
        return self.log_scale.exp() * (u * v).sum(-1) + self.bias

    def in_batch_logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B, B)`` logits of every pair's instruction against every pair's path."""
        u = self.embed_instructions(batch["tokens"], batch["token_lengths"])[batch["instruction_index"]]
        v = self.embed_paths(batch["features"], batch["geometry"], batch["path_lengths"])
        return self.similarity(u, v)


def in_batch_softmax_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric in-batch softmax (InfoNCE) over a ``(B, B)`` matrix whose diagonal holds the true pairs:
    the mean of the cross-entropies of each instruction over all paths and of each path over all instructions."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


MODELS = {"stepwise": StepwiseDiscriminator, "two_tower": TwoTowerDiscriminator}


def build_discriminator(model_config: Mapping[str, Any], vocab_size: int, feature_dim: int) -> nn.Module:
    """The model named by ``model_config["type"]`` (``stepwise`` or ``two_tower``) with the other keys as
    keyword arguments (``embed_dim``, ``hidden_dim``, ``dropout``, ``initial_scale``, ``pooling``)."""
    config = dict(model_config)
    kind = config.pop("type", "stepwise")
    if kind not in MODELS:
        raise InputError(f"unknown discriminator type {kind!r}; known: {', '.join(MODELS)}")
    return MODELS[kind](vocab_size=vocab_size, feature_dim=feature_dim, **config)
