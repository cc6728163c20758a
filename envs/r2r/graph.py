"""Matterport3D navigation graphs: viewpoints, edges, shortest paths, headings.

A scan's graph is undirected over the viewpoints marked ``included``; an edge joins two included viewpoints
when either lists the other as ``unobstructed`` (the Matterport3DSimulator's ``load_nav_graphs`` rule). Edge
weights are Euclidean distances between pose translations ``(pose[3], pose[7], pose[11])``, in metres.

All-pairs shortest distances (metres) and next hops are computed once per scan with SciPy's compiled Dijkstra
(the edge lists are built with array operations) and cached in memory, and on disk: a scan's finished graph is
saved as ``<cache>/<scan>-<content hash>.graph``, keyed by the SHA-256 of its connectivity file's bytes (and the
machine's byte order), so an edited file never hits an old entry; a small ``stat-*.key`` file per connectivity
file remembers that hash under the file's stat fingerprint, so an unchanged file is not hashed on every load.
Entries are written to a temporary file and renamed, so processes can share one cache folder; an unreadable or inconsistent entry is rebuilt. The folder is
``$VALAN_GRAPH_CACHE`` (``off`` disables the cache), else ``$XDG_CACHE_HOME/valan/graphs``
(``~/.cache/valan/graphs``).

A cache hit maps the entry into memory and imports neither SciPy nor NumPy: the graph's tables are flat
memoryviews, read lazily, that the pure-Python lookups (``distance``, ``adjacent``, ``shortest_path``, the
metrics) index directly; the NumPy views (``distances``, ``positions``, ...) that environments use are made on
first access. So ``valan evaluate r2r`` pays for neither import.

Angles follow R2R: heading in radians, clockwise from +y (0 = +y, pi/2 = +x); elevation in radians, positive
upwards.
"""

from __future__ import annotations

import functools
import json
import math
import mmap
import os
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from valan.errors import InputError
from valan.io import atomic_write, read_json, reading

if TYPE_CHECKING:
    import numpy as np

CACHE_ENV = "VALAN_GRAPH_CACHE"  # the on-disk graph cache's folder, or "off"
CACHE_FORMAT = "scan-graph-2"  # part of every cache key: bump it when the cached layout or meaning changes
_MAGIC = b"VALANSG2"  # first bytes of a cached scan graph
# The tables, in storage order: (name, struct format: float64, int64 or int32, which NumPy reads as the same dtype).
# Native byte order (part of the cache key).
_TABLES = (("positions", "d"), ("offsets", "q"), ("indices", "q"), ("distances", "d"), ("next_hop", "i"))
_SETTLE_S = 2.0  # seconds; a connectivity file changed more recently than this is hashed on every load


def _flat(buffer: object, fmt: str) -> memoryview:
    """A one-dimensional memoryview of ``buffer`` (anything C-contiguous with the buffer protocol) as ``fmt``."""
    return memoryview(buffer).cast("B").cast(fmt)


