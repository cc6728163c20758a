"""Sampled augmentation paths: valid shortest graph walks inside R2R's limits, distinct, deterministic per seed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from valan.cli import main
from valan.envs.r2r.dataset import parse_r2r
from valan.envs.r2r.graph import Connectivity, build_scan_graph
from valan.envs.r2r.sampling import PathLimits, candidate_pairs, sample_paths, shortest_path_edges
from valan.errors import InputError

SAMPLE_SCANS = ["759xd9YjKW5", "JF19kD82Mey", "i5noydFURQK", "jh4fc5c5qoQ", "r47D5H71a5s"]


def _line_graph(n: int, spacing: float):
    """Viewpoints v0..v{n-1} on a straight line, ``spacing`` metres apart, each joined to its neighbours."""
    records = []
    for i in range(n):
        pose = [1, 0, 0, i * spacing, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        records.append({"image_id": f"v{i}", "included": True, "pose": pose,
                        "unobstructed": [abs(i - j) == 1 for j in range(n)]})
    return build_scan_graph("line", records)


def test_shortest_path_edges_count_hops_along_the_shortest_path():
    graph = _line_graph(6, 2.0)
    edges = shortest_path_edges(graph)
    assert (edges == np.abs(np.arange(6)[:, None] - np.arange(6)[None, :])).all()


def test_candidate_pairs_respect_edge_and_metre_limits():
    graph = _line_graph(9, 2.0)  # hop h is 2h metres
    pairs = candidate_pairs(graph, PathLimits(min_edges=4, max_edges=6, min_metres=5.0, max_metres=10.0))
    hops = np.abs(pairs[:, 0] - pairs[:, 1])
    assert set(hops.tolist()) == {4, 5}  # 6 hops = 12 m is too long
    assert len(pairs) == 2 * ((9 - 4) + (9 - 5))  # both directions


@pytest.fixture(scope="module")
def sample_graphs(sample_connectivity):
    return Connectivity(sample_connectivity)


def test_sampled_paths_are_shortest_graph_walks_within_the_limits(sample_graphs):
    paths = sample_paths(sample_graphs, SAMPLE_SCANS, 300, seed=3)
    assert len({(p.scan, p.viewpoints) for p in paths}) == 300  # distinct
    for p in paths:
        graph = sample_graphs.graph(p.scan)
        assert 4 <= len(p.viewpoints) - 1 <= 6
        assert len(set(p.viewpoints)) == len(p.viewpoints)
        assert all(graph.adjacent(a, b) for a, b in zip(p.viewpoints, p.viewpoints[1:]))
        length = sum(graph.edge_length(a, b) for a, b in zip(p.viewpoints, p.viewpoints[1:]))
        assert 5.0 <= length <= 25.0 and math.isclose(length, p.distance, rel_tol=1e-9)
        assert math.isclose(graph.distance(p.viewpoints[0], p.viewpoints[-1]), p.distance, rel_tol=1e-9)
        assert 0.0 <= p.heading < 2 * math.pi
    assert len({p.scan for p in paths}) == len(SAMPLE_SCANS)


def test_sampling_is_deterministic_per_seed(sample_graphs):
    first = sample_paths(sample_graphs, SAMPLE_SCANS, 50, seed=7)
    assert first == sample_paths(sample_graphs, list(reversed(SAMPLE_SCANS)), 50, seed=7)
    assert first != sample_paths(sample_graphs, SAMPLE_SCANS, 50, seed=8)


def test_sampling_more_paths_than_exist_names_the_count(sample_graphs):
    with pytest.raises(InputError, match=r"hold only \d+ paths"):
        sample_paths(sample_graphs, SAMPLE_SCANS[:1], 10 ** 7, seed=0)
    with pytest.raises(InputError, match="unknown scan 'nope'"):
        sample_paths(sample_graphs, ["nope"], 5, seed=0)


def test_augment_paths_writes_r2r_records_with_fresh_ids(sample_connectivity, sample_train, tmp_path, capsys):
    out = tmp_path / "paths.json"
    args = ["augment", "paths", "--connectivity", str(sample_connectivity), "--scans", *SAMPLE_SCANS[:2],
            "--count", "20", "--seed", "1", "--output", str(out), "--first-path-id", "500000"]
    assert main(args) == 0
    records = json.loads(out.read_text())
    assert [r["path_id"] for r in records] == list(range(500000, 500020))
    assert all(r["instructions"] == [] and r["scan"] in SAMPLE_SCANS[:2] for r in records)
    human_ids = {r["path_id"] for r in json.loads(sample_train.read_text())}
    assert not human_ids & {r["path_id"] for r in records}
    # the same command again writes the same file; bad input is one line, exit 2, nothing written
    first = out.read_text()
    assert main(args) == 0 and out.read_text() == first
    bad = tmp_path / "bad.json"
    assert main([*args[:-4], "--output", str(bad), "--min-edges", "7"]) == 2
    assert not bad.exists() and "min_edges" in capsys.readouterr().err
    assert parse_r2r([{**records[0], "instructions": ["go"]}])[0].path == tuple(records[0]["path"])
