"""The environment contract every navigation task follows, and the machinery the tasks share to meet it.

A task supplies two pieces:

- a *world* (``EpisodeWorld``): its episodes and map, fixed for the environment's lifetime (R2R: ``R2RWorld``,
  Street View: ``TouchdownWorld``);
- its *slots* (``EpisodeSlots``): the state and dynamics of ``num_slots`` concurrent episodes in that world,
  with one slot's observation and action spaces.

``BatchedEnv`` steps ``num_envs`` slots together for one actor; ``SingleEpisodeEnv`` is the gymnasium view of
one slot. A task's envs subclass them and only build their world and slots.

Batched contract (``BatchedEnv``):

- ``reset(seed=None)`` returns ``(obs, infos)``; ``step(actions)`` takes int ``(num_envs,)`` actions and returns
  ``(obs, reward, done, infos)``.
- ``obs`` is a dict of ``(num_envs, ...)`` arrays, one row per slot, with the keys and per-slot shapes of
  ``single_observation_space``; ``reward`` is float32 ``(num_envs,)``, ``done`` bool ``(num_envs,)``.
- Automatic reset: when a slot's episode ends (the task's STOP or step limit), ``done`` is True and the returned
  observation is already the slot's next episode's first one.
- ``infos["finished"]`` lists the episodes that ended in this call: ``{"slot": s, **record}`` with the task's
  episode record (``EpisodeSlots.summaries``: at least the episode id under ``world.id_key``, ``trajectory``,
  ``return`` and ``steps``). ``infos["active"]`` is a copy of ``self.active``: bool ``(num_envs,)``, the slots
  running an episode.
- Training (``evaluation=False``): episodes come from seeded random permutations of the episode pool, a fresh
  one each pass (``EpisodeSchedule``); ``set_episode_pool(rows)`` narrows the pool (curriculum), and
  ``reset(seed)`` starts a new permutation. Optional per-episode weights make a pass draw each episode
  ``weight`` times on average (weighted training files). Training envs may show a share of their episodes
  mirrored left to right (``Mirroring``; what a reflection changes is each environment's).
- Evaluation (``evaluation=True``): every episode runs exactly once, in data order; a slot with nothing left to
  run turns inactive: its observation stays the last one, its actions are ignored, its reward is 0 and its
  ``done`` False. ``finished`` is True once every slot is inactive; ``reset()`` starts over from the first
  episode.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from valan.features.stores import FeatureStore
from valan.text import Vocabulary


class EpisodeWorld(Protocol):
    """A task's episodes (numbered by *row*, their position in the data) and their map."""

    id_key: str
    """The field that names an episode in records and predictions (R2R ``instr_id``, Street View ``id``)."""
    episode_ids: list[str]
    """Every episode's id, by row."""

    def episode(self, episode_id: object) -> int:
        """Row of the episode named ``episode_id``; ``InputError`` when unknown."""

    def feature_table(self, store: FeatureStore) -> np.ndarray:
        """Features of every node of the map from ``store``, in the order of the observations' node indices."""

    def instruction_text(self, row: int) -> str:
        """The text episode ``row`` gives the agent, as a person reads it (``info["instruction"]``)."""


