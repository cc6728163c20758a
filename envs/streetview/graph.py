"""The StreetLearn Manhattan navigation graph used by Touchdown and map2seq.

Files (Touchdown's ``graph/`` folder, Chen et al. 2019):

- ``nodes.txt``: ``panoid,pano_yaw_angle,lat,lng`` — one panorama per line; ``pano_yaw_angle`` is the
  heading (degrees clockwise from north) of the panorama image's reference direction, latitude/longitude in
  degrees.
- ``links.txt``: ``start_panoid,heading_degrees,end_panoid`` — one *directed* link per line; the heading is
  the direction of travel from the start panorama, degrees clockwise from north.

Movement follows the directed links (a panorama's *outgoing links*). Distances are counted in hops on the
undirected graph (two panoramas are adjacent when a link joins them in either direction), as in the Touchdown
and map2seq evaluation code. There is no all-pairs table (29,641 panoramas would need ~3.5 GB): a
breadth-first search from a goal gives every panorama's distance to it, and the last ``bfs_cache_size`` goals
are cached.

Everything is stored as compact numpy arrays: outgoing links in CSR form sorted by heading (``link_offsets``,
``link_heading``, ``link_target``) and the undirected adjacency in CSR form (``neighbor_offsets``,
``neighbor_indices``). A panorama's *index* is its line number in ``nodes.txt`` (0-based); it is also its row
in a feature table.
"""

from __future__ import annotations

import collections
import functools
import os
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from valan.errors import InputError
from valan.io import read_text

NODES_FILE = "nodes.txt"
LINKS_FILE = "links.txt"
SAMPLE_GRAPH = "streetview/graph"  # the bundled sub-graph (``valan.data.sample_path``)
UNREACHABLE = -1
"""Hop distance reported for a panorama from which the goal cannot be reached."""


