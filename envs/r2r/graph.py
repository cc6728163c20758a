"""Matterport3D navigation graphs: viewpoints, edges, shortest paths, headings.

A scan's graph is undirected over the viewpoints marked ``included``; an edge joins two included viewpoints
when either lists the other as ``unobstructed`` (the Matterport3DSimulator's ``load_nav_graphs`` rule). Edge
weights are Euclidean distances between pose translations ``(pose[3], pose[7], pose[11])``, in metres.

All-pairs shortest distances (metres) and next hops are computed once per scan with SciPy's compiled Dijkstra
and cached in memory.

Angles follow R2R: heading in radians, clockwise from +y (0 = +y, pi/2 = +x); elevation in radians, positive
upwards.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from valan.errors import InputError
from valan.io import read_json


@dataclass
class ScanGraph:
    """The navigation graph of one Matterport3D scan.

    Attributes:
        scan: scan id.
        viewpoints: viewpoint ids of included viewpoints; a viewpoint's position in this list is its local index.
        positions: ``(N, 3)`` float64 pose translations, metres.
        neighbors: per viewpoint, the sorted local indices of adjacent viewpoints.
        distances: ``(N, N)`` float64 shortest-path distances, metres (``inf`` when unreachable).
        next_hop: ``(N, N)`` int32; ``next_hop[i, j]`` is the first viewpoint after ``i`` on a shortest path
            from ``i`` to ``j`` (``j`` itself when adjacent, ``i`` when ``i == j``, -1 when unreachable).
    """

    scan: str
    viewpoints: list[str]
    positions: np.ndarray
    neighbors: list[np.ndarray]
    distances: np.ndarray
    next_hop: np.ndarray
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {vp: i for i, vp in enumerate(self.viewpoints)}

    def __len__(self) -> int:
        return len(self.viewpoints)

    def __contains__(self, viewpoint: str) -> bool:
        return viewpoint in self.index

    def local_index(self, viewpoint: str) -> int:
        """Local index of ``viewpoint``; ``InputError`` naming the scan when it is not in the graph."""
        try:
            return self.index[viewpoint]
        except KeyError:
            raise InputError(f"unknown viewpoint {viewpoint!r} in scan {self.scan}") from None

    def adjacent(self, a: str, b: str) -> bool:
        """Whether viewpoints ``a`` and ``b`` are joined by an edge."""
        i, j = self.local_index(a), self.local_index(b)
        nb = self.neighbors[i]
        k = np.searchsorted(nb, j)
        return bool(k < len(nb) and nb[k] == j)

    def distance(self, a: str, b: str) -> float:
        """Shortest-path distance from ``a`` to ``b`` along the graph, metres."""
        return float(self.distances[self.local_index(a), self.local_index(b)])

    def edge_length(self, a: str, b: str) -> float:
        """Euclidean distance between the two viewpoints' positions, metres."""
        return float(np.linalg.norm(self.positions[self.local_index(a)] - self.positions[self.local_index(b)]))

    def shortest_path(self, a: str, b: str) -> list[str]:
        """Viewpoints of a shortest path from ``a`` to ``b``, both included."""
        i, j = self.local_index(a), self.local_index(b)
        if self.next_hop[i, j] < 0:
            raise InputError(f"no path from {a} to {b} in scan {self.scan}")
        path = [i]
        while path[-1] != j:
            path.append(int(self.next_hop[path[-1], j]))
        return [self.viewpoints[k] for k in path]

    def heading(self, a: str, b: str) -> float:
        """Heading from ``a`` towards ``b``, radians clockwise from +y, in ``(-pi, pi]``."""
        d = self.positions[self.local_index(b)] - self.positions[self.local_index(a)]
        return math.atan2(d[0], d[1])

    def elevation(self, a: str, b: str) -> float:
        """Elevation from ``a`` towards ``b``, radians, positive upwards."""
        d = self.positions[self.local_index(b)] - self.positions[self.local_index(a)]
        return math.atan2(d[2], math.hypot(d[0], d[1]))


