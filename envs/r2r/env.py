"""The R2R navigation environment: gymnasium ``valan/R2R-v0`` (``R2REnv``) and the batched form for actors
(``BatchedR2REnv``, following the contract of ``valan.envs.batched``).

The agent moves along the Matterport3D navigation graph. At each step it sees the viewpoints adjacent to its
current one (its *candidates*) and either moves to one of them or stops.

Actions (``Discrete(1 + max_candidates)``): 0 = STOP; ``k >= 1`` moves to candidate slot ``k``. Candidates are
the graph neighbours of the current viewpoint ordered by absolute heading (clockwise from +y, ``[0, 2 pi)``),
ties by viewpoint order in the connectivity file, so a viewpoint's slots never change. A slot beyond the
current viewpoint's candidates (``candidate_mask == 0``) is a no-op: the agent stays, the step counts, the
reward is computed as for any move (0 progress).

After a move the agent faces the direction of travel (heading of the edge, radians clockwise from +y) with
elevation 0: the camera stays level; the edge's elevation appears in the candidate geometry. The episode ends
on STOP or after ``max_steps`` actions other than STOP (default 12); at that limit it ends as if the agent had
stopped (``terminated=True``, terminal reward as for STOP). Rewards: see ``valan.envs.r2r.rewards``.

Observations are dicts of fixed-shape numpy arrays; "slot" arrays have ``1 + max_candidates`` entries, slot 0
being the current viewpoint (= STOP):

- ``instruction`` int64 (L,) token ids (``<EOS>`` then ``<PAD>``), ``instruction_length`` int64 ().
- ``viewpoint`` int64 (): global viewpoint index, the row of ``feature_table()``.
- ``heading`` float32 () radians in ``[0, 2 pi]``; ``elevation`` float32 () radians (always 0, see above).
- ``candidates`` int64 (1+K,) global viewpoint index per slot (padding 0); ``candidate_mask`` int8 (1+K,).
- ``candidate_view`` int64 (1+K,): index 0..35 of the current panorama's view nearest each candidate's direction
  (``12 * elevation_level + heading_step``, heading and elevation each rounded to the nearest 30 degrees; slot 0:
  the view at the agent's heading, elevation 0; padding 0).
- ``candidate_geometry`` float32 (1+K, 5): sin and cos of the heading relative to the agent's heading, sin and cos
  of the elevation relative to the agent's, distance in metres (slot 0: ``[0, 1, 0, 1, 0]``; padding zeros).
- ``previous_action_geometry`` float32 (5,): the chosen slot's geometry at the previous step (``[0, 1, 0, 1, 0]``
  at t = 0 and after a no-op).
- ``time_step`` int64 (): actions taken so far; ``oracle_next_action`` int64 (): the slot of the first hop of a
  shortest path to the goal, 0 (STOP) at the goal and for episodes without a reference path (test splits).
- with ``history=True`` only (the episode so far, for agents that read it; off by default, as it costs env time):

  - ``candidate_visited`` int8 (1+K,): 1 where the candidate is a viewpoint the episode has already been at (the
    start included), so an agent can tell a step back or a loop from new ground; 0 on slot 0 and padding.
  - ``odometry`` float32 (4,): what the agent knows of its own moves (dead reckoning, metres): the length walked
    so far, and the start's position relative to the agent: ahead of it, to its right, above it.
  - ``progress`` float32 (): the share of the start's distance to the goal made good, ``1 - d(here) / d(start)``
    (shortest-path metres; 1 at the goal, negative when farther than at the start, clipped at -1), the target of
    a progress monitor (Ma et al. 2019); 0 without a reference path. Like ``oracle_next_action`` it is a training
    label: an agent must not act on it.
- with ``include_features=True`` only: ``features`` float32 (36, D), the current viewpoint's panorama.

Mirroring (``mirror``, training only): each episode start is mirrored left to right with probability ``mirror``.
A mirrored episode sees the scene's reflection: the sine of every relative heading (``candidate_geometry[..., 0]``,
``previous_action_geometry[0]``) and the start's offset to the right (``odometry[2]``) change sign, ``heading`` is
``2 pi - heading``, and the instruction's left/right words trade places (``valan.text.MIRROR_WORDS``). Positions,
rewards, metrics and the trajectory stay those of the real episode. The reflection of a panorama is not in the
features, so mirroring is for agents that read no visual features (``candidate_view`` is left as it is).

Global viewpoint indices run over *all scans of the connectivity directory* by default (``scans=`` restricts
them), so environments for different splits, and shards of one split, share one feature table.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from valan.data import sample_path
from valan.envs.batched import BatchedEnv, Mirroring, SingleEpisodeEnv
from valan.envs.r2r.dataset import R2REpisode, load_r2r
from valan.envs.r2r.drawing import draw_r2r_episode
from valan.envs.r2r.geometry import GEOMETRY_DIM, NO_MOVE_GEOMETRY, ODOMETRY_DIM, VIEW_STEP, nearest_view
from valan.envs.r2r.graph import Connectivity, ViewpointIndex
from valan.envs.r2r.metrics import DTW_THRESHOLD, SUCCESS_THRESHOLD, ndtw
from valan.envs.r2r.rewards import NEEDS_NDTW, REWARDS, Transition
from valan.envs.spaces import feature_space, feature_store
from valan.errors import InputError
from valan.features.stores import R2R_HEADINGS, R2R_VIEWS, FeatureStore, SyntheticFeatures
from valan.text import Vocabulary

STOP = 0
DEFAULT_MAX_CANDIDATES = 16
"""Largest node degree over all 90 Matterport3D scans is 13; 16 leaves room for denser custom graphs."""

PathLike = str | os.PathLike


@functools.lru_cache(maxsize=8)
def _open_connectivity(directory: str) -> Connectivity:
    """One ``Connectivity`` (and so one graph cache) per directory and process."""
    return Connectivity(directory)


class R2RWorld:
    """Episodes, navigation graphs and instructions of one R2R split, precomputed into flat numpy tables.

    Per global viewpoint ``g`` (``N`` in all) and action slot ``j`` (``0`` = the viewpoint itself, ``1..K`` its
    candidates, ``K = max_candidates``): ``slot_viewpoint[g, j]`` global index, ``slot_mask``, ``slot_heading``
    absolute heading (radians), ``slot_view`` (nearest of the 36 views), ``slot_sin_heading``/``slot_cos_heading``
    (zero on slot 0 and padding) and ``slot_geometry`` (the observation's geometry with the heading terms still to
    be rotated by the agent's heading); ``degree[g]`` counts the candidates. Shortest distances (metres) and next
    hops of all scans live in flat blocks indexed by ``row_base[a] + local[b]``, so batches of lookups are single
    gathers.
    """

    id_key = "instr_id"

    def __init__(self, episodes: Sequence[R2REpisode], connectivity: Connectivity, vocab: Vocabulary,
                 max_instruction_length: int = 80, max_candidates: int = DEFAULT_MAX_CANDIDATES,
                 scans: Sequence[str] | None = None):
        if not episodes:
            raise InputError("no episodes to navigate")
        if max_candidates < 1 or max_instruction_length < 1:
            raise ValueError("max_candidates and max_instruction_length must be positive")
        self.episodes = list(episodes)
        self.episode_ids = [ep.instr_id for ep in self.episodes]
        self.connectivity = connectivity
        self.vocab = vocab
        self.max_candidates = max_candidates
        self.max_instruction_length = max_instruction_length
        scans = connectivity.scans() if scans is None else sorted(set(scans))
        for scan in scans:
            if scan not in connectivity:
                raise InputError(f"unknown scan {scan!r}: no connectivity file", source=str(connectivity.directory))
        known = set(scans)
        for ep in self.episodes:
            if ep.scan not in known:
                raise InputError(f"scan {ep.scan} is not among the environment's scans", record=ep.instr_id)
        self.viewpoint_index = ViewpointIndex(connectivity, scans)
        self._build_graph_tables()
        self._build_episode_tables()

    @classmethod
    def from_sources(cls, data: PathLike | Sequence[PathLike] | None = None,
                     connectivity: PathLike | Connectivity | None = None, vocab: PathLike | Vocabulary | None = None,
                     split_episodes: Sequence[R2REpisode] | None = None, **kwargs: Any) -> "R2RWorld":
        """Load from files; each ``None`` falls back to the bundled sample (train split, its graphs, vocabulary)."""
        if data is not None and split_episodes is not None:
            raise ValueError("give either data files or split_episodes, not both")
        if not isinstance(connectivity, Connectivity):
            directory = sample_path("connectivity") if connectivity is None else connectivity
            connectivity = _open_connectivity(str(Path(directory).resolve()))
        if split_episodes is None:  # every path checked on the graphs (InputError naming file and path)
            files = [sample_path("R2R_sample_train.json")] if data is None else (
                [data] if isinstance(data, (str, os.PathLike)) else list(data))
            split_episodes = [ep for f in files for ep in load_r2r(f, connectivity)]
        if not isinstance(vocab, Vocabulary):
            vocab = Vocabulary.load(sample_path("train_vocab.txt") if vocab is None else vocab)
        return cls(split_episodes, connectivity, vocab, **kwargs)

    def _build_graph_tables(self) -> None:
        n_total, k = self.viewpoint_index.num_viewpoints, self.max_candidates
        slots = 1 + k
        self.degree = np.zeros(n_total, np.int64)
        self.slot_viewpoint = np.zeros((n_total, slots), np.int64)
        self.slot_heading = np.zeros((n_total, slots), np.float64)
        self.slot_view = np.zeros((n_total, slots), np.int64)
        self.slot_geometry = np.zeros((n_total, slots, GEOMETRY_DIM), np.float32)
        self.xyz = np.zeros((n_total, 3), np.float64)  # viewpoint positions, metres (within its scan's frame)
        self.scan_offset = np.zeros(n_total, np.int64)  # global index of the scan's first viewpoint
        self.local = np.zeros(n_total, np.int64)
        self.row_base = np.zeros(n_total, np.int64)
        self.viewpoint_ids: list[str] = []
        self.viewpoint_scans: list[str] = []
        dist_blocks, hop_blocks, block_base = [], [], 0
        for scan in self.viewpoint_index.scans:
            g = self.connectivity.graph(scan)
            off, n = self.viewpoint_index.offsets[scan], len(g)
            degree = np.array([len(nb) for nb in g.neighbors], np.int64)
            if n and degree.max() > k:
                worst = int(degree.argmax())
                raise InputError(f"viewpoint {g.viewpoints[worst]} in scan {scan} has {degree[worst]} neighbours, "
                                 f"more than max_candidates={k}")
            src = np.repeat(np.arange(n), degree)
            dst = np.concatenate(g.neighbors).astype(np.int64) if len(src) else np.zeros(0, np.int64)
            delta = g.positions[dst] - g.positions[src]
            heading = np.mod(np.arctan2(delta[:, 0], delta[:, 1]), 2 * math.pi)
            order = np.lexsort((dst, heading, src))  # by source, then heading, then neighbour
            src, dst, delta, heading = src[order], dst[order], delta[order], heading[order]
            slot = np.arange(len(src)) - np.repeat(np.cumsum(degree) - degree, degree)
            rows, slot = off + src, slot + 1
            elevation = np.arctan2(delta[:, 2], np.hypot(delta[:, 0], delta[:, 1]))
            self.slot_viewpoint[rows, slot] = off + dst
            self.slot_heading[rows, slot] = heading
            self.slot_view[rows, slot] = nearest_view(heading, elevation)
            self.slot_geometry[rows, slot, 2] = np.sin(elevation)
            self.slot_geometry[rows, slot, 3] = np.cos(elevation)
            self.slot_geometry[rows, slot, 4] = np.linalg.norm(delta, axis=1)
            self.slot_viewpoint[off:off + n, 0] = np.arange(off, off + n)
            self.degree[off:off + n] = degree
            self.xyz[off:off + n] = g.positions
            self.scan_offset[off:off + n] = off
            self.local[off:off + n] = np.arange(n)
            self.row_base[off:off + n] = block_base + np.arange(n) * n
            dist_blocks.append(g.distances.ravel())
            hop_blocks.append(g.next_hop.ravel())
            block_base += n * n
            self.viewpoint_ids.extend(g.viewpoints)
            self.viewpoint_scans.extend([scan] * n)
        self._dist = np.concatenate(dist_blocks)
        self._hop = np.concatenate(hop_blocks).astype(np.int64)
        candidate = (np.arange(slots)[None, :] >= 1) & (np.arange(slots)[None, :] <= self.degree[:, None])
        self.slot_candidate = candidate  # bool: the slot holds a candidate (not slot 0, not padding)
        self.slot_mask = (candidate | (np.arange(slots) == 0)).astype(np.int8)
        self.slot_geometry[:, 0] = NO_MOVE_GEOMETRY
        # sin/cos of the candidates' absolute headings, zero elsewhere: rotating them by the agent's heading gives
        # the relative-heading terms, and zeros stay zero.
        self.slot_sin_heading = np.sin(self.slot_heading) * candidate
        self.slot_cos_heading = np.cos(self.slot_heading) * candidate

    def _build_episode_tables(self) -> None:
        e = len(self.episodes)
        self.episode_number: dict[str, int] = {}
        self.start = np.zeros(e, np.int64)
        self.goal = np.zeros(e, np.int64)
        self.has_reference = np.zeros(e, bool)
        self.start_heading = np.zeros(e, np.float64)
        self.instructions = np.zeros((e, self.max_instruction_length), np.int64)
        self.instruction_lengths = np.zeros(e, np.int64)
        for i, ep in enumerate(self.episodes):
            if ep.instr_id in self.episode_number:
                raise InputError("duplicate instr_id", record=ep.instr_id)
            self.episode_number[ep.instr_id] = i
            try:
                path = [self.viewpoint_index.global_index(ep.scan, vp) for vp in ep.path]
            except InputError as err:
                raise InputError(str(err), record=ep.instr_id) from None
            self.start[i], self.goal[i] = path[0], path[-1]
            self.has_reference[i] = ep.has_reference
            self.start_heading[i] = ep.heading % (2 * math.pi)
            self.instructions[i], self.instruction_lengths[i] = self.encode_instruction(i)
        unreachable = np.flatnonzero(~np.isfinite(self.distance(self.start, self.goal)))
        if len(unreachable):
            raise InputError("goal unreachable from the start", record=self.episodes[unreachable[0]].instr_id)

    def encode_instruction(self, row: int) -> tuple[np.ndarray, int]:
        """Token ids and length of episode ``row``'s input text (a task with other text overrides this)."""
        return self.vocab.encode(self.episodes[row].instruction, self.max_instruction_length)

    def goal_distance(self, viewpoints: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        """Metres from each of ``viewpoints`` to its episode's goal, the distance the rewards measure (a task
        with a goal region overrides this)."""
        return self.distance(viewpoints, self.goal[episodes])

    def instruction_text(self, row: int) -> str:
        """Episode ``row``'s instruction as a person reads it."""
        return self.episodes[row].instruction

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Shortest-path distances (metres) between global viewpoints ``a`` and ``b`` of the same scan."""
        return self._dist[self.row_base[a] + self.local[b]]

    def next_hop(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Global index of the first viewpoint after ``a`` on a shortest path to ``b`` (``a`` itself if equal)."""
        return self._hop[self.row_base[a] + self.local[b]] + self.scan_offset[a]

    def keys(self) -> list[tuple[str, str]]:
        """``(scan, viewpoint)`` of every global viewpoint index, in order."""
        return list(zip(self.viewpoint_scans, self.viewpoint_ids))

    def feature_table(self, store: FeatureStore) -> np.ndarray:
        """``(num_viewpoints, views, dim)`` float32 features in global index order, built once for a learner."""
        return store.table(self.keys())

    def episode(self, instr_id: str) -> int:
        """Row of ``instr_id``; ``InputError`` when the split has no such episode."""
        try:
            return self.episode_number[instr_id]
        except KeyError:
            raise InputError(f"unknown episode_id {instr_id!r}") from None


def observation_space(world: R2RWorld, max_steps: int, features: FeatureStore | None = None,
                      history: bool = False) -> spaces.Dict:
    """The observation space of one episode (see the module docstring)."""
    slots, n = 1 + world.max_candidates, world.viewpoint_index.num_viewpoints
    length = world.max_instruction_length
    # Geometry: sin/cos terms in [-1, 1]; distance in [0, longest edge] metres.
    low = np.array([-1, -1, -1, -1, 0], np.float32)
    longest_edge = math.ceil(world.slot_geometry[..., 4].max())
    high = np.array([1, 1, 1, 1, longest_edge], np.float32)
    reach = float(max_steps * longest_edge)  # metres an episode can walk

    def box(low: float, high: float, shape: tuple[int, ...], dtype: type) -> spaces.Box:
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)

    space = {
        "instruction": box(0, len(world.vocab) - 1, (length,), np.int64),
        "instruction_length": box(0, length, (), np.int64),
        "viewpoint": box(0, n - 1, (), np.int64),
        "heading": box(0.0, 2 * math.pi, (), np.float32),
        "elevation": box(-math.pi / 2, math.pi / 2, (), np.float32),
        "candidates": box(0, n - 1, (slots,), np.int64),
        "candidate_mask": box(0, 1, (slots,), np.int8),
        "candidate_view": box(0, R2R_VIEWS - 1, (slots,), np.int64),
        "candidate_geometry": spaces.Box(np.broadcast_to(low, (slots, GEOMETRY_DIM)),
                                         np.broadcast_to(high, (slots, GEOMETRY_DIM)), dtype=np.float32),
        "previous_action_geometry": spaces.Box(low, high, dtype=np.float32),
        "time_step": box(0, max_steps, (), np.int64),
        "oracle_next_action": box(0, world.max_candidates, (), np.int64),
    }
    if history:
        space["candidate_visited"] = box(0, 1, (slots,), np.int8)
        space["odometry"] = box(-reach, reach, (ODOMETRY_DIM,), np.float32)
        space["progress"] = box(-1.0, 1.0, (), np.float32)
    if features is not None:
        space["features"] = feature_space(features, world.keys())
    return spaces.Dict(space)


class _Slots:
    """The state of ``num_slots`` concurrent episodes, advanced with vectorised table lookups
    (``valan.envs.batched.EpisodeSlots``)."""

    def __init__(self, world: R2RWorld, num_slots: int, reward: str, max_steps: int,
                 features: FeatureStore | None, history: bool = False, mirror: float = 0.0, seed: int = 0):
        if reward not in REWARDS:
            raise InputError(f"unknown reward {reward!r}; choose one of {', '.join(REWARDS)}")
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.world, self.max_steps, self.features, self.history = world, max_steps, features, history
        self.reward_name, self._reward = reward, REWARDS[reward]
        self._track_ndtw = reward in NEEDS_NDTW
        k = num_slots
        self.episode = np.zeros(k, np.int64)
        self.position = np.zeros(k, np.int64)
        self.heading = np.zeros(k, np.float64)
        self.time = np.zeros(k, np.int64)
        self.previous_geometry = np.tile(NO_MOVE_GEOMETRY, (k, 1))
        self.path = np.full((k, max_steps + 1), -1, np.int64)  # viewpoints been at, start first, no repeats
        # The history observations' state: path is -1 after its length, metres walked, where the episode started
        self.walked = np.zeros(k, np.float64)  # metres
        self.start_xyz = np.zeros((k, 3), np.float64)  # metres
        self.start_distance = np.ones(k, np.float64)  # metres from the start to the goal (at least 1e-6)
        self.path_heading = np.zeros((k, max_steps + 1), np.float64)
        self.path_length = np.zeros(k, np.int64)
        self.returns = np.zeros(k, np.float64)
        self.path_ndtw = np.zeros(k, np.float64)
        self.mirror = Mirroring(k, mirror, seed, world.vocab, features)
        self._geometry_cache: np.ndarray | None = None
        self.observation_space = observation_space(world, max_steps, features, history)
        self.action_space = spaces.Discrete(1 + world.max_candidates)

    def start(self, slots: np.ndarray, episodes: np.ndarray) -> None:
        """Place the agents of ``slots`` at the starts of ``episodes`` (episode rows)."""
        w = self.world
        self.episode[slots] = episodes
        self.position[slots] = w.start[episodes]
        self.heading[slots] = w.start_heading[episodes]
        self.time[slots] = 0
        self.previous_geometry[slots] = NO_MOVE_GEOMETRY
        if self.history:
            self.path[slots] = -1
            self.walked[slots] = 0.0
            self.start_xyz[slots] = w.xyz[w.start[episodes]]
            self.start_distance[slots] = np.maximum(w.goal_distance(w.start[episodes], episodes), 1e-6)
        self.path[slots, 0] = w.start[episodes]
        self.path_heading[slots, 0] = w.start_heading[episodes]
        self.path_length[slots] = 1
        self.returns[slots] = 0.0
        self.mirror.draw(slots)
        self._geometry_cache = None
        if self._track_ndtw:
            for s in np.atleast_1d(slots):
                self.path_ndtw[s] = self._slot_ndtw(int(s))

    def _slot_ndtw(self, s: int) -> float:
        ep = self.world.episodes[self.episode[s]]
        if not ep.has_reference:
            return 0.0
        visited = self.world.local[self.path[s, : self.path_length[s]]].tolist()
        return ndtw(self.world.connectivity.graph(ep.scan), visited, ep.path, threshold=DTW_THRESHOLD)

    def act(self, slots: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``actions`` to ``slots``; returns float32 rewards and whether each episode ended."""
        w = self.world
        if np.any((actions < 0) | (actions > w.max_candidates)):
            raise ValueError(f"actions must be in [0, {w.max_candidates}], got {actions.tolist()}")
        pos, heading = self.position[slots], self.heading[slots]
        move = (actions >= 1) & (actions <= w.degree[pos])
        chosen = actions * move  # slot 0 (stay) for STOP and no-ops
        nxt = w.slot_viewpoint[pos, chosen]
        new_heading = np.where(move, w.slot_heading[pos, chosen], heading)
        self.previous_geometry[slots] = self._geometry()[slots, chosen]
        if self.history:
            self.walked[slots] += self.previous_geometry[slots, 4]
        time = self.time[slots] + (actions != STOP)
        ended = (actions == STOP) | (time >= self.max_steps)
        episodes = self.episode[slots]
        moved = slots[move]
        self.path[moved, self.path_length[moved]] = nxt[move]
        self.path_heading[moved, self.path_length[moved]] = new_heading[move]
        self.path_length[moved] += 1
        ndtw_before = ndtw_after = None
        if self._track_ndtw:
            ndtw_before = self.path_ndtw[slots].copy()
            for s in moved:
                self.path_ndtw[s] = self._slot_ndtw(int(s))
            ndtw_after = self.path_ndtw[slots]
        reward = self._reward(Transition(w.goal_distance(pos, episodes), w.goal_distance(nxt, episodes), ended,
                                         ndtw_before, ndtw_after))
        reward *= w.has_reference[episodes]
        self.position[slots] = nxt
        self.heading[slots] = new_heading
        self.time[slots] = time
        self.returns[slots] += reward
        self._geometry_cache = None
        return reward, ended

    def _geometry(self) -> np.ndarray:
        """Candidate geometry ``(num_slots, 1 + K, 5)`` of the current state, computed once per state."""
        if self._geometry_cache is None:
            w, pos = self.world, self.position
            sin_h, cos_h = np.sin(self.heading)[:, None], np.cos(self.heading)[:, None]
            sin_c, cos_c = w.slot_sin_heading[pos, 1:], w.slot_cos_heading[pos, 1:]
            geometry = w.slot_geometry[pos]
            geometry[:, 1:, 0] = sin_c * cos_h - cos_c * sin_h  # sin(candidate - agent heading)
            geometry[:, 1:, 1] = cos_c * cos_h + sin_c * sin_h  # cos(candidate - agent heading)
            self._geometry_cache = geometry
        return self._geometry_cache

    def observe(self) -> dict[str, np.ndarray]:
        """Fresh observation arrays with a leading slot dimension."""
        w = self.world
        pos, heading, episodes = self.position, self.heading, self.episode
        candidates = w.slot_viewpoint[pos]
        view = w.slot_view[pos]
        view[:, 0] = R2R_HEADINGS + np.rint(heading / VIEW_STEP).astype(np.int64) % R2R_HEADINGS
        goal = w.goal[episodes]
        # The next hop is a candidate (slot 0 holds the current viewpoint, padding follows the candidates).
        first = (candidates == w.next_hop(pos, goal)[:, None]).argmax(1)
        obs = {
            "instruction": w.instructions[episodes],
            "instruction_length": w.instruction_lengths[episodes],
            "viewpoint": pos.copy(),
            "heading": heading.astype(np.float32),
            "elevation": np.zeros(len(pos), np.float32),
            "candidates": candidates,
            "candidate_mask": w.slot_mask[pos],
            "candidate_view": view,
            "candidate_geometry": self._geometry().copy(),
            "previous_action_geometry": self.previous_geometry.copy(),
            "time_step": self.time.copy(),
            "oracle_next_action": np.where((pos == goal) | ~w.has_reference[episodes], STOP, first),
        }
        if self.history:
            obs.update(self._history())
        if self.mirror.mirrored.any():
            self._reflect(obs)
        if self.features is not None:
            obs["features"] = np.stack([self.features.get(w.viewpoint_scans[g], w.viewpoint_ids[g]) for g in pos])
        return obs

    def _reflect(self, obs: dict[str, np.ndarray]) -> None:
        """Turn the observations of the mirrored slots into those of the scene's reflection (module docstring)."""
        m = self.mirror.mirrored
        obs["instruction"] = self.mirror.instructions(obs["instruction"])
        obs["heading"] = np.where(m, np.float32(2 * math.pi) - obs["heading"], obs["heading"]).astype(np.float32)
        obs["candidate_geometry"][m, :, 0] *= -1
        obs["previous_action_geometry"][m, 0] *= -1
        if "odometry" in obs:
            obs["odometry"][m, 2] *= -1

    def _history(self) -> dict[str, np.ndarray]:
        """The ``history`` observations: ``candidate_visited``, ``odometry`` and ``progress``."""
        w, pos, episodes = self.world, self.position, self.episode
        # path holds -1 past its length, so only viewpoints been at match a candidate
        visited = (w.slot_viewpoint[pos][:, :, None] == self.path[:, None, :]).any(-1) & w.slot_candidate[pos]
        # The start relative to the agent, in its frame (heading clockwise from +y: ahead = (sin, cos)).
        back = self.start_xyz - w.xyz[pos]
        sin_h, cos_h = np.sin(self.heading), np.cos(self.heading)
        odometry = np.empty((len(pos), ODOMETRY_DIM), np.float32)
        odometry[:, 0] = self.walked
        odometry[:, 1] = back[:, 0] * sin_h + back[:, 1] * cos_h
        odometry[:, 2] = back[:, 0] * cos_h - back[:, 1] * sin_h
        odometry[:, 3] = back[:, 2]
        progress = np.clip(1.0 - w.goal_distance(pos, episodes) / self.start_distance, -1.0, 1.0)
        return {"candidate_visited": visited.astype(np.int8), "odometry": odometry,
                "progress": (progress * w.has_reference[episodes]).astype(np.float32)}

    def picture(self, slot: int) -> Any:
        """The episode of ``slot`` so far, top-down (``valan.envs.r2r.drawing``): one panel per floor with the
        reference path, the path taken, start, goal and the 3 m success circle, under the instruction."""
        w, row = self.world, int(self.episode[slot])
        ep = w.episodes[row]
        taken = [w.viewpoint_ids[g] for g in self.path[slot, :self.path_length[slot]]]
        title = f"{w.episode_ids[row]}  step {self.time[slot]} of {self.max_steps}"
        if w.has_reference[row]:
            distance = float(w.goal_distance(self.position[slot:slot + 1], self.episode[slot:slot + 1])[0])
            title += f"  {distance:.1f} m to the goal"
        return draw_r2r_episode(w.connectivity.graph(ep.scan), ep.path, taken, title, w.instruction_text(row),
                                success_radius=SUCCESS_THRESHOLD)

    def summaries(self, slots: np.ndarray) -> list[dict[str, Any]]:
        """What finished episodes report: ``instr_id``, leaderboard ``trajectory`` and outcome, per slot."""
        w = self.world
        episodes = self.episode[slots]
        distances = w.distance(self.position[slots], w.goal[episodes]).tolist()
        out = []
        for e, path, headings, n, ret, steps, d in zip(
                episodes.tolist(), self.path[slots].tolist(), self.path_heading[slots].tolist(),
                self.path_length[slots].tolist(), self.returns[slots].tolist(), self.time[slots].tolist(), distances):
            info: dict[str, Any] = {
                w.id_key: w.episode_ids[e],
                "trajectory": [[w.viewpoint_ids[g], h, 0.0] for g, h in zip(path[:n], headings[:n])],
                "return": ret, "steps": steps, "distance_to_goal": None, "success": None}
            if w.has_reference[e]:
                info["distance_to_goal"], info["success"] = d, d < SUCCESS_THRESHOLD
            out.append(info)
        return out


def _r2r_slots(num_slots: int, data: PathLike | Sequence[PathLike] | None,
               connectivity: PathLike | Connectivity | None, vocab: PathLike | Vocabulary | None,
               features: FeatureStore | PathLike | None, split_episodes: Sequence[R2REpisode] | None, reward: str,
               max_steps: int, max_instruction_length: int, max_candidates: int, include_features: bool,
               scans: Sequence[str] | None, history: bool, mirror: float = 0.0,
               seed: int = 0) -> tuple[_Slots, FeatureStore]:
    """The slots of an R2R env (arguments as ``R2REnv``'s) and its feature store."""
    world = R2RWorld.from_sources(data, connectivity, vocab, split_episodes,
                                  max_instruction_length=max_instruction_length, max_candidates=max_candidates,
                                  scans=scans)
    features = feature_store(features, SyntheticFeatures(), R2R_VIEWS)
    return _Slots(world, num_slots, reward, max_steps, features if include_features else None, history, mirror,
                  seed), features


class R2REnv(SingleEpisodeEnv):
    """One R2R episode at a time (gymnasium API; ``valan.envs.batched.SingleEpisodeEnv``). See the module
    docstring for spaces and dynamics; episode ids are ``instr_id``s.

    Args:
        data: R2R JSON file(s); default the bundled sample train split.
        connectivity: folder of ``{scan}_connectivity.json`` (or a ``Connectivity``); default the bundled sample's.
        vocab: vocabulary file (or ``Vocabulary``); default the bundled R2R train vocabulary.
        features: feature store for ``include_features`` and ``feature_table()``, or its path (a store folder of
            ``valan features convert``, a ``.tsv`` file); default ``SyntheticFeatures()`` (no visual information).
            With ``include_features`` the ``features`` Box is bounded by the store's values over every viewpoint.
        split_episodes: already-loaded episodes to use instead of ``data``.
        reward: ``"distance"``, ``"ndtw"`` or ``"success"`` (``valan.envs.r2r.rewards``).
        max_steps: actions other than STOP before the episode ends as if stopped.
        max_instruction_length: token ids per instruction, ``<EOS>`` included (longer ones are truncated).
        max_candidates: candidate slots; construction fails naming the scan and viewpoint if one has more
            neighbours.
        include_features: put the current viewpoint's ``(36, D)`` features into observations.
        history: put ``candidate_visited``, ``odometry`` and ``progress`` into observations (module docstring).
        scans: scans of the global viewpoint index; default all scans of the connectivity folder.
        render_mode: ``"rgb_array"``: ``render()`` returns the top-down picture of the episode so far (per floor:
            the graph, the reference path, the path taken, start, goal and the 3 m success circle, the instruction).
    """

    world: R2RWorld

    def __init__(self, data: PathLike | Sequence[PathLike] | None = None,
                 connectivity: PathLike | Connectivity | None = None, vocab: PathLike | Vocabulary | None = None,
                 features: FeatureStore | PathLike | None = None, split_episodes: Sequence[R2REpisode] | None = None,
                 reward: str = "distance", max_steps: int = 12, max_instruction_length: int = 80,
                 max_candidates: int = DEFAULT_MAX_CANDIDATES, include_features: bool = False,
                 scans: Sequence[str] | None = None, history: bool = False, render_mode: str | None = None):
        super().__init__(*_r2r_slots(1, data, connectivity, vocab, features, split_episodes, reward, max_steps,
                                     max_instruction_length, max_candidates, include_features, scans, history),
                         render_mode=render_mode)

    @property
    def viewpoint_index(self) -> ViewpointIndex:
        return self.world.viewpoint_index


class BatchedR2REnv(BatchedEnv):
    """``num_envs`` R2R episodes stepped together for one actor, with automatic reset: the contract of
    ``valan.envs.batched`` (``reset``, ``step``, ``active``, ``finished``, evaluation mode, ``set_episode_pool``).

    Observations have the keys of ``R2REnv`` with a leading ``num_envs`` dimension. ``infos["finished"]`` lists
    the ended episodes as dicts with ``slot``, ``instr_id``, ``trajectory`` (leaderboard ``[[viewpoint, heading,
    elevation], ...]``), ``return``, ``steps``, ``distance_to_goal`` and ``success`` (None without a reference
    path). Evaluation runs every episode exactly once in the given order.

    Constructor arguments are those of ``R2REnv`` plus ``num_envs``, ``evaluation``, ``seed``,
    ``episode_weights`` (training: one sampling weight per episode, in data order; ``valan.envs.batched``) and
    ``mirror`` (the probability that an episode start is mirrored left to right; module docstring).
    """

    world: R2RWorld

    def __init__(self, num_envs: int, data: PathLike | Sequence[PathLike] | None = None,
                 connectivity: PathLike | Connectivity | None = None, vocab: PathLike | Vocabulary | None = None,
                 features: FeatureStore | None = None, split_episodes: Sequence[R2REpisode] | None = None,
                 reward: str = "distance", max_steps: int = 12, max_instruction_length: int = 80,
                 max_candidates: int = DEFAULT_MAX_CANDIDATES, include_features: bool = False,
                 scans: Sequence[str] | None = None, history: bool = False, evaluation: bool = False,
                 seed: int = 0, episode_weights: np.ndarray | None = None, mirror: float = 0.0):
        super().__init__(*_r2r_slots(num_envs, data, connectivity, vocab, features, split_episodes, reward,
                                     max_steps, max_instruction_length, max_candidates, include_features, scans,
                                     history, mirror, seed),
                         evaluation, seed, episode_weights)

    @property
    def viewpoint_index(self) -> ViewpointIndex:
        return self.world.viewpoint_index
