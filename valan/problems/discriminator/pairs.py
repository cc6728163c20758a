"""Turning instruction-path pairs into model inputs, and reading the pairs users want scored.

A path of ``T`` viewpoints becomes, per step ``t``:

- visual features ``(D,)``: at viewpoint ``t``, one of the 36 views - ``view="travel"``: the view facing the
  direction of travel (towards viewpoint ``t + 1``; at the last viewpoint, the direction of arrival);
  ``view="arrival"``: the view at elevation 0 facing the direction of arrival (the start heading at step 0), what
  an agent sees before it chooses its next move - or the mean of the 36 views (``view="mean"``);
- geometry ``(5,)`` of the move that arrived at viewpoint ``t``: sine and cosine of the heading change (the move's
  heading minus the previous move's, or minus the start heading for the first move), sine and cosine of the
  move's elevation, and its length in metres. Step 0 (no move yet) has zeros except the cosines, which are 1 -
  the convention of the R2R environment's ``candidate_geometry``.

Headings and elevations come from viewpoint positions (``ScanGraph.heading``/``elevation``/``edge_length``), so
paths that are not graph walks (``partial_reorder`` negatives) still get well-defined geometry.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from valan.envs.r2r.dataset import parse_r2r, path_problems
from valan.envs.r2r.geometry import GEOMETRY_DIM, nearest_view
from valan.envs.r2r.graph import Connectivity, ScanGraph
from valan.errors import InputError
from valan.features.stores import FeatureStore
from valan.io import read_json, read_jsonl
from valan.problems.discriminator.negatives import POSITIVE, Pair
from valan.text import Vocabulary



def view_facing(heading: float, elevation: float) -> int:
    """Index of the R2R view (of 36) nearest a direction; heading and elevation in radians."""
    return int(nearest_view(heading, elevation))


def path_geometry(graph: ScanGraph, path: Sequence[str], heading: float) -> np.ndarray:
    """``(len(path), 5)`` float32 per-step geometry (see the module docstring); ``heading`` is the start heading."""
    out = np.zeros((len(path), GEOMETRY_DIM), dtype=np.float32)
    out[0, 1] = out[0, 3] = 1.0
    previous = heading
    for t in range(1, len(path)):
        move = graph.heading(path[t - 1], path[t])
        elevation = graph.elevation(path[t - 1], path[t])
        turn = move - previous
        out[t] = (math.sin(turn), math.cos(turn), math.sin(elevation), math.cos(elevation),
                  graph.edge_length(path[t - 1], path[t]))
        previous = move
    return out


def travel_views(graph: ScanGraph, path: Sequence[str], heading: float) -> list[int]:
    """Per viewpoint of ``path``, the view facing the next viewpoint (the last faces its direction of arrival).

    A one-viewpoint path faces ``heading``.
    """
    if len(path) == 1:
        return [view_facing(heading, 0.0)]
    views = [view_facing(graph.heading(a, b), graph.elevation(a, b)) for a, b in zip(path, path[1:])]
    return views + views[-1:]


def arrival_views(graph: ScanGraph, path: Sequence[str], heading: float) -> list[int]:
    """Per viewpoint of ``path``, the elevation-0 view facing the direction of arrival (step 0: ``heading``)."""
    return [view_facing(heading, 0.0)] + [view_facing(graph.heading(a, b), 0.0) for a, b in zip(path, path[1:])]


VIEW_CHOICES = {"travel": travel_views, "arrival": arrival_views}


@dataclass
class EncodedPair:
    """Model inputs of one pair: ``tokens`` (L,) int64 (``<EOS>`` included, no padding), ``features`` (T, D)
    float32, ``geometry`` (T, 5) float32."""

    tokens: np.ndarray
    features: np.ndarray
    geometry: np.ndarray


class PairEncoder:
    """Encodes pairs with caches: instructions by text, paths by ``(scan, path, heading)``."""

    def __init__(self, connectivity: Connectivity, vocab: Vocabulary, features: FeatureStore,
                 max_instruction_length: int = 80, view: str = "travel", use_visual: bool = True):
        if view not in ("travel", "arrival", "mean"):
            raise InputError(f"view must be 'travel', 'arrival' or 'mean', got {view!r}")
        self.connectivity, self.vocab, self.features = connectivity, vocab, features
        self.max_instruction_length, self.view, self.use_visual = max_instruction_length, view, use_visual
        self._tokens: dict[str, np.ndarray] = {}
        self._paths: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._candidates: dict[tuple, EncodedCandidates] = {}

    @property
    def feature_dim(self) -> int:
        return self.features.dim

    def tokens(self, instruction: str) -> np.ndarray:
        cached = self._tokens.get(instruction)
        if cached is None:
            ids, length = self.vocab.encode(instruction, self.max_instruction_length)
            cached = self._tokens[instruction] = ids[:length]
        return cached

    def path(self, scan: str, path: Sequence[str], heading: float) -> tuple[np.ndarray, np.ndarray]:
        key = (scan, tuple(path), heading)
        cached = self._paths.get(key)
        if cached is None:
            graph = self.connectivity.graph(scan)
            if not self.use_visual:
                feats = np.zeros((len(path), self.features.dim), dtype=np.float32)
            elif self.view == "mean":
                feats = np.stack([self.features.get(scan, vp).mean(axis=0) for vp in path]).astype(np.float32)
            else:
                views = VIEW_CHOICES[self.view](graph, path, heading)
                feats = np.stack([self.features.get(scan, vp)[v] for vp, v in zip(path, views)]).astype(np.float32)
            cached = self._paths[key] = (feats, path_geometry(graph, path, heading))
        return cached

    def candidates(self, pair: Pair) -> EncodedCandidates:
        """Next-step candidates along the pair's path (which must be a walk along graph edges)."""
        key = (pair.scan, pair.path, pair.heading)
        cached = self._candidates.get(key)
        if cached is None:
            graph = self.connectivity.graph(pair.scan)
            cached = next_step_candidates(graph, self.features, pair.path, pair.heading)
            if not self.use_visual:
                cached.features = [np.zeros_like(f) for f in cached.features]
            self._candidates[key] = cached
        return cached

    def encode(self, pair: Pair) -> EncodedPair:
        features, geometry = self.path(pair.scan, pair.path, pair.heading)
        return EncodedPair(self.tokens(pair.instruction), features, geometry)


