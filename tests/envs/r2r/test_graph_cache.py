"""The on-disk scan-graph cache: a hit gives exactly the cold build, bad entries and edited files are rebuilt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from valan.envs.r2r import graph as graph_module
from valan.envs.r2r.graph import CACHE_ENV, Connectivity, graph_cache_dir


def _assert_same(a, b) -> None:
    assert a.scan == b.scan and a.viewpoints == b.viewpoints
    for name in ("positions", "distances", "next_hop"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert len(a.neighbors) == len(b.neighbors)
    assert all(np.array_equal(x, y) for x, y in zip(a.neighbors, b.neighbors))


def _no_rebuild(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the graph was rebuilt instead of read from the cache")

    monkeypatch.setattr(graph_module, "_shortest_paths", fail)


def test_cache_hit_equals_cold_build_without_rebuilding(sample_connectivity, tmp_path, monkeypatch):
    scans = Connectivity(sample_connectivity).scans()
    cold = Connectivity(sample_connectivity, cache=False).graph(scans[0])
    Connectivity(sample_connectivity, cache=tmp_path).graph(scans[0])  # writes the entry
    assert len(list(tmp_path.glob(f"{scans[0]}-*.graph"))) == 1
    _no_rebuild(monkeypatch)
    _assert_same(Connectivity(sample_connectivity, cache=tmp_path).graph(scans[0]), cold)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "header"])
def test_corrupted_entry_falls_back_to_a_cold_build_and_is_rewritten(sample_connectivity, tmp_path, damage):
    scan = Connectivity(sample_connectivity).scans()[1]
    expected = Connectivity(sample_connectivity, cache=False).graph(scan)
    Connectivity(sample_connectivity, cache=tmp_path).graph(scan)
    (entry,) = tmp_path.glob(f"{scan}-*.graph")
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00" * len(data), "empty": b"",
                       "header": data[:8] + (10 ** 9).to_bytes(8, "little") + data[16:]}[damage])
    _assert_same(Connectivity(sample_connectivity, cache=tmp_path).graph(scan), expected)
    assert entry.read_bytes() == data  # the rebuilt graph replaced the bad entry


def test_an_edited_connectivity_file_never_hits_the_old_entry(sample_connectivity, tmp_path):
    folder = tmp_path / "connectivity"
    shutil.copytree(sample_connectivity, folder)
    scan = Connectivity(folder).scans()[0]
    cache = tmp_path / "cache"
    before = Connectivity(folder, cache=cache).graph(scan)
    path = folder / f"{scan}_connectivity.json"
    records = json.loads(path.read_text())
    records[0]["included"] = False  # drop a viewpoint
    path.write_text(json.dumps(records))
    after = Connectivity(folder, cache=cache).graph(scan)
    assert len(after) == len(before) - 1 and records[0]["image_id"] not in after
    _assert_same(after, Connectivity(folder, cache=False).graph(scan))
    assert len(list(cache.glob(f"{scan}-*.graph"))) == 2


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, "off")
    assert graph_cache_dir() is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "graphs"))
    assert graph_cache_dir() == tmp_path / "graphs"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert graph_cache_dir() == tmp_path / "valan" / "graphs"


def test_unwritable_cache_folder_still_gives_the_graph(sample_connectivity, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    scan = Connectivity(sample_connectivity).scans()[0]
    _assert_same(Connectivity(sample_connectivity, cache=blocker / "cache").graph(scan),
                 Connectivity(sample_connectivity, cache=False).graph(scan))


def test_an_unchanged_file_is_not_hashed_again_and_an_edit_keeping_size_and_mtime_is_seen(sample_connectivity,
                                                                                           tmp_path, monkeypatch):
    folder = tmp_path / "connectivity"
    shutil.copytree(sample_connectivity, folder)
    scan = Connectivity(folder).scans()[0]
    path, cache = folder / f"{scan}_connectivity.json", tmp_path / "cache"
    monkeypatch.setattr(graph_module, "_SETTLE_S", -1.0)  # the copy is brand new: remember its key at once
    before = Connectivity(folder, cache=cache).graph(scan)
    assert len(list(cache.glob("stat-*.key"))) == 1

    def no_reading(self):
        raise AssertionError(f"{self} was read and hashed again")

    with monkeypatch.context() as patch:
        patch.setattr(type(path), "read_bytes", no_reading)
        _assert_same(Connectivity(folder, cache=cache).graph(scan), before)

    # Same size, same modification time, other bytes: the change time still moves, so the file is hashed anew.
    stat, text = path.stat(), path.read_text()
    j = next(k for k in range(text.index('"pose"'), len(text)) if text[k - 1:k + 2].isdigit())  # inside a number
    path.write_text(text[:j] + str((int(text[j]) + 1) % 10) + text[j + 1:])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    after = Connectivity(folder, cache=cache).graph(scan)
    assert len(list(cache.glob(f"{scan}-*.graph"))) == 2  # a new key: the edit was seen
    _assert_same(after, Connectivity(folder, cache=False).graph(scan))


def test_scoring_from_a_warm_cache_imports_neither_numpy_nor_scipy(sample_connectivity, tmp_path):
    """``valan evaluate r2r`` reads cached graphs through memoryviews and scores in plain Python; it does not hash
    unchanged connectivity files again (no ``hashlib``) and builds no dataclasses (``dataclasses`` imports
    ``inspect``), each a few ms of a ~0.1 s process."""
    data = tmp_path / "val.json"
    records = [{"path_id": 1, "scan": scan, "path": list(graph.shortest_path(graph.viewpoints[0], goal)),
                "heading": 0.0, "distance": graph.distance(graph.viewpoints[0], goal), "instructions": ["go"]}
               for scan in Connectivity(sample_connectivity).scans()[:1]
               for graph in [Connectivity(sample_connectivity, cache=False).graph(scan)]
               for goal in [graph.viewpoints[-1]]]
    data.write_text(json.dumps(records))
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps([{"instr_id": "1_0", "trajectory": [[vp, 0.0, 0.0] for vp in r["path"]]}
                                       for r in records]))
    probe = f"""
import sys
from valan.cli import main
argv = ["evaluate", "r2r", "--data", {str(data)!r}, "--predictions", {str(predictions)!r}, "--connectivity",
        {str(sample_connectivity)!r}, "--json"]
assert main(argv) == 0
print("heavy:", sorted({{m.split(".")[0] for m in sys.modules}} & {{"numpy", "scipy", "hashlib", "dataclasses"}}))
"""
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache")}
    for _ in range(2):  # the first run fills the cache (and builds graphs with NumPy and SciPy)
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert '"spl": 1.0' in out.stdout and "heavy: []" in out.stdout, out.stdout


def test_a_cached_graph_pickles_and_answers_the_same(sample_connectivity, tmp_path):
    import pickle

    scan = Connectivity(sample_connectivity).scans()[0]
    Connectivity(sample_connectivity, cache=tmp_path).graph(scan)
    graph = Connectivity(sample_connectivity, cache=tmp_path).graph(scan)  # memory-mapped tables
    copy = pickle.loads(pickle.dumps(graph))
    _assert_same(copy, graph)
    a, b = graph.viewpoints[0], graph.viewpoints[-1]
    assert copy.shortest_path(a, b) == graph.shortest_path(a, b) and copy.distance(a, b) == graph.distance(a, b)
