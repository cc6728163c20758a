"""Negative instruction-path pairs for training and evaluating discriminators (Huang et al. 2019).

Every episode of an R2R-format file gives one positive pair (its instruction with its own path) and up to one
negative of each type:

- ``path_substitution``: the instruction with *another* path of the file from the same scan whose start lies in
  the same region (shortest-path distance between starts <= ``start_radius`` metres, else the nearest starts)
  and whose length is similar (within ``length_tolerance`` of the true length, in metres). Paths ending within
  ``min_goal_distance`` metres of the true goal are never used, so the negative does not reach the same place.
  A valid graph path.
- ``random_walk``: a walk from the true start along graph edges with as many hops as the true path, never
  stepping straight back to the viewpoint it came from unless it stands at a dead end (a viewpoint with a
  single neighbour). Walks ending within ``min_goal_distance`` metres of the true goal are redrawn (up to
  ``walk_attempts`` times). A valid graph path.
- ``partial_reorder``: the true path with its first and last viewpoints kept and a contiguous run of at least
  two intermediate viewpoints shuffled. Needs at least two intermediate viewpoints. **Not a valid graph path in
  general**: consecutive viewpoints may not be adjacent; its geometry is computed from viewpoint positions.
- ``reversal``: the true path backwards (valid, edges are undirected; it starts at the true goal).
- ``instruction_swap``: the true path with the instruction of another path of the file (a different
  ``path_id``; from any scan unless ``swap_same_scan``). A valid graph path.

Generation is deterministic: each (episode, type) draws from its own generator seeded by ``seed``, the type and a
stable hash of the episode's ``instr_id``, so the same seed and file give the same negatives whatever the order of
the types requested or the process.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from valan.envs.r2r.dataset import R2REpisode
from valan.envs.r2r.graph import Connectivity, ScanGraph
from valan.errors import InputError

POSITIVE = "positive"
NEGATIVE_TYPES: tuple[str, ...] = ("path_substitution", "random_walk", "partial_reorder", "reversal",
                                   "instruction_swap")
# Negative types whose paths are walks along graph edges.
GRAPH_VALID_TYPES = frozenset({"path_substitution", "random_walk", "reversal", "instruction_swap"})


def check_negative_types(types: Sequence[str]) -> None:
    """``InputError`` naming the unknown types of a config's ``learning.negative_types``."""
    unknown = sorted(set(types) - set(NEGATIVE_TYPES))
    if unknown:
        raise InputError(f"learning.negative_types: unknown {unknown}; known: {', '.join(NEGATIVE_TYPES)}")


@dataclass(frozen=True)
class Pair:
    """One instruction-path pair.

    Attributes:
        pair_id: ``instr_id`` for a positive, ``"{instr_id}:{kind}"`` for a negative made from that episode.
        instr_id: the episode the pair was made from.
        path_id: the id of the path the viewpoints come from (the substituted path's id for
            ``path_substitution``, the episode's own path id otherwise).
        scan: scan id.
        path: viewpoint ids.
        heading: start heading, radians clockwise from +y.
        instruction: instruction text.
        label: 1 for a positive, 0 for a negative.
        kind: ``"positive"`` or one of ``NEGATIVE_TYPES``.
    """

    pair_id: str
    instr_id: str
    path_id: int | str
    scan: str
    path: tuple[str, ...]
    heading: float
    instruction: str
    label: int
    kind: str


@dataclass(frozen=True)
class NegativeConfig:
    """Knobs of negative generation; lengths and distances in metres."""

    start_radius: float = 5.0
    fallback_nearest: int = 3
    length_tolerance: float = 0.25
    min_goal_distance: float = 3.0
    walk_attempts: int = 20
    swap_same_scan: bool = False


def euclidean_path_length(graph: ScanGraph, path: Sequence[str]) -> float:
    """Sum of the straight-line (Euclidean) lengths of consecutive steps of ``path``, metres.

    Unlike :func:`valan.envs.r2r.metrics.path_length` (shortest-path distances along the graph), a step between
    two viewpoints that are not adjacent (a ``partial_reorder`` path) counts as a straight line.
    """
    return float(sum(graph.edge_length(a, b) for a, b in zip(path, path[1:])))


