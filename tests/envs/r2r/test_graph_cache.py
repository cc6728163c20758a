"""The on-disk scan-graph cache: a hit gives exactly the cold build, bad entries and edited files are rebuilt."""

from __future__ import annotations

import json
import shutil

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
