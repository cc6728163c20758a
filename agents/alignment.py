"""Pretrained cross-modal alignment modules for warm-starting the R2R follower (Huang et al., ICCV 2019).

``AlignmentModel`` holds an ``instruction_encoder`` and a ``visual_encoder`` built from the classes the R2R
follower uses (``valan.agents.layers.InstructionEncoder``/``VisualEncoder``), under the follower's attribute names,
so their parameter names and shapes are the follower's by construction, and trains them on two tasks:

- CMA (cross-modal alignment): the discriminator objective on (instruction, visual sequence) pairs. Per step of
  the path, the visual encoder's output for the view facing the direction of arrival, with the step's geometry,
  feeds an LSTM; the step-wise alignment head of ``valan.agents.discriminator`` scores the step states against the
  instruction's token states.
- NVS (next visual scene): at every step ``t`` of a true path, from the LSTM state over the visual states so far
  and its attention over the instruction (the instruction-conditioned latent space), pick the view of the true next
  viewpoint among the views towards all neighbours (each through the visual encoder, with its geometry):
  a softmax over the candidates (contrastive).

``load_alignment_into(agent, checkpoint)`` copies the two encoders into a follower (``valan train --init-from``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from valan.agents.base import mask_logits
from valan.agents.discriminator import StepwiseAlignment
from valan.agents.layers import Attention, InstructionEncoder, VisualEncoder, lengths_mask
from valan.envs.r2r.geometry import GEOMETRY_DIM
from valan.errors import InputError

TRANSFERRED_MODULES = ("instruction_encoder", "visual_encoder")


class AlignmentModel(nn.Module):
    """Shared encoders (the follower's) plus the CMA and NVS heads; see the module docstring."""

    def __init__(self, vocab_size: int, feature_dim: int, embed_dim: int = 64, hidden_dim: int = 128,
                 initial_scale: float = 5.0):
        super().__init__()
        self.instruction_encoder = InstructionEncoder(vocab_size, embed_dim, hidden_dim)
        self.visual_encoder = VisualEncoder(feature_dim, hidden_dim)
        self.step_input = nn.Linear(hidden_dim + GEOMETRY_DIM, hidden_dim)
        self.path_lstm = nn.LSTM(hidden_dim, hidden_dim, batch_first=True)
        self.cma_head = StepwiseAlignment(initial_scale)
        self.nvs_text_attention = Attention(hidden_dim, hidden_dim)
        self.nvs_query = nn.Linear(2 * hidden_dim, hidden_dim)
        self.nvs_candidate = nn.Linear(hidden_dim + GEOMETRY_DIM, hidden_dim)
        self.hidden_dim = hidden_dim

    def encode_steps(self, features: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """Step states ``(B, T, H)``: each sees the visual states and geometry of its own and earlier steps."""
        x = torch.relu(self.step_input(torch.cat([self.visual_encoder(features), geometry], dim=-1)))
        return self.path_lstm(x)[0]

    def cma_logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Alignment logits ``(B,)`` of a ``collate`` batch of pairs."""
        tokens, token_mask = self.instruction_encoder(batch["tokens"], batch["token_lengths"])
        index = batch["instruction_index"]
        steps = self.encode_steps(batch["features"], batch["geometry"])
        step_mask = lengths_mask(batch["path_lengths"], steps.shape[1])
        return self.cma_head(steps, step_mask, tokens[index], token_mask[index])

    def nvs_logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Candidate logits ``(B, S, K)`` of every move of the pairs' paths (``collate`` + ``collate_candidates``
        keys); padded candidates are masked."""
        tokens, token_mask = self.instruction_encoder(batch["tokens"], batch["token_lengths"])
        index = batch["instruction_index"]
        tokens, token_mask = tokens[index], token_mask[index]
        moves = batch["target"].shape[1]
        states = self.encode_steps(batch["features"], batch["geometry"])[:, :moves]  # state at t predicts t -> t+1
        b, s, h = states.shape
        flat_states = states.reshape(b * s, h)
        text = self.nvs_text_attention(flat_states, tokens.repeat_interleave(s, 0), token_mask.repeat_interleave(s, 0))
        query = torch.tanh(self.nvs_query(torch.cat([flat_states, text], dim=-1))).view(b, s, h)
        candidates = self.nvs_candidate(torch.cat([self.visual_encoder(batch["candidate_features"]),
                                                   batch["candidate_geometry"]], dim=-1))
        logits = torch.einsum("bsh,bskh->bsk", query, candidates) / math.sqrt(h)
        return mask_logits(logits, batch["candidate_mask"])


def nvs_loss(logits: torch.Tensor, target: torch.Tensor, move_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the true next viewpoint over the valid moves."""
    losses = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
    valid = move_mask.flatten().to(losses.dtype)
    return (losses * valid).sum() / valid.sum().clamp(min=1)


@dataclass
class WarmStartReport:
    """What ``load_alignment_into`` did: parameter names copied from the checkpoint, and those left as they were."""

    loaded: list[str]
    new: list[str]
    source: str = ""

    def summary(self) -> str:
        lines = [f"warm start from {self.source or 'alignment checkpoint'}: {len(self.loaded)} tensors loaded, "
                 f"{len(self.new)} new"]
        lines += [f"  loaded: {name}" for name in self.loaded]
        lines += [f"  new:    {name}" for name in self.new]
        return "\n".join(lines)


def load_alignment_into(agent: nn.Module, checkpoint: Mapping[str, Any], source: str = "",
                        vocab: Sequence[str] | None = None, verbose: bool = True) -> WarmStartReport:
    """Copy the ``instruction_encoder`` and ``visual_encoder`` tensors of an alignment checkpoint into ``agent``.

    Every transferred tensor must exist in the agent with the same shape, else ``InputError`` naming the tensor
    and both shapes (nothing is copied then). With ``vocab`` (the agent's tokens), the checkpoint's vocabulary must
    be the same. Prints the report unless ``verbose`` is false.
    """
    if checkpoint.get("problem") != "alignment" or "model" not in checkpoint:
        raise InputError("not a pretrain-alignment checkpoint", source=source)
    if vocab is not None and list(checkpoint.get("vocab", [])) != list(vocab):
        raise InputError("the checkpoint's vocabulary differs from the agent's (embedding rows would not match)",
                         source=source)
    # a follower built without its visual pathway (agent.visual none) takes the instruction encoder alone
    modules = set(TRANSFERRED_MODULES) & {name for name, _ in agent.named_children()}
    weights = {k: v for k, v in checkpoint["model"].items() if k.split(".")[0] in modules}
    target = agent.state_dict()
    for name, tensor in weights.items():
        if name not in target:
            raise InputError(f"the agent has no tensor {name} (is it an R2R follower?)", source=source)
        if target[name].shape != tensor.shape:
            raise InputError(f"shape mismatch for {name}: checkpoint {tuple(tensor.shape)}, agent "
                             f"{tuple(target[name].shape)} (agent sizes and features must match the pretraining "
                             "config)", source=source)
    agent.load_state_dict({**target, **weights})
    report = WarmStartReport(sorted(weights), sorted(k for k in target if k not in weights), source)
    if verbose:
        print(report.summary())
    return report