@dataclass
class EncodedCandidates:
    """The next-step choices along a path of ``T`` viewpoints, for steps ``t = 0 .. T-2``, each with ``K_t``
    candidates (the neighbours of viewpoint ``t``): ``features`` list of ``(K_t, D)`` (the view at viewpoint ``t``
    facing each neighbour), ``geometry`` list of ``(K_t, 5)`` (sine and cosine of the neighbour's heading relative
    to the current heading - the direction of arrival, or the start heading at step 0 - sine and cosine of its
    elevation, distance in metres), ``target`` ``(T-1,)`` the index of viewpoint ``t + 1`` among the candidates."""

    features: list[np.ndarray]
    geometry: list[np.ndarray]
    target: np.ndarray


def next_step_candidates(graph: ScanGraph, features: FeatureStore, path: Sequence[str],
                         heading: float) -> EncodedCandidates:
    """The candidates of every move of ``path`` (a walk along graph edges); see :class:`EncodedCandidates`."""
    feats, geoms, target = [], [], []
    current = heading
    for t in range(len(path) - 1):
        here = path[t]
        neighbours = [graph.viewpoints[i] for i in graph.neighbors[graph.local_index(here)]]
        panorama = features.get(graph.scan, here)
        headings = [graph.heading(here, nb) for nb in neighbours]
        elevations = [graph.elevation(here, nb) for nb in neighbours]
        feats.append(np.stack([panorama[view_facing(h, e)] for h, e in zip(headings, elevations)]).astype(np.float32))
        geoms.append(np.array([(math.sin(h - current), math.cos(h - current), math.sin(e), math.cos(e),
                                graph.edge_length(here, nb)) for h, e, nb in zip(headings, elevations, neighbours)],
                              dtype=np.float32))
        target.append(neighbours.index(path[t + 1]))
        current = graph.heading(here, path[t + 1])
    return EncodedCandidates(feats, geoms, np.array(target, dtype=np.int64))


def collate_candidates(items: Sequence[EncodedCandidates]) -> dict[str, Any]:
    """Pad next-step candidates into ``candidate_features`` (B, S, K, D), ``candidate_geometry`` (B, S, K, 5),
    ``candidate_mask`` (B, S, K) bool, ``target`` (B, S) int64 and ``move_mask`` (B, S) bool (S = most moves)."""
    import torch

    n = len(items)
    moves = max(len(x.target) for x in items)
    k = max(len(f) for x in items for f in x.features)
    dim = items[0].features[0].shape[1]
    features = np.zeros((n, moves, k, dim), dtype=np.float32)
    geometry = np.zeros((n, moves, k, GEOMETRY_DIM), dtype=np.float32)
    mask = np.zeros((n, moves, k), dtype=bool)
    target = np.zeros((n, moves), dtype=np.int64)
    for i, x in enumerate(items):
        for t, (f, g) in enumerate(zip(x.features, x.geometry)):
            features[i, t, :len(f)], geometry[i, t, :len(g)], mask[i, t, :len(f)] = f, g, True
        target[i, :len(x.target)] = x.target
    return {"candidate_features": torch.from_numpy(features), "candidate_geometry": torch.from_numpy(geometry),
            "candidate_mask": torch.from_numpy(mask), "target": torch.from_numpy(target),
            "move_mask": torch.from_numpy(mask.any(axis=-1))}


