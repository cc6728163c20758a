"""``valan data check r2r``: real data passes, planted errors are all reported by path_id with exit status 2."""

from __future__ import annotations

import json

import pytest

from valan.cli import main
from valan.envs.r2r.graph import Connectivity
from valan.io import read_json


def _check(data, connectivity) -> list[str]:
    return ["data", "check", "r2r", "--data", str(data), "--connectivity", str(connectivity)]


def test_bundled_sample_is_ok(sample_train, sample_connectivity, capsys):
    assert main(_check(sample_train, sample_connectivity)) == 0
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0
    assert out.endswith("354 paths, 1062 instructions, 5 scans")


def test_planted_errors_are_each_reported_by_path_id(sample_train, sample_connectivity, tmp_path, capsys):
    records = read_json(sample_train)
    graphs = Connectivity(sample_connectivity)
    by_id = {r["path_id"]: r for r in records}
    ids = sorted(by_id)[:6]
    by_id[ids[0]]["path"][2] = "not_a_viewpoint"
    # a viewpoint of the same scan adjacent to neither path[0] nor path[2]: two broken steps
    graph = graphs.graph(by_id[ids[1]]["scan"])
    path = by_id[ids[1]]["path"]
    path[1] = next(v for v in graph.viewpoints
                   if v not in path and not graph.adjacent(path[0], v) and not graph.adjacent(v, path[2]))
    by_id[ids[2]]["heading"] = "north"
    by_id[ids[3]]["heading"] = float("nan")
    by_id[ids[4]]["scan"] = "NoSuchScan0"
    del by_id[ids[5]]["instructions"]
    duplicate = dict(by_id[ids[0]])
    records.append(duplicate)
    bad = tmp_path / "corrupt.json"
    bad.write_text(json.dumps(records))  # NaN is written as the JSON extension NaN

    assert main(_check(bad, sample_connectivity)) == 2
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    expected = {
        ids[0]: "not_a_viewpoint",
        ids[1]: "not adjacent",
        ids[2]: "heading",
        ids[3]: "heading",
        ids[4]: "unknown scan",
        ids[5]: "missing field 'instructions'",
    }
    for path_id, what in expected.items():
        assert any(f"path_id {path_id}:" in line and what in line for line in lines), (path_id, lines)
    assert any(f"path_id {ids[0]}: duplicate path_id" in line for line in lines)
    assert sum(f"path_id {ids[1]}: path positions" in line for line in lines) == 2
    # plus the duplicate copy's repeated unknown-viewpoint line; nothing else is reported
    assert len(lines) == len(expected) + 3
    assert all(line.startswith(str(bad)) for line in lines)
    assert "problem" in captured.err and captured.err.count("\n") == 1


def test_malformed_json_is_one_line_and_exit_2(sample_connectivity, tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text('[{"path_id": 1,')
    assert main(_check(bad, sample_connectivity)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.json" in err and "malformed JSON" in err


def test_not_a_list_and_missing_connectivity(sample_connectivity, tmp_path, capsys):
    bad = tmp_path / "object.json"
    bad.write_text('{"path_id": 1}')
    assert main(_check(bad, sample_connectivity)) == 2
    assert "expected a JSON list" in capsys.readouterr().out
    assert main(_check(bad, tmp_path / "nowhere")) == 2
    assert "connectivity directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["R2R_val_seen.json", "R2R_test.json"])
def test_real_splits_are_ok(shared_r2r, split, capsys):
    assert main(_check(shared_r2r / split, shared_r2r / "connectivity")) == 0
    assert capsys.readouterr().out.startswith("OK:")
