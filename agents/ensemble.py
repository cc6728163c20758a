"""An ensemble of trained followers that acts as one agent (the agent interface of ``valan.agents.base``).

Each member keeps its own recurrent state and reads the same observation; the ensemble's logits are the mean of
the members' log-probabilities (a normalised geometric mean of their policies), its value the mean of theirs.
Masked actions stay masked: every member gives them :data:`~valan.agents.base.MASKED_LOGIT`, so the mean is as
low. Members may differ in size and training; they must share the observation format and the vocabulary (the
caller checks that: ``valan.distributed.evaluation.TrainedCheckpoint.predictions``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from valan.agents.base import AgentOutput


class Ensemble(nn.Module):
    """See the module docstring. The state is the members' states, concatenated in member order."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.state_sizes = [len(member.initial_state(1)) for member in members]

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        return tuple(part for member in self.members for part in member.initial_state(batch_size))

    def forward(self, obs: dict[str, torch.Tensor], state: tuple[torch.Tensor, ...],
                first: torch.Tensor) -> tuple[AgentOutput, tuple[torch.Tensor, ...]]:
        outputs, new_state, start = [], [], 0
        for member, size in zip(self.members, self.state_sizes):
            output, member_state = member(obs, tuple(state[start:start + size]), first)
            outputs.append(output)
            new_state.extend(member_state)
            start += size
        log_probs = torch.stack([torch.log_softmax(o.logits, dim=-1) for o in outputs]).mean(0)
        values = torch.stack([o.values for o in outputs]).mean(0)
        return AgentOutput(logits=log_probs, values=values), tuple(new_state)
