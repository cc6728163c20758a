"""Matterport3D navigation graphs: viewpoints, edges, shortest paths, headings.

A scan's graph is undirected over the viewpoints marked ``included``; an edge joins two included viewpoints
when either lists the other as ``unobstructed`` (the Matterport3DSimulator's ``load_nav_graphs`` rule). Edge
weights are Euclidean distances between pose translations ``(pose[3], pose[7], pose[11])``, in metres.

All-pairs shortest distances (metres) and next hops are computed once per scan with SciPy's compiled Dijkstra
(the edge lists are built with array operations) and cached in memory, and on disk: a scan's finished graph is
saved as ``<cache>/<scan>-<content hash>.graph``, keyed by the SHA-256 of its connectivity file's bytes, so an
edited file never hits an old entry. Entries are written to a temporary file and renamed, so processes can share
one cache folder; an unreadable or inconsistent entry is rebuilt. The folder is ``$VALAN_GRAPH_CACHE``
(``off`` disables the cache), else ``$XDG_CACHE_HOME/valan/graphs`` (``~/.cache/valan/graphs``). A cache hit
reads the arrays back and never imports SciPy.

Angles follow R2R: heading in radians, clockwise from +y (0 = +y, pi/2 = +x); elevation in radians, positive
upwards.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from valan.errors import InputError
from valan.io import atomic_write, read_json, reading

CACHE_ENV = "VALAN_GRAPH_CACHE"  # the on-disk graph cache's folder, or "off"
CACHE_FORMAT = "scan-graph-1"  # part of every cache key: bump it when the cached layout or meaning changes
_MAGIC = b"VALANSG1"  # first bytes of a cached scan graph


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
    _neighbor_sets: dict[int, frozenset[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.index = {vp: i for i, vp in enumerate(self.viewpoints)}
        self._neighbor_sets = {}  # filled on demand by adjacent(): a set lookup instead of a NumPy call per query

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
        neighbors = self._neighbor_sets.get(i)
        if neighbors is None:
            neighbors = self._neighbor_sets[i] = frozenset(self.neighbors[i].tolist())
        return j in neighbors

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
        included = np.array([bool(r["included"]) for r in records], dtype=bool)
        m = len(records)
        listed = [r["unobstructed"] for r in records]
        if all(len(row) == m for row in listed):
            unobstructed = np.array(listed, dtype=bool).reshape(m, m)
        else:  # entries beyond the record count name no viewpoint; missing ones are obstructed
            unobstructed = np.zeros((m, m), dtype=bool)
            for i, row in enumerate(listed):
                unobstructed[i, :min(len(row), m)] = np.asarray(row[:m], dtype=bool)
        kept = np.flatnonzero(included)
        positions = np.array([[records[i]["pose"][k] for k in (3, 7, 11)] for i in kept], dtype=np.float64)
        viewpoints = [records[i]["image_id"] for i in kept]
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise InputError(f"malformed connectivity record ({type(e).__name__}: {e})", source=source) from None
    n = len(viewpoints)
    # Symmetrise: an edge listed from either side is navigable in both directions.
    adjacent = unobstructed[np.ix_(kept, kept)]
    adjacent = adjacent | adjacent.T
    np.fill_diagonal(adjacent, False)
    rows, cols = np.nonzero(adjacent)  # row-major: each viewpoint's neighbours come sorted
    weights = np.linalg.norm(positions[rows] - positions[cols], axis=1)
    distances, next_hop = _shortest_paths(n, rows, cols, weights)
    offsets = np.concatenate([[0], np.cumsum(adjacent.sum(axis=1))]).astype(np.int64)
    return ScanGraph(scan, viewpoints, positions, _split_neighbors(offsets, cols.astype(np.int64)), distances,
                     next_hop)


def _shortest_paths(n: int, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs distances (metres) and next hops of the graph with edges ``rows[k] -> cols[k]`` (SciPy Dijkstra)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    adjacency = csr_matrix((weights, (rows, cols)), shape=(n, n))
    distances, predecessors = dijkstra(adjacency, directed=True, return_predecessors=True)
    return distances, _next_hops(predecessors)


def _split_neighbors(offsets: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
    """CSR ``(offsets, indices)`` -> one array of neighbour indices per viewpoint."""
    return np.split(indices, offsets[1:-1])


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


def graph_cache_dir() -> Path | None:
    """The on-disk graph cache's folder (see the module docstring); ``None`` when ``$VALAN_GRAPH_CACHE`` is off."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "valan" / "graphs"