def episode_rng(seed: int, instr_id: str, kind: str) -> np.random.Generator:
    """The generator of one (episode, negative type): independent of order, process and Python's hash seed."""
    digest = hashlib.blake2b(f"{kind}/{instr_id}".encode(), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def non_backtracking_walk(graph: ScanGraph, start: str, hops: int, rng: np.random.Generator) -> tuple[str, ...]:
    """A random walk of ``hops`` edges from ``start`` that steps back to the previous viewpoint only at dead ends
    (the ``random_walk`` negatives' paths)."""
    walk = [graph.local_index(start)]
    for _ in range(hops):
        here = walk[-1]
        options = graph.neighbors[here]
        if len(options) == 0:
            break
        if len(walk) > 1 and len(options) > 1:
            options = options[options != walk[-2]]
        walk.append(int(options[rng.integers(len(options))]))
    return tuple(graph.viewpoints[i] for i in walk)


class NegativeSampler:
    """Makes positive and negative pairs for the episodes of one R2R-format file."""

    def __init__(self, episodes: Sequence[R2REpisode], connectivity: Connectivity,
                 config: NegativeConfig = NegativeConfig()):
        self.episodes = [e for e in episodes if e.has_reference]
        self.connectivity = connectivity
        self.config = config
        # One entry per distinct path: (path_id, path, heading, length in metres), grouped by scan.
        self._paths: dict[str, list[tuple[int | str, tuple[str, ...], float, float]]] = defaultdict(list)
        seen = set()
        for e in self.episodes:
            if (e.scan, e.path_id) in seen:
                continue
            seen.add((e.scan, e.path_id))
            graph = connectivity.graph(e.scan)
            self._paths[e.scan].append((e.path_id, e.path, e.heading, euclidean_path_length(graph, e.path)))
        # Instruction swap draws from all episodes, or from the episode's scan with swap_same_scan.
        self._swap_pool: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(self.episodes):
            self._swap_pool[e.scan if config.swap_same_scan else ""].append(i)
        self._swap_path_count = {key: len({self.episodes[i].path_id for i in pool})
                                 for key, pool in self._swap_pool.items()}

    def pairs(self, seed: int, types: Iterable[str] = NEGATIVE_TYPES) -> list[Pair]:
        """Every positive, followed in file order by the negatives of ``types`` that could be made for it."""
        types = tuple(types)
        unknown = set(types) - set(NEGATIVE_TYPES)
        if unknown:
            raise ValueError(f"unknown negative types {sorted(unknown)}; known: {', '.join(NEGATIVE_TYPES)}")
        out = []
        for e in self.episodes:
            out.append(Pair(e.instr_id, e.instr_id, e.path_id, e.scan, e.path, e.heading, e.instruction, 1, POSITIVE))
            for kind in types:
                pair = self.negative(e, kind, seed)
                if pair is not None:
                    out.append(pair)
        return out

    def negative(self, episode: R2REpisode, kind: str, seed: int) -> Pair | None:
        """The ``kind`` negative of ``episode`` for ``seed``, or ``None`` when none can be made."""
        rng = episode_rng(seed, episode.instr_id, kind)
        path, heading, path_id, instruction = episode.path, episode.heading, episode.path_id, episode.instruction
        if kind == "path_substitution":
            chosen = self._substitute(episode, rng)
            if chosen is None:
                return None
            path_id, path, heading, _ = chosen
        elif kind == "random_walk":
            path = self._walk(episode, rng)
        elif kind == "partial_reorder":
            path = self._reorder(episode.path, rng)
        elif kind == "reversal":
            path = tuple(reversed(episode.path))
        elif kind == "instruction_swap":
            key = episode.scan if self.config.swap_same_scan else ""
            pool = self._swap_pool[key]
            if self._swap_path_count[key] < 2:  # no other path to take an instruction from
                return None
            while True:  # rejection sampling: a uniform draw among the other paths' instructions
                other = self.episodes[pool[rng.integers(len(pool))]]
                if other.path_id != episode.path_id:
                    break
            instruction = other.instruction
        else:
            raise ValueError(f"unknown negative type {kind!r}")
        if path is None or (kind != "instruction_swap" and path == episode.path):
            return None
        return Pair(f"{episode.instr_id}:{kind}", episode.instr_id, path_id, episode.scan, tuple(path), heading,
                    instruction, 0, kind)

    def _substitute(self, episode: R2REpisode, rng: np.random.Generator):
        cfg = self.config
        graph = self.connectivity.graph(episode.scan)
        length = euclidean_path_length(graph, episode.path)
        goal = graph.local_index(episode.goal)
        start = graph.local_index(episode.start)
        others = [p for p in self._paths[episode.scan]
                  if p[0] != episode.path_id and p[1] != episode.path
                  and graph.distances[goal, graph.local_index(p[1][-1])] > cfg.min_goal_distance]
        if not others:
            return None
        similar = [p for p in others if abs(p[3] - length) <= cfg.length_tolerance * length]
        if not similar:
            # No path of similar length in this scan: the closest in length.
            gaps = np.array([abs(p[3] - length) for p in others])
            return others[int(np.argmin(gaps))]
        start_distance = np.array([graph.distances[start, graph.local_index(p[1][0])] for p in similar])
        near = np.flatnonzero(start_distance <= cfg.start_radius)
        if len(near) == 0:
            near = np.argsort(start_distance, kind="stable")[: cfg.fallback_nearest]
        return similar[int(near[rng.integers(len(near))])]

    def _walk(self, episode: R2REpisode, rng: np.random.Generator) -> tuple[str, ...] | None:
        graph = self.connectivity.graph(episode.scan)
        goal = graph.local_index(episode.goal)
        fallback = None
        for _ in range(self.config.walk_attempts):
            walk = non_backtracking_walk(graph, episode.start, len(episode.path) - 1, rng)
            if walk == episode.path:
                continue
            if graph.distances[goal, graph.local_index(walk[-1])] > self.config.min_goal_distance:
                return walk
            fallback = fallback or walk
        return fallback

    @staticmethod
    def _reorder(path: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...] | None:
        middle = list(path[1:-1])
        if len(middle) < 2:
            return None
        size = int(rng.integers(2, len(middle) + 1))
        begin = int(rng.integers(0, len(middle) - size + 1))
        window = middle[begin:begin + size]
        shuffled = [window[i] for i in rng.permutation(size)]
        if shuffled == window:
            shuffled = window[::-1]
        middle[begin:begin + size] = shuffled
        return (path[0], *middle, path[-1])