class ScanGraph:
    """The navigation graph of one Matterport3D scan.

    Built from flat tables in native byte order (NumPy arrays or any buffer): ``positions`` (``N * 3`` float64,
    metres), the neighbour lists as CSR ``offsets`` (``N + 1`` int64) and ``indices`` (int64, each viewpoint's
    neighbours sorted), ``distances`` (``N * N`` float64) and ``next_hop`` (``N * N`` int32).

    Attributes:
        scan: scan id.
        viewpoints: viewpoint ids of included viewpoints; a viewpoint's position in this list is its local index.
        index: viewpoint id -> local index.
        distance_table: flat memoryview of the shortest-path distances, metres: ``distance_table[i * N + j]``
            (``inf`` when unreachable). The pure-Python lookup that the metrics use.
        positions: ``(N, 3)`` float64 pose translations, metres (NumPy, made on first access).
        neighbors: per viewpoint, the sorted local indices of adjacent viewpoints (NumPy int64 arrays).
        distances: ``(N, N)`` float64 shortest-path distances, metres (NumPy view of ``distance_table``).
        next_hop: ``(N, N)`` int32; ``next_hop[i, j]`` is the first viewpoint after ``i`` on a shortest path
            from ``i`` to ``j`` (``j`` itself when adjacent, ``i`` when ``i == j``, -1 when unreachable).
    """

    def __init__(self, scan: str, viewpoints: list[str], positions: object, offsets: object, indices: object,
                 distances: object, next_hop: object):
        self.scan = scan
        self.viewpoints = viewpoints
        self.index = {vp: i for i, vp in enumerate(viewpoints)}
        self._tables = {name: _flat(table, fmt) for (name, fmt), table in
                        zip(_TABLES, (positions, offsets, indices, distances, next_hop))}
        self.distance_table = self._tables["distances"]
        self._neighbor_sets: dict[int, frozenset[int]] = {}  # filled on demand by adjacent()

    def __len__(self) -> int:
        return len(self.viewpoints)

    def __contains__(self, viewpoint: str) -> bool:
        return viewpoint in self.index

    def __repr__(self) -> str:
        return f"ScanGraph({self.scan!r}, {len(self)} viewpoints)"

    def __reduce__(self) -> tuple:
        """Pickled as its tables' bytes (a memoryview does not pickle)."""
        return ScanGraph, (self.scan, self.viewpoints, *(bytes(self._tables[name]) for name, _ in _TABLES))

    def _array(self, name: str) -> np.ndarray:
        import numpy as np

        table = self._tables[name]
        return np.frombuffer(table, dtype=table.format)

    @functools.cached_property
    def positions(self) -> np.ndarray:
        return self._array("positions").reshape(len(self), 3)

    @functools.cached_property
    def distances(self) -> np.ndarray:
        return self._array("distances").reshape(len(self), len(self))

    @functools.cached_property
    def next_hop(self) -> np.ndarray:
        return self._array("next_hop").reshape(len(self), len(self))

    @functools.cached_property
    def neighbors(self) -> list[np.ndarray]:
        import numpy as np

        return np.split(self._array("indices"), self._array("offsets")[1:-1])

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
            offsets = self._tables["offsets"]
            neighbors = self._neighbor_sets[i] = frozenset(self._tables["indices"][offsets[i]:offsets[i + 1]])
        return j in neighbors

    def distance(self, a: str, b: str) -> float:
        """Shortest-path distance from ``a`` to ``b`` along the graph, metres."""
        return self.distance_table[self.local_index(a) * len(self) + self.local_index(b)]

    def _position(self, viewpoint: str) -> tuple[float, float, float]:
        i = 3 * self.local_index(viewpoint)
        return tuple(self._tables["positions"][i:i + 3])

    def edge_length(self, a: str, b: str) -> float:
        """Euclidean distance between the two viewpoints' positions, metres."""
        return math.dist(self._position(a), self._position(b))

    def shortest_path(self, a: str, b: str) -> list[str]:
        """Viewpoints of a shortest path from ``a`` to ``b``, both included."""
        i, j, n = self.local_index(a), self.local_index(b), len(self)
        next_hop = self._tables["next_hop"]
        if next_hop[i * n + j] < 0:
            raise InputError(f"no path from {a} to {b} in scan {self.scan}")
        path = [i]
        while path[-1] != j:
            path.append(next_hop[path[-1] * n + j])
        return [self.viewpoints[k] for k in path]

    def heading(self, a: str, b: str) -> float:
        """Heading from ``a`` towards ``b``, radians clockwise from +y, in ``(-pi, pi]``."""
        (xa, ya, _), (xb, yb, _) = self._position(a), self._position(b)
        return math.atan2(xb - xa, yb - ya)

    def elevation(self, a: str, b: str) -> float:
        """Elevation from ``a`` towards ``b``, radians, positive upwards."""
        (xa, ya, za), (xb, yb, zb) = self._position(a), self._position(b)
        return math.atan2(zb - za, math.hypot(xb - xa, yb - ya))


def build_scan_graph(scan: str, records: list[dict], source: str = "") -> ScanGraph:
    """Build a ``ScanGraph`` from the records of a ``{scan}_connectivity.json`` file."""
    import numpy as np

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
    return ScanGraph(scan, viewpoints, positions.reshape(-1).copy(), offsets, cols.astype(np.int64),
                     np.ascontiguousarray(distances, dtype=np.float64), next_hop)


