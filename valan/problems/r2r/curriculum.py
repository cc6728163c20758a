"""Curriculum (VALAN): train on the easiest episodes first and widen the pool of episodes over training.

Episodes are ranked by difficulty: reference path length in hops, then instruction length in tokens. The
training pool is the easiest ``ceil(fraction * N)`` episodes; ``fraction`` starts at ``learning.curriculum_start``
and grows on one of two schedules (``learning.curriculum``):

- ``"constant"``: linearly to 1 over ``learning.curriculum_steps`` env steps. Each actor counts its own env
  steps times ``distributed.num_actors`` as its estimate of the run's total.
- ``"adaptive"``: by ``curriculum_start`` each time the success rate over the last ``window`` training episodes
  finished since the previous widening exceeds ``learning.curriculum_threshold``.

:class:`CurriculumEnv` applies a schedule to a batched environment that has ``set_episode_pool(rows)``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Iterable

import numpy as np

from valan.learning.config import LearningConfig


def difficulty_order(path_hops: np.ndarray, instruction_lengths: np.ndarray) -> np.ndarray:
    """Episode rows from easiest to hardest: fewer hops first, then shorter instructions (stable on ties)."""
    return np.lexsort((np.asarray(instruction_lengths), np.asarray(path_hops))).astype(np.int64)


class CurriculumSchedule:
    """The pool fraction over training; see the module docstring."""

    def __init__(self, learning: LearningConfig, num_actors: int = 1, window: int = 100):
        if learning.curriculum == "none":
            raise ValueError("learning.curriculum is 'none'")
        self.mode, self.start = learning.curriculum, learning.curriculum_start
        self.steps, self.threshold = learning.curriculum_steps, learning.curriculum_threshold
        self.num_actors = num_actors
        self.fraction = self.start
        self._recent: deque[bool] = deque(maxlen=window)

    def update(self, env_steps: int, successes: Iterable[bool]) -> float:
        """Advance with this actor's total ``env_steps`` and the outcomes of newly finished episodes."""
        if self.mode == "constant":
            progress = env_steps * self.num_actors / self.steps
            self.fraction = min(1.0, self.start + (1.0 - self.start) * progress)
        else:
            self._recent.extend(bool(s) for s in successes)
            if len(self._recent) == self._recent.maxlen and np.mean(self._recent) > self.threshold:
                self.fraction = min(1.0, self.fraction + self.start)
                self._recent.clear()
        return self.fraction


class CurriculumEnv:
    """A training batched env whose episodes come from the easiest ``fraction`` of ``order`` (see module docs).

    Everything but ``step`` is the wrapped env's.
    """

    def __init__(self, env: Any, order: np.ndarray, schedule: CurriculumSchedule):
        self.env, self.order, self.schedule = env, np.asarray(order, np.int64), schedule
        self.env_steps = 0
        self.pool_size = 0
        self._apply()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def _apply(self) -> None:
        size = max(1, math.ceil(self.schedule.fraction * len(self.order)))
        if size != self.pool_size:
            self.pool_size = size
            self.env.set_episode_pool(self.order[:size])

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, Any]]:
        result = self.env.step(actions)
        self.env_steps += self.env.num_envs
        self.schedule.update(self.env_steps, [bool(f.get("success")) for f in result[3]["finished"]])
        self._apply()
        return result
