"""Navigation graphs: distances against a direct Dijkstra, next hops, heading convention, edge rules."""

from __future__ import annotations

import heapq
import json
import math

import numpy as np
import pytest

from valan.envs.r2r.graph import Connectivity, ViewpointIndex, build_scan_graph
from valan.errors import InputError


def _dijkstra_from_records(records: list[dict], source: str) -> dict[str, float]:
    """Single-source shortest distances straight from connectivity records (heapq, dicts, no SciPy)."""
    by_id = {r["image_id"]: r for r in records}
    ids = [r["image_id"] for r in records]
    adjacency: dict[str, set[str]] = {vp: set() for vp in ids if by_id[vp]["included"]}
    for i, r in enumerate(records):
        for j, ok in enumerate(r["unobstructed"]):
            if ok and i != j and r["included"] and records[j]["included"]:
                adjacency[ids[i]].add(ids[j])
                adjacency[ids[j]].add(ids[i])

    def position(vp: str) -> tuple[float, float, float]:
        pose = by_id[vp]["pose"]
        return pose[3], pose[7], pose[11]

    dist = {source: 0.0}
    queue = [(0.0, source)]
    while queue:
        d, vp = heapq.heappop(queue)
        if d > dist[vp]:
            continue
        for nb in adjacency[vp]:
            nd = d + math.dist(position(vp), position(nb))
            if nd < dist.get(nb, math.inf):
                dist[nb] = nd
                heapq.heappush(queue, (nd, nb))
    return dist


def _scans(shared_r2r) -> tuple[Connectivity, list[str]]:
    connectivity = Connectivity(shared_r2r / "connectivity")
    return connectivity, ["17DRP5sb8fy", "zsNo4HB9uLZ", "2azQ1b91cZZ"]


def test_distances_match_direct_dijkstra_on_real_scans(shared_r2r):
    connectivity, scans = _scans(shared_r2r)
    for scan in scans:
        records = json.loads((shared_r2r / "connectivity" / f"{scan}_connectivity.json").read_text())
        graph = connectivity.graph(scan)
        for source in graph.viewpoints[:: max(1, len(graph) // 10)]:
            expected = _dijkstra_from_records(records, source)
            got = {vp: graph.distance(source, vp) for vp in graph.viewpoints if np.isfinite(graph.distance(source, vp))}
            assert got.keys() == expected.keys()
            for vp, d in expected.items():
                assert got[vp] == pytest.approx(d, abs=1e-9)


def test_next_hops_give_valid_shortest_paths(shared_r2r):
    connectivity, scans = _scans(shared_r2r)
    rng = np.random.default_rng(0)
    for scan in scans:
        graph = connectivity.graph(scan)
        for _ in range(200):
            a, b = (graph.viewpoints[i] for i in rng.integers(len(graph), size=2))
            if not np.isfinite(graph.distance(a, b)):
                continue
            path = graph.shortest_path(a, b)
            assert path[0] == a and path[-1] == b
            assert all(graph.adjacent(x, y) for x, y in zip(path, path[1:]))
            length = sum(graph.edge_length(x, y) for x, y in zip(path, path[1:]))
            assert length == pytest.approx(graph.distance(a, b), abs=1e-9)


def _record(vp: str, xyz: tuple[float, float, float], unobstructed: list[bool], included: bool = True) -> dict:
    pose = [1.0, 0, 0, xyz[0], 0, 1.0, 0, xyz[1], 0, 0, 1.0, xyz[2], 0, 0, 0, 1.0]
    return {"image_id": vp, "pose": pose, "included": included, "unobstructed": unobstructed,
            "visible": unobstructed, "height": 1.5}


def _toy_graph():
    # o at the origin; n north (+y), e east (+x), s south, u north and 1 m up; x excluded.
    records = [
        _record("o", (0, 0, 0), [False, True, True, False, False, True]),
        _record("n", (0, 2, 0), [False, False, False, False, True, False]),  # n lists only u
        _record("e", (3, 0, 0), [False] * 6),  # e lists nobody; o lists e
        _record("s", (0, -1, 0), [True, False, False, False, False, False]),  # s lists o
        _record("u", (0, 3, 1), [False] * 6),
        _record("x", (1, 1, 0), [True, True, True, True, True, False], included=False),
    ]
    return build_scan_graph("toy", records)


def test_heading_and_elevation_convention():
    g = _toy_graph()
    assert g.heading("o", "n") == pytest.approx(0.0)
    assert g.heading("o", "e") == pytest.approx(math.pi / 2)
    assert abs(g.heading("o", "s")) == pytest.approx(math.pi)
    assert g.heading("e", "o") == pytest.approx(-math.pi / 2)
    assert g.elevation("n", "u") == pytest.approx(math.atan2(1, 1))
    assert g.elevation("o", "e") == pytest.approx(0.0)


def test_edges_are_symmetrised_and_excluded_viewpoints_dropped():
    g = _toy_graph()
    assert "x" not in g and len(g) == 5
    for a, b in [("o", "n"), ("o", "e"), ("o", "s"), ("n", "u")]:
        assert g.adjacent(a, b) and g.adjacent(b, a)
    assert not g.adjacent("e", "n") and not g.adjacent("s", "e")
    assert g.distance("e", "u") == pytest.approx(3 + 2 + math.sqrt(2))
    assert g.shortest_path("s", "u") == ["s", "o", "n", "u"]
    assert g.edge_length("o", "e") == pytest.approx(3.0)
    with pytest.raises(InputError, match="x"):
        g.local_index("x")


def test_unreachable_viewpoints_have_infinite_distance_and_no_path():
    records = [_record("a", (0, 0, 0), [False, False]), _record("b", (1, 0, 0), [False, False])]
    g = build_scan_graph("split", records)
    assert g.distance("a", "b") == math.inf
    with pytest.raises(InputError, match="no path"):
        g.shortest_path("a", "b")


def test_connectivity_and_viewpoint_index(sample_connectivity, tmp_path):
    connectivity = Connectivity(sample_connectivity)
    scans = connectivity.scans()
    assert len(scans) == 5
    index = ViewpointIndex(connectivity, scans[::-1])
    keys = index.keys()
    assert len(keys) == index.num_viewpoints == sum(len(connectivity.graph(s)) for s in scans)
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)  # scans in sorted order
    for g, (scan, vp) in enumerate(keys[::37]):
        assert index.global_index(scan, vp) == g * 37
    with pytest.raises(InputError, match="unknown scan"):
        connectivity.graph("NoSuchScan")
    bad = tmp_path / "bad_connectivity.json"
    bad.write_text(json.dumps([{"image_id": "a"}]))
    with pytest.raises(InputError, match="malformed connectivity"):
        Connectivity(tmp_path).graph("bad")