def _shortest_paths(n: int, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs distances (metres) and next hops of the graph with edges ``rows[k] -> cols[k]`` (SciPy Dijkstra)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    adjacency = csr_matrix((weights, (rows, cols)), shape=(n, n))
    distances, predecessors = dijkstra(adjacency, directed=True, return_predecessors=True)
    return distances, _next_hops(predecessors)


def _next_hops(predecessors: np.ndarray) -> np.ndarray:
    """From Dijkstra's predecessor matrix (row = source), the first hop from every source to every target.

    The graph is undirected, so the predecessor of ``i`` on the shortest path from target ``j`` is the first
    hop from ``i`` towards ``j``: ``next_hop[i, j] = predecessors[j, i]``.
    """
    import numpy as np

    n = predecessors.shape[0]
    next_hop = np.ascontiguousarray(predecessors.T, dtype=np.int32)
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

    Layout: the magic bytes, an 8-byte little-endian header length, a JSON header (viewpoint ids, edge count),
    then the flat tables of :data:`_TABLES` in native byte order, each starting at a multiple of 8 bytes. Reading
    it back is one memory map and no parsing of numbers.
    """
    header = json.dumps({"viewpoints": graph.viewpoints, "edges": len(graph._tables["indices"])}).encode()
    header += b" " * (-(len(_MAGIC) + 8 + len(header)) % 8)
    try:
        with atomic_write(path, mode="wb", encoding=None) as f:
            f.write(_MAGIC + len(header).to_bytes(8, "little") + header)
            for name, _ in _TABLES:
                table = graph._tables[name]
                f.write(table)
                f.write(b"\0" * (-table.nbytes % 8))
    except InputError:  # read-only or full disk: the graph is built again next time
        pass


def _load_cached(path: Path, scan: str) -> ScanGraph | None:
    """The graph saved at ``path`` by :func:`_save_cached`, or ``None`` when it is missing, unreadable or does not
    hold what its header says.

    The file is mapped copy-on-write: only the pages a lookup touches are read, and the tables stay writable
    in this process without changing the file (entries are replaced by rename, never rewritten in place).
    """
    try:
        with path.open("rb") as f:
            data = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
        if data[:len(_MAGIC)] != _MAGIC:
            return None
        start = len(_MAGIC) + 8
        end = start + int.from_bytes(data[len(_MAGIC):start], "little")
        header = json.loads(bytes(data[start:end]))
        viewpoints, edges = header["viewpoints"], int(header["edges"])
    except (OSError, ValueError, KeyError, TypeError):  # an empty file cannot be mapped: ValueError
        return None
    if not isinstance(viewpoints, list) or not all(isinstance(vp, str) for vp in viewpoints):
        return None
    n = len(viewpoints)
    tables = []
    for (_, fmt), count in zip(_TABLES, (3 * n, n + 1, edges, n * n, n * n)):
        size = count * struct.calcsize(fmt)
        if size < 0 or end + size > len(data):
            return None
        tables.append(data[end:end + size].cast(fmt))
        end += -(-size // 8) * 8
    _, offsets, indices, _, _ = tables
    if end != len(data) or offsets[0] != 0 or offsets[n] != edges or any(
            offsets[i] > offsets[i + 1] for i in range(n)) or (edges and (min(indices) < 0 or max(indices) >= n)):
        return None
    return ScanGraph(scan, viewpoints, *tables)


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
        cached = self.cache_dir / f"{scan}-{self._content_key(path)}.graph"
        graph = _load_cached(cached, scan)
        if graph is None:
            graph = build_scan_graph(scan, read_json(path), source=str(path))
            _save_cached(cached, graph)
        return graph


    def _content_key(self, path: Path) -> str:
        """The cache key of a connectivity file: the SHA-256 of :data:`CACHE_FORMAT`, the byte order and the file's
        bytes (32 hex digits).

        As git's index does, a small ``stat-<crc>.key`` file in the cache remembers the key under the file's
        stat fingerprint (device, inode, size, modification and change times in ns), so an unchanged file is not
        read and hashed again. Any write to the file changes its change time, so an edited file is hashed anew.
        A file changed in the last :data:`_SETTLE_S` seconds gets no fingerprint: an edit within the same clock
        tick could otherwise leave it unchanged.
        """
        salt = f"{CACHE_FORMAT}\0{sys.byteorder}\0"
        with reading(path):
            st = path.stat()
        fingerprint = f"{salt}{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
        # The alias is named by a CRC of the fingerprint and holds the fingerprint itself after the key, so a name
        # collision only misses (nothing is trusted that does not match), and a warm run needs no hashlib (~5 ms).
        alias = self.cache_dir / f"stat-{zlib.crc32(fingerprint.encode()):08x}.key"
        try:
            key, _, recorded = alias.read_text(encoding="utf-8").partition("\n")
            if recorded == fingerprint and len(key) == 32 and all(c in "0123456789abcdef" for c in key):
                return key
        except (OSError, ValueError):  # no alias yet, or an unreadable one: hash the file
            pass
        import hashlib  # only when a file is new or changed

        with reading(path):
            key = hashlib.sha256(salt.encode() + path.read_bytes()).hexdigest()[:32]
        if time.time() - max(st.st_mtime, st.st_ctime) > _SETTLE_S:
            try:
                with atomic_write(alias, encoding="utf-8") as f:
                    f.write(f"{key}\n{fingerprint}")
            except InputError:  # read-only or full disk: the file is hashed again next time
                pass
        return key


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