def build_scan_graph(scan: str, records: list[dict], source: str = "") -> ScanGraph:
    """Build a ``ScanGraph`` from the records of a ``{scan}_connectivity.json`` file."""
    try:
        included = [i for i, r in enumerate(records) if r["included"]]
        positions = np.array([[records[i]["pose"][k] for k in (3, 7, 11)] for i in included], dtype=np.float64)
        local = {orig: new for new, orig in enumerate(included)}
        rows, cols = [], []
        for orig in included:
            for j, ok in enumerate(records[orig]["unobstructed"]):
                if ok and j in local and j != orig:
                    rows.append(local[orig])
                    cols.append(local[j])
        viewpoints = [records[i]["image_id"] for i in included]
    except (KeyError, TypeError, IndexError) as e:
        raise InputError(f"malformed connectivity record ({type(e).__name__}: {e})", source=source) from None
    n = len(viewpoints)
    # Symmetrise: an edge listed from either side is navigable in both directions.
    r = np.concatenate([rows, cols]).astype(np.int64)
    c = np.concatenate([cols, rows]).astype(np.int64)
    pairs = np.unique(np.stack([r, c], axis=1), axis=0) if len(r) else np.zeros((0, 2), np.int64)
    weights = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
    adjacency = csr_matrix((weights, (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    distances, predecessors = dijkstra(adjacency, directed=True, return_predecessors=True)
    next_hop = _next_hops(predecessors)
    neighbors = [np.sort(pairs[pairs[:, 0] == i, 1]) for i in range(n)]
    return ScanGraph(scan, viewpoints, positions, neighbors, distances, next_hop)


def _next_hops(predecessors: np.ndarray) -> np.ndarray:
    """From Dijkstra's predecessor matrix (row = source), the first hop from every source to every target.

    The graph is undirected, so the predecessor of ``i`` on the shortest path from target ``j`` is the first
    hop from ``i`` towards ``j``: ``next_hop[i, j] = predecessors[j, i]``.
    """
    n = predecessors.shape[0]
    next_hop = predecessors.T.astype(np.int32)
    next_hop[next_hop == -9999] = -1
    np.fill_diagonal(next_hop, np.arange(n, dtype=np.int32))
    return next_hop


class Connectivity:
    """The folder of ``{scan}_connectivity.json`` files, loaded lazily and cached per scan."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise InputError("connectivity directory not found", source=str(self.directory))

    def scans(self) -> list[str]:
        """All scans with a connectivity file, sorted."""
        return sorted(p.name[: -len("_connectivity.json")] for p in self.directory.glob("*_connectivity.json"))

    def __contains__(self, scan: str) -> bool:
        return (self.directory / f"{scan}_connectivity.json").is_file()

    @functools.lru_cache(maxsize=None)
    def graph(self, scan: str) -> ScanGraph:
        """The navigation graph of ``scan``; ``InputError`` when the scan has no connectivity file."""
        path = self.directory / f"{scan}_connectivity.json"
        if not path.is_file():
            raise InputError(f"unknown scan {scan!r}: no {path.name}", source=str(self.directory))
        return build_scan_graph(scan, read_json(path), source=str(path))


class ViewpointIndex:
    """Global viewpoint indices over a fixed, sorted set of scans.

    Row ``offset[scan] + local index`` of a feature table holds that viewpoint's features, so a learner can keep
    one ``(num_viewpoints, views, dim)`` table and actors can send plain integers.
    """

    def __init__(self, connectivity: Connectivity, scans: list[str]):
        self.connectivity = connectivity
        self.scans = sorted(set(scans))
        self.offsets: dict[str, int] = {}
        total = 0
        for scan in self.scans:
            self.offsets[scan] = total
            total += len(connectivity.graph(scan))
        self.num_viewpoints = total

    def global_index(self, scan: str, viewpoint: str) -> int:
        return self.offsets[scan] + self.connectivity.graph(scan).local_index(viewpoint)

    def keys(self) -> list[tuple[str, str]]:
        """``(scan, viewpoint)`` for every global index, in order."""
        return [(scan, vp) for scan in self.scans for vp in self.connectivity.graph(scan).viewpoints]
