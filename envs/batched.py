"""Which episode a batched environment's slot runs next: shared by the R2R and Street View batched envs."""

from __future__ import annotations

import numpy as np


class EpisodeSchedule:
    """Hands out episode rows to slots.

    Training (``evaluation=False``) walks through seeded random permutations of the episode pool, a fresh one each
    pass. Evaluation hands out every episode exactly once, in order, and then nothing.
    """

    def __init__(self, num_episodes: int, evaluation: bool, seed: int):
        self.num_episodes, self.evaluation, self.seed = num_episodes, evaluation, seed
        self._pool: np.ndarray | None = None
        self.restart()

    def restart(self, seed: int | None = None) -> None:
        """Start over: training draws a new permutation (seeded by ``seed``, else the constructor's seed);
        evaluation restarts from the first episode."""
        self._rng = np.random.default_rng(self.seed if seed is None else seed)
        self._order = np.arange(self.num_episodes) if self.evaluation else np.zeros(0, np.int64)
        self._cursor = 0

    def set_pool(self, rows: np.ndarray | None) -> None:
        """Training draws only episode ``rows`` (None: all) from now on, starting a fresh permutation (curriculum)."""
        self._pool = None if rows is None else np.asarray(rows, np.int64)
        self._cursor = len(self._order)

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` episode rows (fewer in evaluation once every episode has been handed out)."""
        out = []
        while count > 0:
            if self._cursor == len(self._order):
                if self.evaluation:
                    break
                pool = self.num_episodes if self._pool is None else self._pool
                self._order, self._cursor = self._rng.permutation(pool), 0
            n = min(count, len(self._order) - self._cursor)
            out.append(self._order[self._cursor:self._cursor + n])
            self._cursor += n
            count -= n
        return np.concatenate(out) if out else np.zeros(0, np.int64)
