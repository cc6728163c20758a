"""Training checkpoints for tests of acting commands, without training."""

from __future__ import annotations

from pathlib import Path

from valan.config import to_dict
from valan.problems import get_problem


def save_trained(path: Path, config, with_vocab: bool = True) -> Path:
    """A checkpoint with the learner's payload (untrained weights) for ``config``: what ``valan train`` writes;
    ``with_vocab=False`` writes it as valan did before checkpoints carried their vocabulary."""
    from valan.checkpoint import save_checkpoint

    import torch

    problem = get_problem(config.problem)
    torch.manual_seed(0)  # the same untrained weights in every checkpoint, so their predictions can be compared
    state = {"model": problem.make_agent(config).state_dict(), "optimizer": {}, "step": 0, "env_steps": 0,
             "config": to_dict(config), "problem": problem.name}
    if with_vocab:
        state["vocab"] = problem.vocabulary(config).tokens
    save_checkpoint(path, state)
    return path