class StreetGraph:
    """Panoramas, their outgoing links (sorted by heading) and the undirected hop adjacency.

    Attributes:
        name: feature-store group of this graph's panoramas (default ``"streetview"``).
        panoids: panorama ids; a panorama's index is its position here.
        yaw: ``(N,)`` float32 ``pano_yaw_angle`` per panorama, degrees.
        latlng: ``(N, 2)`` float64 latitude and longitude, degrees.
        link_offsets: ``(N + 1,)`` int64; the outgoing links of panorama ``i`` are ``link_offsets[i]`` to
            ``link_offsets[i + 1] - 1``, sorted by heading (ties keep the file's order).
        link_heading: ``(E,)`` float32 heading of each link in ``[0, 360)``, degrees clockwise from north.
        link_target: ``(E,)`` int32 index of each link's end panorama.
        link_rank: ``(E,)`` int32 position of each link in the input (``links.txt`` line order); movement rules
            break ties between equally near links by it, as Touchdown's navigator does.
        neighbor_offsets, neighbor_indices: CSR of the undirected adjacency (sorted neighbour indices).
    """

    def __init__(self, panoids: list[str], yaw: np.ndarray, latlng: np.ndarray, link_source: np.ndarray,
                 link_heading: np.ndarray, link_target: np.ndarray, name: str = "streetview",
                 bfs_cache_size: int = 1024):
        n = len(panoids)
        self.name = name
        self.panoids = list(panoids)
        self.index = {p: i for i, p in enumerate(self.panoids)}
        self.yaw = np.asarray(yaw, np.float32)
        self.latlng = np.asarray(latlng, np.float64)
        source = np.asarray(link_source, np.int64)
        heading = np.mod(np.asarray(link_heading, np.float64), 360.0)
        target = np.asarray(link_target, np.int64)
        order = np.lexsort((heading, source))  # by source, then heading; stable for equal headings
        self.link_heading = heading[order].astype(np.float32)
        self.link_target = target[order].astype(np.int32)
        self.link_rank = order.astype(np.int32)
        self.link_offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(source, minlength=n), out=self.link_offsets[1:])
        rows = np.concatenate([source, target])
        cols = np.concatenate([target, source])
        adjacency = csr_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
        adjacency.sum_duplicates()
        adjacency.sort_indices()
        adjacency.data[:] = 1
        self._adjacency = adjacency
        self.neighbor_offsets = adjacency.indptr.astype(np.int64)
        self.neighbor_indices = adjacency.indices.astype(np.int32)
        self._bfs_cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._bfs_cache_size = bfs_cache_size

    def __len__(self) -> int:
        return len(self.panoids)

    def __contains__(self, panoid: str) -> bool:
        return panoid in self.index

    @property
    def num_links(self) -> int:
        return len(self.link_target)

    def node(self, panoid: str) -> int:
        """Index of ``panoid``; ``InputError`` when the graph has no such panorama."""
        try:
            return self.index[panoid]
        except KeyError:
            raise InputError(f"unknown panorama {panoid!r} (not in {self.name} graph's {NODES_FILE})") from None

    def links(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        """``(headings in degrees, target indices)`` of ``node``'s outgoing links, sorted by heading."""
        a, b = self.link_offsets[node], self.link_offsets[node + 1]
        return self.link_heading[a:b], self.link_target[a:b]

    def out_degree(self, node: int) -> int:
        return int(self.link_offsets[node + 1] - self.link_offsets[node])

    def has_link(self, a: int, b: int) -> bool:
        """Whether ``a`` has an outgoing link to ``b``."""
        return bool(np.any(self.links(a)[1] == b))

    def neighbors(self, node: int) -> np.ndarray:
        """Undirected neighbours of ``node`` (sorted indices)."""
        return self.neighbor_indices[self.neighbor_offsets[node]:self.neighbor_offsets[node + 1]]

    def adjacent(self, a: int, b: int) -> bool:
        """Whether a link joins ``a`` and ``b`` in either direction."""
        nb = self.neighbors(a)
        k = np.searchsorted(nb, b)
        return bool(k < len(nb) and nb[k] == b)

    def distances_to(self, goal: int) -> np.ndarray:
        """Hop distance from every panorama to ``goal`` on the undirected graph, ``(N,)`` int32
        (``UNREACHABLE`` = -1 where there is no path). Computed by breadth-first search and cached per goal
        (least recently used goals are dropped beyond ``bfs_cache_size``); treat the array as read-only."""
        cached = self._bfs_cache.get(goal)
        if cached is not None:
            self._bfs_cache.move_to_end(goal)
            return cached
        hops = _bfs_hops(self._adjacency, goal)
        hops.setflags(write=False)
        self._bfs_cache[goal] = hops
        if len(self._bfs_cache) > self._bfs_cache_size:
            self._bfs_cache.popitem(last=False)
        return hops

    def hops(self, a: int, b: int) -> int:
        """Shortest-path distance from ``a`` to ``b`` in hops (``UNREACHABLE`` when disconnected)."""
        return int(self.distances_to(b)[a])


def _bfs_hops(adjacency: csr_matrix, root: int) -> np.ndarray:
    """Hops from every node to ``root`` of a symmetric adjacency matrix, int32 (``UNREACHABLE`` if none).

    SciPy's compiled breadth-first search gives the BFS tree; depths follow by pointer jumping (each round
    doubles how far every node's pointer reaches toward the root), about ten vectorised rounds on this graph.
    """
    n = adjacency.shape[0]
    order, predecessor = breadth_first_order(adjacency, root, directed=True, return_predecessors=True)
    jump = np.arange(n, dtype=np.int64)
    jump[order] = np.where(predecessor[order] < 0, order, predecessor[order])
    depth = np.zeros(n, np.int64)
    depth[order] = order != root
    while True:
        further = jump[jump]
        if np.array_equal(further, jump):
            break
        depth += depth[jump]
        jump = further
    hops = np.full(n, UNREACHABLE, np.int32)
    hops[order] = depth[order]
    return hops


def _read_lines(path: Path) -> list[str]:
    return read_text(path).splitlines()


def _bad_line(path: Path, lineno: int, line: str, expected: str) -> InputError:
    return InputError(f"line {lineno}: expected {expected}, got {line[:80]!r}", source=str(path))


def read_graph(directory: str | os.PathLike, name: str = "streetview") -> StreetGraph:
    """Parse ``nodes.txt`` and ``links.txt`` in ``directory`` (no caching; see ``load_graph``).

    Bad lines, duplicate panoramas and links naming unknown panoramas raise ``InputError`` with the file and
    line number. Repeated links (same start and end) keep the first line's heading; links from a panorama to
    itself are dropped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("graph directory not found", source=str(directory))
    nodes_path, links_path = directory / NODES_FILE, directory / LINKS_FILE
    panoids: list[str] = []
    yaw: list[float] = []
    latlng: list[tuple[float, float]] = []
    index: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(nodes_path), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        try:
            panoid, y, lat, lng = parts
            row = (float(y), float(lat), float(lng))
        except ValueError:
            raise _bad_line(nodes_path, lineno, line, "panoid,pano_yaw_angle,lat,lng") from None
        if panoid in index:
            raise InputError(f"line {lineno}: duplicate panorama {panoid!r}", source=str(nodes_path))
        index[panoid] = len(panoids)
        panoids.append(panoid)
        yaw.append(row[0] % 360.0)
        latlng.append(row[1:])
    source: list[int] = []
    heading: list[float] = []
    target: list[int] = []
    seen: set[tuple[int, int]] = set()
    for lineno, line in enumerate(_read_lines(links_path), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        try:
            start, h, end = parts
            h_deg = float(h)
        except ValueError:
            raise _bad_line(links_path, lineno, line, "start_panoid,heading_degrees,end_panoid") from None
        for panoid in (start, end):
            if panoid not in index:
                raise InputError(f"line {lineno}: unknown panorama {panoid!r} (not in {NODES_FILE})",
                                 source=str(links_path))
        pair = (index[start], index[end])
        if pair in seen or pair[0] == pair[1]:
            continue
        seen.add(pair)
        source.append(pair[0])
        heading.append(h_deg)
        target.append(pair[1])
    return StreetGraph(panoids, np.array(yaw, np.float32), np.array(latlng, np.float64).reshape(-1, 2),
                       np.array(source, np.int64), np.array(heading, np.float64), np.array(target, np.int64),
                       name=name)


@functools.lru_cache(maxsize=4)
def _cached_graph(directory: str, name: str, stamp: tuple[float, float]) -> StreetGraph:
    return read_graph(directory, name)


def load_graph(directory: str | os.PathLike | None = None, name: str = "streetview") -> StreetGraph:
    """The graph in ``directory`` (default: the bundled sample), cached per folder while its files are
    unchanged (so environments, metrics and commands in one process share one copy and its BFS cache)."""
    if directory is None:
        from valan.data import sample_path

        directory = sample_path(SAMPLE_GRAPH)
    path = Path(directory).resolve()
    try:
        stamp = ((path / NODES_FILE).stat().st_mtime, (path / LINKS_FILE).stat().st_mtime)
    except FileNotFoundError:
        stamp = (0.0, 0.0)  # read_graph reports which file is missing
    return _cached_graph(str(path), name, stamp)