class EpisodeSlots(Protocol):
    """The state of ``num_slots`` concurrent episodes in one world; ``slots`` and ``episodes`` are int64 arrays."""

    world: EpisodeWorld
    episode: np.ndarray
    """int64 ``(num_slots,)``: the row of the episode each slot runs."""
    observation_space: spaces.Dict
    """One slot's observation."""
    action_space: spaces.Discrete

    def start(self, slots: np.ndarray, episodes: np.ndarray) -> None:
        """Put ``slots`` at the first state of ``episodes`` (rows)."""

    def act(self, slots: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply one action per slot; the rewards and whether each slot's episode ended."""

    def observe(self) -> dict[str, np.ndarray]:
        """Fresh observation arrays of every slot, with a leading ``num_slots`` dimension."""

    def summaries(self, slots: np.ndarray) -> list[dict[str, Any]]:
        """The records of the episodes ``slots`` run (reported when they end)."""

    def picture(self, slot: int) -> Any:
        """A top-down PIL picture of ``slot``'s episode so far: the map, the path taken, the goal
        (``valan.envs.drawing``)."""


class Mirroring:
    """Which of ``num_slots`` episodes are seen mirrored left to right (the environments' ``mirror`` option): each
    episode start is drawn mirrored with probability ``rate``, and a mirrored episode's instruction has its
    left/right words swapped (``valan.text.MIRROR_WORDS``). What else a reflection changes is the environment's
    (its ``_reflect``). The features hold no mirrored panoramas, so a mirror needs ``features=None``."""

    def __init__(self, num_slots: int, rate: float, seed: int, vocab: Vocabulary, features: FeatureStore | None):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"mirror must be a probability in [0, 1], got {rate}")
        if rate and features is not None:
            raise ValueError("mirror needs an agent without visual features: the features hold no mirrored panoramas")
        self.rate = rate
        self.mirrored = np.zeros(num_slots, bool)
        self._rng = np.random.default_rng([seed, 1])  # a stream apart from the episode schedule's
        self._word_ids = vocab.mirror_ids() if rate else None

    def draw(self, slots: np.ndarray | list[int]) -> None:
        """Decide for the episodes starting in ``slots`` whether they are seen mirrored."""
        if self.rate:
            self.mirrored[slots] = self._rng.random(np.shape(slots)) < self.rate

    def instructions(self, ids: np.ndarray) -> np.ndarray:
        """Token ids ``(num_slots, L)`` with the mirrored slots' left/right words swapped."""
        return np.where(self.mirrored[:, None], self._word_ids[ids], ids)


class EpisodeSchedule:
    """Hands out episode rows to slots.

    Training (``evaluation=False``) walks through seeded random permutations of the episode pool, a fresh one each
    pass. With ``weights`` (one positive number per episode; training only) a pass holds, of each set of ``n``
    pool episodes sharing a weight ``w``, ``c = w * n`` episodes rounded up or down at random (the fraction is
    the chance of rounding up): ``c // n`` copies of every one plus ``c % n`` others drawn at random. So each
    weight's share of the draws is exact up to one episode per pass. Evaluation hands out every episode exactly
    once, in order, and then nothing.
    """

    def __init__(self, num_episodes: int, evaluation: bool, seed: int, weights: np.ndarray | None = None):
        self.num_episodes, self.evaluation, self.seed = num_episodes, evaluation, seed
        if weights is not None:
            weights = np.asarray(weights, np.float64)
            if weights.shape != (num_episodes,) or not (weights > 0).all() or not np.isfinite(weights).all():
                raise ValueError(f"weights must be {num_episodes} positive finite numbers")
        self.weights = weights
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
                self._order, self._cursor = self._rng.permutation(self._weighted_pass(pool)), 0
            n = min(count, len(self._order) - self._cursor)
            out.append(self._order[self._cursor:self._cursor + n])
            self._cursor += n
            count -= n
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def _weighted_pass(self, pool: int | np.ndarray) -> int | np.ndarray:
        """The episode rows of one training pass over ``pool`` (see the class docstring), unordered."""
        if self.weights is None:
            return pool
        rows = np.arange(pool) if isinstance(pool, int) else pool
        weights = self.weights[rows]
        parts = []
        for weight in np.unique(weights):
            group = rows[weights == weight]
            total = weight * len(group)
            count = int(total) + int(self._rng.random() < total - int(total))
            copies, extra = divmod(count, len(group))
            parts += [np.tile(group, copies), self._rng.choice(group, extra, replace=False)]
        return np.concatenate(parts).astype(np.int64)


class _SlotsEnv:
    """What both forms hold: the slots, their world and the feature store behind ``feature_table``."""

    def __init__(self, slots: EpisodeSlots, features: FeatureStore):
        self._slots, self.world, self.features = slots, slots.world, features

    def feature_table(self, store: FeatureStore | None = None) -> np.ndarray:
        """The world's feature table (``EpisodeWorld.feature_table``) from ``store``, default this env's store."""
        return self.world.feature_table(store or self.features)