def _save_cached(path: Path, graph: ScanGraph) -> None:
    """Write ``graph`` to ``path`` atomically (:data:`CACHE_FORMAT`); a cache that cannot be written is skipped.

    Layout: the magic bytes, an 8-byte little-endian header length, a JSON header (viewpoint ids, sizes), then
    the raw little-endian arrays positions, neighbour offsets and indices (CSR), distances, next hops, each starting
    at a multiple of 8 bytes. Reading it back is one read and no parsing of numbers.
    """
    offsets = np.concatenate([[0], np.cumsum([len(nb) for nb in graph.neighbors])]).astype("<i8")
    indices = np.concatenate(graph.neighbors).astype("<i8") if len(graph) else np.zeros(0, "<i8")
    arrays = [graph.positions.astype("<f8"), offsets, indices, graph.distances.astype("<f8"),
              graph.next_hop.astype("<i4")]
    header = json.dumps({"viewpoints": graph.viewpoints, "edges": len(indices)}).encode()
    header += b" " * (-(len(_MAGIC) + 8 + len(header)) % 8)
    try:
        with atomic_write(path, mode="wb", encoding=None) as f:
            f.write(_MAGIC + len(header).to_bytes(8, "little") + header)
            for array in arrays:
                f.write(array.tobytes())
                f.write(b"\0" * (-array.nbytes % 8))
    except InputError:  # read-only or full disk: the graph is built again next time
        pass


def _load_cached(path: Path, scan: str) -> ScanGraph | None:
    """The graph saved at ``path`` by :func:`_save_cached`, or ``None`` when it is missing, unreadable or does not
    hold what its header says."""
    try:
        with path.open("rb") as f:
            data = bytearray(path.stat().st_size)  # writable: the arrays below are views of it
            f.readinto(data)
        if data[:len(_MAGIC)] != _MAGIC:
            return None
        start = len(_MAGIC) + 8
        end = start + int.from_bytes(data[len(_MAGIC):start], "little")
        header = json.loads(data[start:end])
        viewpoints, edges = header["viewpoints"], int(header["edges"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    n = len(viewpoints)
    arrays = []
    for dtype, shape in (("<f8", (n, 3)), ("<i8", (n + 1,)), ("<i8", (edges,)), ("<f8", (n, n)), ("<i4", (n, n))):
        count = math.prod(shape)
        if end + count * np.dtype(dtype).itemsize > len(data):
            return None
        arrays.append(np.frombuffer(data, dtype=dtype, count=count, offset=end).reshape(shape))
        end += -(-count * np.dtype(dtype).itemsize // 8) * 8
    positions, offsets, indices, distances, next_hop = arrays
    if end != len(data) or offsets[0] != 0 or offsets[-1] != edges or np.any(np.diff(offsets) < 0) or (
            edges and (indices.min() < 0 or indices.max() >= n)):
        return None
    return ScanGraph(scan, viewpoints, positions, _split_neighbors(offsets, indices), distances, next_hop)


class Connectivity:
    """The folder of ``{scan}_connectivity.json`` files, loaded lazily and cached per scan.

    ``cache``: ``True`` uses the on-disk graph cache at :func:`graph_cache_dir`, a path uses that folder,
    ``False`` builds every graph from its file.
    """

    def __init__(self, directory: str | os.PathLike, cache: bool | str | os.PathLike = True):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise InputError("connectivity directory not found", source=str(self.directory))
        if cache is True:
            self.cache_dir = graph_cache_dir()
        else:
            self.cache_dir = Path(cache) if cache is not False else None

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
        if self.cache_dir is None:
            return build_scan_graph(scan, read_json(path), source=str(path))
        with reading(path):
            digest = hashlib.sha256(CACHE_FORMAT.encode() + b"\0" + path.read_bytes()).hexdigest()
        cached = self.cache_dir / f"{scan}-{digest[:32]}.graph"
        graph = _load_cached(cached, scan)
        if graph is None:
            graph = build_scan_graph(scan, read_json(path), source=str(path))
            _save_cached(cached, graph)
        return graph


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
