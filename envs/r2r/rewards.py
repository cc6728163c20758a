"""R2R reward functions, vectorised over a batch of transitions.

Every function maps a ``Transition`` (one entry per episode that acted) to float32 rewards. Distances are
shortest-path distances along the navigation graph to the episode's goal, in metres. An episode *ends* when the
agent chooses STOP or makes its ``max_steps``-th move; in both cases the terminal reward is computed as if the
agent stopped where it stands after the action.

- ``distance`` (VALAN's ``distance_to_goal``, with R2R's success rule): a move that does not end the episode
  earns ``clip(d(before, goal) - d(after, goal), -1, 1)``; the action that ends the episode earns ``+4`` if the
  agent is closer than ``SUCCESS_THRESHOLD`` (3.0 m, strict) to the goal and ``-4`` otherwise, *instead of* the
  progress term (VALAN gives the terminal reward in place of the shaping term on the last step).
- ``ndtw`` (dense nDTW, Ilharco et al. 2019): ``nDTW(path after) - nDTW(path before)``, where a path is the
  viewpoints visited so far (consecutive repeats removed) scored against the reference path. STOP and moves that
  go nowhere change nothing and earn 0, so an episode's return is ``nDTW(final path) - nDTW([start])``. There is
  no separate success bonus (as in VALAN's ``dense_dtw``).
- ``success`` (sparse): 1 on the action that ends the episode within ``SUCCESS_THRESHOLD`` of the goal, else 0.

Episodes without a reference path (test splits) have no goal: the environment gives them reward 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from valan.envs.r2r.metrics import SUCCESS_THRESHOLD

DISTANCE_STOP_REWARD = 4.0
"""Magnitude of the ``distance`` reward's terminal bonus/penalty (VALAN)."""


@dataclass(frozen=True)
class Transition:
    """One action per entry, all arrays of the same length.

    Attributes:
        distance_before: metres from the agent's viewpoint to the goal before the action.
        distance_after: metres from the agent's viewpoint to the goal after the action.
        ended: bool, the action ended the episode (STOP or the step limit).
        ndtw_before: nDTW of the path before the action (only for rewards that need it, else ``None``).
        ndtw_after: nDTW of the path after the action (only for rewards that need it, else ``None``).
    """

    distance_before: np.ndarray
    distance_after: np.ndarray
    ended: np.ndarray
    ndtw_before: np.ndarray | None = None
    ndtw_after: np.ndarray | None = None


def distance_reward(t: Transition) -> np.ndarray:
    """VALAN's distance-to-goal reward (see the module docstring)."""
    # clip to [-1, 1] (np.minimum/np.maximum: np.clip costs more on small arrays)
    progress = np.minimum(np.maximum(t.distance_before - t.distance_after, -1.0), 1.0)
    terminal = np.where(t.distance_after < SUCCESS_THRESHOLD, DISTANCE_STOP_REWARD, -DISTANCE_STOP_REWARD)
    return np.where(t.ended, terminal, progress).astype(np.float32)


def ndtw_reward(t: Transition) -> np.ndarray:
    """Change in nDTW of the path so far."""
    if t.ndtw_before is None or t.ndtw_after is None:
        raise ValueError("the ndtw reward needs ndtw_before and ndtw_after")
    return (t.ndtw_after - t.ndtw_before).astype(np.float32)


def success_reward(t: Transition) -> np.ndarray:
    """1 when the episode ends within ``SUCCESS_THRESHOLD`` of the goal, else 0."""
    return (t.ended & (t.distance_after < SUCCESS_THRESHOLD)).astype(np.float32)


REWARDS: dict[str, Callable[[Transition], np.ndarray]] = {
    "distance": distance_reward,
    "ndtw": ndtw_reward,
    "success": success_reward,
}

NEEDS_NDTW = frozenset({"ndtw"})
"""Rewards whose ``Transition`` must carry nDTW values (computing them costs a DTW per move)."""