class BatchedEnv(_SlotsEnv):
    """``num_envs = len(slots.episode)`` episodes stepped together, with automatic reset; see the module docstring.

    ``features`` is the store behind ``feature_table()`` (observations carry features only if the slots do);
    ``episode_weights`` (one per episode row, training only) weight the schedule (:class:`EpisodeSchedule`).
    """

    def __init__(self, slots: EpisodeSlots, features: FeatureStore, evaluation: bool, seed: int,
                 episode_weights: np.ndarray | None = None):
        super().__init__(slots, features)
        self.num_envs, self.evaluation = len(slots.episode), evaluation
        if self.num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        self.single_observation_space, self.single_action_space = slots.observation_space, slots.action_space
        self.active = np.zeros(self.num_envs, bool)
        self._schedule = EpisodeSchedule(len(self.world.episode_ids), evaluation, seed,
                                         None if evaluation else episode_weights)

    @property
    def finished(self) -> bool:
        """No slot is running an episode (evaluation: every episode has been run)."""
        return not self.active.any()

    def set_episode_pool(self, rows: np.ndarray | None) -> None:
        """Training draws only episode ``rows`` (None: all) from now on, starting a fresh permutation (curriculum)."""
        self._schedule.set_pool(rows)

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start over: training draws a new permutation (seeded by ``seed``, else the constructor's seed);
        evaluation restarts from the first episode."""
        self._schedule.restart(seed)
        episodes = self._schedule.take(self.num_envs)
        slots = np.arange(self.num_envs)
        self.active[:] = slots < len(episodes)
        # Idle slots sit at the first episode's start so that their (ignored) observations are valid.
        self._slots.start(slots, np.concatenate([episodes, np.zeros(self.num_envs - len(episodes), np.int64)]))
        return self._slots.observe(), {"active": self.active.copy(), "finished": []}

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected actions of shape ({self.num_envs},), got {actions.shape}")
        reward = np.zeros(self.num_envs, np.float32)
        done = np.zeros(self.num_envs, bool)
        slots = np.flatnonzero(self.active)
        reward[slots], done[slots] = self._slots.act(slots, actions[slots])
        ended = np.flatnonzero(done)
        finished = [{"slot": int(s), **record} for s, record in zip(ended, self._slots.summaries(ended))]
        if len(ended):
            episodes = self._schedule.take(len(ended))
            self._slots.start(ended[:len(episodes)], episodes)
            self.active[ended[len(episodes):]] = False
        return self._slots.observe(), reward, done, {"active": self.active.copy(), "finished": finished}


class SingleEpisodeEnv(_SlotsEnv, gym.Env):
    """One episode at a time (gymnasium API) on a single slot.

    ``reset(options={"episode_id": id})`` starts the episode named ``id``, without it one drawn with the env's
    RNG. Infos carry ``{world.id_key: id, "episode_id": id, "instruction": text}``; ``step`` returns
    ``terminated=True`` when the episode ends (never ``truncated``: the step limit ends an episode as if the
    agent stopped), its info adding the episode's record.

    ``render_mode="rgb_array"``: ``render()`` returns the top-down picture of the episode so far as a
    ``(height, width, 3)`` uint8 array (``EpisodeSlots.picture``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, slots: EpisodeSlots, features: FeatureStore, render_mode: str | None = None):
        super().__init__(slots, features)
        if len(slots.episode) != 1:
            raise ValueError("a single-episode env runs exactly one slot")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space, self.action_space = slots.observation_space, slots.action_space
        self._slot = np.zeros(1, np.int64)
        self._ended: bool | None = None

    def _observation(self) -> dict[str, np.ndarray]:
        return {key: value[0, ...] for key, value in self._slots.observe().items()}

    def _running(self) -> dict[str, Any]:
        row = int(self._slots.episode[0])
        episode_id = self.world.episode_ids[row]
        return {self.world.id_key: episode_id, "episode_id": episode_id,
                "instruction": self.world.instruction_text(row)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start ``options["episode_id"]`` or, without it, an episode drawn with the env's RNG."""
        super().reset(seed=seed)
        if options and "episode_id" in options:
            episode = self.world.episode(options["episode_id"])
        else:
            episode = int(self.np_random.integers(len(self.world.episode_ids)))
        self._slots.start(self._slot, np.array([episode]))
        self._ended = False
        return self._observation(), self._running()

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._ended is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError("the episode has ended; call reset()")
        reward, ended = self._slots.act(self._slot, np.array([int(action)], np.int64))
        self._ended = bool(ended[0])
        info = {**self._running(), **self._slots.summaries(self._slot)[0]} if self._ended else self._running()
        return self._observation(), float(reward[0]), self._ended, False, info

    def render(self) -> np.ndarray | None:
        """The picture of the episode so far (``render_mode="rgb_array"``), else None."""
        if self.render_mode is None:
            return None
        if self._ended is None:
            raise RuntimeError("call reset() before render()")
        return np.asarray(self._slots.picture(0).convert("RGB"), dtype=np.uint8)
