"""Sampling R2R-like paths for data augmentation (``valan augment paths``).

R2R's paths (Anderson et al. 2018) are shortest paths between two viewpoints of a scan with 4 to 6 edges and at
least 5 m long; R2R train's are at most about 25 m. :func:`sample_paths` enumerates every ordered pair of
viewpoints (start, goal) of the given scans whose shortest path satisfies :class:`PathLimits` (edges counted
along the shortest path by distance, length in metres), draws ``count`` distinct pairs uniformly without
replacement (so larger scans give more paths, as in R2R) and gives each a uniform start heading in
``[0, 2 pi)`` radians. A shortest path never repeats a viewpoint. The result depends only on the scans' graphs,
the limits and the seed: scans are visited in sorted order and pairs in index order before drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from valan.envs.r2r.graph import Connectivity, ScanGraph
from valan.errors import InputError


@dataclass(frozen=True)
class PathLimits:
    """Which shortest paths count as R2R-like: edges (hops) and length (metres), bounds included."""

    min_edges: int = 4
    max_edges: int = 6
    min_metres: float = 5.0
    max_metres: float = 25.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_edges <= self.max_edges or not 0 <= self.min_metres <= self.max_metres:
            raise InputError(f"path limits need 1 <= min_edges <= max_edges and 0 <= min_metres <= max_metres, "
                             f"got {self}")


@dataclass(frozen=True)
class SampledPath:
    """One sampled path: ``viewpoints`` from start to goal, start ``heading`` (radians clockwise from +y) and
    its ``distance`` along the graph (metres)."""

    scan: str
    viewpoints: tuple[str, ...]
    heading: float
    distance: float

    def record(self, path_id: int) -> dict:
        """The R2R-format record of this path (``instructions`` empty: ``valan speak`` fills them)."""
        return {"distance": self.distance, "scan": self.scan, "path_id": path_id, "path": list(self.viewpoints),
                "heading": self.heading, "instructions": []}


def shortest_path_edges(graph: ScanGraph) -> np.ndarray:
    """``(N, N)`` int64: edges of the graph's shortest path (by distance) from ``i`` to ``j``; -1 when unreachable.

    Follows ``next_hop`` for all pairs at once, one hop per round.
    """
    n = len(graph)
    target = np.broadcast_to(np.arange(n), (n, n))
    current = np.broadcast_to(np.arange(n)[:, None], (n, n)).copy()
    edges = np.zeros((n, n), np.int64)
    reachable = np.isfinite(graph.distances)
    moving = reachable & (current != target)
    while moving.any():
        current[moving] = graph.next_hop[current[moving], target[moving]]
        edges += moving
        moving = current != target
        moving &= reachable
    edges[~reachable] = -1
    return edges


def candidate_pairs(graph: ScanGraph, limits: PathLimits) -> np.ndarray:
    """``(M, 2)`` local (start, goal) indices of ``graph`` whose shortest path is within ``limits``, in index order."""
    edges = shortest_path_edges(graph)
    ok = (edges >= limits.min_edges) & (edges <= limits.max_edges)
    ok &= (graph.distances >= limits.min_metres) & (graph.distances <= limits.max_metres)
    return np.argwhere(ok)


def sample_paths(connectivity: Connectivity, scans: Sequence[str], count: int, seed: int,
                 limits: PathLimits = PathLimits(), progress: bool = False) -> list[SampledPath]:
    """``count`` distinct R2R-like shortest paths over ``scans`` (see the module docstring); ``progress``
    shows a bar over the scans.

    ``InputError`` for an unknown scan, or when the scans hold fewer than ``count`` such paths (naming how many).
    """
    from tqdm import tqdm

    if count < 1:
        raise InputError(f"count must be at least 1, got {count}")
    names = sorted(set(scans))
    if not names:
        raise InputError("no scans given")
    for scan in names:
        if scan not in connectivity:
            raise InputError(f"unknown scan {scan!r} (no connectivity file)", source=str(connectivity.directory))
    graphs = [connectivity.graph(scan) for scan in tqdm(names, desc="scans", unit="scan", disable=not progress)]
    per_scan = [candidate_pairs(graph, limits) for graph in graphs]
    sizes = np.array([len(p) for p in per_scan])
    total = int(sizes.sum())
    if total < count:
        raise InputError(f"the {len(names)} scan(s) hold only {total} paths within {limits}; asked for {count}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(total, size=count, replace=False)
    headings = rng.uniform(0.0, 2 * math.pi, size=count)
    starts = np.cumsum(sizes) - sizes
    scan_of = np.searchsorted(np.cumsum(sizes), chosen, side="right")
    out = []
    for k, s, heading in zip(chosen.tolist(), scan_of.tolist(), headings.tolist()):
        graph = graphs[s]
        i, j = per_scan[s][k - starts[s]]
        a, b = graph.viewpoints[i], graph.viewpoints[j]
        out.append(SampledPath(graph.scan, tuple(graph.shortest_path(a, b)), heading, float(graph.distances[i, j])))
    return out