def collate(items: Sequence[EncodedPair]) -> dict[str, Any]:
    """Pad a list of encoded pairs into a batch of tensors, encoding each distinct instruction once.

    Returns ``tokens`` (U, L) int64 of the U distinct instructions padded with ``<PAD>`` = 0, ``token_lengths``
    (U,), ``instruction_index`` (B,) (each pair's row of ``tokens``), ``features`` (B, T, D), ``geometry``
    (B, T, 5), ``path_lengths`` (B,) (number of viewpoints).
    """
    import torch

    rows: dict[bytes, int] = {}
    distinct: list[np.ndarray] = []
    instruction_index = []
    for x in items:
        key = x.tokens.tobytes()
        if key not in rows:
            rows[key] = len(distinct)
            distinct.append(x.tokens)
        instruction_index.append(rows[key])
    max_tokens = max(len(t) for t in distinct)
    tokens = np.zeros((len(distinct), max_tokens), dtype=np.int64)
    for i, t in enumerate(distinct):
        tokens[i, :len(t)] = t
    n, max_steps = len(items), max(len(x.features) for x in items)
    features = np.zeros((n, max_steps, items[0].features.shape[1]), dtype=np.float32)
    geometry = np.zeros((n, max_steps, GEOMETRY_DIM), dtype=np.float32)
    for i, x in enumerate(items):
        features[i, :len(x.features)] = x.features
        geometry[i, :len(x.geometry)] = x.geometry
    return {
        "tokens": torch.from_numpy(tokens),
        "token_lengths": torch.tensor([len(t) for t in distinct], dtype=torch.int64),
        "instruction_index": torch.tensor(instruction_index, dtype=torch.int64),
        "features": torch.from_numpy(features),
        "geometry": torch.from_numpy(geometry),
        "path_lengths": torch.tensor([len(x.features) for x in items], dtype=torch.int64),
    }


# ----- pairs users ask to score -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredRecord:
    """A pair to score and where it came from: ``record`` is its index in the input file."""

    pair: Pair
    record: int


def check_pair(connectivity: Connectivity, pair: Pair, source: str, where: str) -> None:
    """``InputError`` naming the record when its scan or viewpoints are unknown, consecutive viewpoints are not
    adjacent, or its instruction is empty."""
    problems = path_problems(pair.scan, list(pair.path), connectivity)
    if problems:
        raise InputError(problems[0], source=source, record=where)
    if not pair.instruction.strip():
        raise InputError("empty instruction", source=source, record=where)


def read_r2r_pairs(path: str | os.PathLike, connectivity: Connectivity) -> tuple[list[Any], list[ScoredRecord]]:
    """Every instruction-path pair of an R2R-format file, checked against the graphs.

    Returns the file's records (for writing them back) and one ``ScoredRecord`` per instruction.
    """
    source = str(path)
    records = read_json(path)
    episodes = parse_r2r(records, source=source)
    # parse_r2r keeps file order, one episode per instruction: the record of each episode.
    record_of = [n for n, record in enumerate(records) for _ in record["instructions"]]
    out = []
    for episode, n in zip(episodes, record_of):
        pair = Pair(episode.instr_id, episode.instr_id, episode.path_id, episode.scan, episode.path,
                    episode.heading, episode.instruction, 1, POSITIVE)
        check_pair(connectivity, pair, source, f"instr_id {episode.instr_id}")
        out.append(ScoredRecord(pair, n))
    return records, out


def read_explicit_pairs(path: str | os.PathLike, connectivity: Connectivity) -> list[ScoredRecord]:
    """Pairs from a JSON list (or, for a ``.jsonl`` file, JSON lines) of
    ``{instr_id?, scan, path, instruction, heading?}`` records.

    A missing ``instr_id`` becomes the record's position (``"0"``, ``"1"``, ...); a missing heading is 0.
    """
    source = str(path)
    records = read_jsonl(path) if str(path).endswith(".jsonl") else read_json(path)
    if not isinstance(records, list):
        raise InputError("expected a JSON list or JSON lines of pair records", source=source)
    out = []
    for n, record in enumerate(records):
        where = f"record {n}"
        if not isinstance(record, dict):
            raise InputError("expected a JSON object", source=source, record=where)
        if "instr_id" in record:
            where = f"instr_id {record['instr_id']}"
        for key in ("scan", "path", "instruction"):
            if key not in record:
                raise InputError(f"missing field {key!r}", source=source, record=where)
        vps, instruction, heading = record["path"], record["instruction"], record.get("heading", 0.0)
        if not isinstance(vps, list) or not vps or not all(isinstance(v, str) for v in vps):
            raise InputError("field 'path' must be a non-empty list of viewpoint ids", source=source, record=where)
        if not isinstance(instruction, str):
            raise InputError("field 'instruction' must be a string", source=source, record=where)
        if isinstance(heading, bool) or not isinstance(heading, (int, float)) or not math.isfinite(heading):
            raise InputError(f"field 'heading' must be a finite number, got {heading!r}", source=source,
                             record=where)
        instr_id = str(record.get("instr_id", n))
        pair = Pair(instr_id, instr_id, record.get("path_id", instr_id), str(record["scan"]), tuple(vps),
                    float(heading), instruction, 1, POSITIVE)
        check_pair(connectivity, pair, source, where)
        out.append(ScoredRecord(pair, n))
    return out
