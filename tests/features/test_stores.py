"""Feature stores: synthetic determinism, the community TSV format, the memory-mapped cache and its converter."""

from __future__ import annotations

import base64
import csv
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from valan.cli import main
from valan.errors import InputError
from valan.features.stores import (CachedFeatures, SyntheticFeatures, TsvFeatures, convert_tsv, open_feature_store,
                            r2r_view_index)


def tsv_line(scan: str, viewpoint: str, features: np.ndarray, image_w="640", image_h="480", vfov="60") -> str:
    """One row of the community format, written independently of the reader."""
    encoded = base64.b64encode(np.ascontiguousarray(features, dtype="<f4").tobytes()).decode("ascii")
    return "\t".join([scan, viewpoint, image_w, image_h, vfov, encoded]) + "\n"


def make_rows(count: int, views: int = 36, dim: int = 16, seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = {}
    for i in range(count):
        features = (rng.standard_normal((views, dim)) * 10.0 ** rng.integers(-30, 30)).astype(np.float32)
        rows[(f"scan{i % 3}", f"vp{i:04d}")] = features
    first = next(iter(rows.values()))
    first[:4, 0] = [np.float32(-0.0), np.float32(1e-45), np.finfo(np.float32).max, np.finfo(np.float32).tiny]
    return rows


def write_tsv(path: Path, rows: dict[tuple[str, str], np.ndarray], header: bool = False) -> Path:
    with path.open("w") as f:
        if header:
            f.write("scanId\tviewpointId\timage_w\timage_h\tvfov\tfeatures\n")
        for (scan, viewpoint), features in rows.items():
            f.write(tsv_line(scan, viewpoint, features))
    return path


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------------------------------- synthetic

def test_synthetic_features_are_deterministic_per_id_and_seed():
    a, b = SyntheticFeatures(dim=8), SyntheticFeatures(dim=8)
    x = a.get("scan", "vp1")
    assert x.shape == (36, 8) and x.dtype == np.float32
    assert same_bits(x, b.get("scan", "vp1"))
    assert not np.array_equal(x, a.get("scan", "vp2"))
    assert not np.array_equal(x, a.get("scan2", "vp1"))
    assert not np.array_equal(x, SyntheticFeatures(dim=8, seed=1).get("scan", "vp1"))
    table = a.table([("scan", "vp2"), ("scan", "vp1")])
    assert same_bits(table[1], x)


def test_r2r_view_index_is_elevation_major():
    assert r2r_view_index(0, 0) == 0 and r2r_view_index(1, 0) == 12 and r2r_view_index(2, 11) == 35


# ---------------------------------------------------------------------------------------------------- TSV

def test_tsv_reader_streams_rows_and_random_access(tmp_path):
    rows = make_rows(7, dim=5)
    store = TsvFeatures(write_tsv(tmp_path / "f.tsv", rows))
    assert (store.views, store.dim, store.count()) == (36, 5, 7)
    assert store.keys() == list(rows)
    for (group, node, features), (key, expected) in zip(store.rows(), rows.items()):
        assert (group, node) == key and same_bits(features, expected)
    assert same_bits(store.get("scan1", "vp0004"), rows[("scan1", "vp0004")])
    keys = [("scan2", "vp0005"), ("scan0", "vp0000"), ("scan2", "vp0005")]
    assert same_bits(store.table(keys), np.stack([rows[k] for k in keys]))
    loaded = store.load()
    assert list(loaded) == list(rows) and all(same_bits(loaded[k], rows[k]) for k in rows)


def test_tsv_header_line_and_python3_bytes_repr_are_accepted(tmp_path):
    rows = make_rows(2, dim=3)
    path = write_tsv(tmp_path / "h.tsv", rows, header=True)
    assert TsvFeatures(path).keys() == list(rows)
    (scan, viewpoint), features = next(iter(rows.items()))
    encoded = base64.b64encode(features.tobytes()).decode()
    (tmp_path / "b.tsv").write_text(f"{scan}\t{viewpoint}\t640\t480\t60\tb'{encoded}'\n")
    assert same_bits(TsvFeatures(tmp_path / "b.tsv").get(scan, viewpoint), features)
    with (tmp_path / "q.tsv").open("w", newline="") as f:  # every field quoted, as csv.QUOTE_ALL writes it
        csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL).writerow([scan, 'view "7"', 640, 480, 60, encoded])
    assert same_bits(TsvFeatures(tmp_path / "q.tsv").get(scan, 'view "7"'), features)


def test_tsv_missing_node_names_group_node_and_file(tmp_path):
    store = TsvFeatures(write_tsv(tmp_path / "f.tsv", make_rows(2, dim=3)))
    with pytest.raises(InputError, match=r"f\.tsv.*'nowhere'.*'scan0'"):
        store.get("scan0", "nowhere")
    with pytest.raises(InputError, match=r"'nowhere'"):
        store.table([("scan0", "vp0000"), ("scan0", "nowhere")])


GOOD = base64.b64encode(np.zeros((36, 4), np.float32).tobytes()).decode()


@pytest.mark.parametrize("bad_line, expected", [
    ("s\tv\t640\t480\t60\n", r"line 2: expected 6 tab-separated fields.*found 5"),
    (f"s\tv\t640\t480\t60\t{GOOD}\textra\n", r"line 2: expected 6 .*found 7"),
    ("s\tv\t640\t480\t60\tnot*base64!\n", r"line 2 field features: bad base64"),
    (f"s\tv\t640\t480\t60\t{base64.b64encode(bytes(36 * 4 * 4 + 2)).decode()}\n", r"line 2 field features: .*whole number of float32"),
    (f"s\tv\t640\t480\t60\t{base64.b64encode(bytes(35 * 4)).decode()}\n", r"line 2 field features: 35 float32 values are not divisible into 36 views"),
    (f"s\tv\t640\t480\t60\t{base64.b64encode(bytes(36 * 5 * 4)).decode()}\n", r"line 2 field features: .*36 x 5, but earlier rows have 36 x 4"),
    (f"s\tv\twide\t480\t60\t{GOOD}\n", r"line 2 field image_w: not a number: 'wide'"),
    (f"s\tv\t640\t480\tsixty\t{GOOD}\n", r"line 2 field vfov: not a number"),
])
def test_malformed_tsv_lines_name_file_line_and_field(tmp_path, bad_line, expected):
    path = tmp_path / "bad.tsv"
    path.write_text(f"s\tfirst\t640\t480\t60\t{GOOD}\n" + bad_line + f"s\tlast\t640\t480\t60\t{GOOD}\n")
    with pytest.raises(InputError, match=r"bad\.tsv: " + expected):
        convert_tsv(path, tmp_path / "store", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]  # nothing half-written is left behind


def test_empty_or_missing_tsv_is_an_input_error(tmp_path):
    (tmp_path / "empty.tsv").write_text("\n")
    with pytest.raises(InputError, match="no feature rows"):
        TsvFeatures(tmp_path / "empty.tsv")
    with pytest.raises(InputError, match="not found"):
        TsvFeatures(tmp_path / "absent.tsv")


def test_duplicate_node_in_tsv_is_refused_by_convert(tmp_path):
    rows = make_rows(2, dim=3)
    path = tmp_path / "dup.tsv"
    path.write_text("".join(tsv_line("s", "v", f) for f in rows.values()))
    with pytest.raises(InputError, match="duplicate features for node 'v' of group 's'"):
        convert_tsv(path, tmp_path / "store", progress=False)


# ---------------------------------------------------------------------------------------------------- cache

@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_convert_round_trip_is_exact(tmp_path, dtype):
    rows = make_rows(11, dim=6)
    if dtype == "float16":
        rows = {k: np.clip(v, -6e4, 6e4) for k, v in rows.items()}
    tsv = write_tsv(tmp_path / "f.tsv", rows)
    summary = convert_tsv(tsv, tmp_path / "store", dtype=dtype, progress=False)
    assert summary == {"rows": 11, "views": 36, "dim": 6, "dtype": dtype, "bytes": 11 * 36 * 6 * np.dtype(dtype).itemsize}
    store = CachedFeatures(tmp_path / "store")
    assert (len(store), store.views, store.dim) == (11, 36, 6)
    assert store.keys() == list(rows)
    assert store.metadata["source"] == str(tsv.resolve()) and store.metadata["dtype"] == dtype
    expected = {k: v.astype(dtype).astype(np.float32) for k, v in rows.items()}
    for key in rows:
        assert same_bits(store.get(*key), expected[key])
    keys = list(reversed(list(rows)))[:5] + [("scan1", "vp0001")]
    assert same_bits(store.table(keys), np.stack([expected[k] for k in keys]))
    with pytest.raises(InputError, match=r"store: no features for node 'x' of group 'scan0'"):
        store.table([("scan0", "x")])


def test_store_files_are_readable_npy_and_json(tmp_path):
    rows = make_rows(3, dim=2)
    convert_tsv(write_tsv(tmp_path / "f.tsv", rows), tmp_path / "store", progress=False)
    array = np.load(tmp_path / "store" / "features.npy")
    index = json.loads((tmp_path / "store" / "index.json").read_text())
    assert array.shape == (3, 36, 2) and [tuple(k) for k in index["keys"]] == list(rows)
    assert (index["views"], index["dim"], index["dtype"]) == (36, 2, "float32")


def test_overwrite_rules(tmp_path):
    first, second = write_tsv(tmp_path / "a.tsv", make_rows(2, dim=2)), write_tsv(tmp_path / "b.tsv", make_rows(3, dim=2, seed=1))
    convert_tsv(first, tmp_path / "store", progress=False)
    with pytest.raises(InputError, match="already exists"):
        convert_tsv(second, tmp_path / "store", progress=False)
    convert_tsv(second, tmp_path / "store", overwrite=True, progress=False)
    assert len(CachedFeatures(tmp_path / "store")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tsv", "b.tsv", "store"]
    (tmp_path / "precious").mkdir()
    with pytest.raises(InputError, match="not a feature store"):
        convert_tsv(second, tmp_path / "precious", overwrite=True, progress=False)


def test_corrupt_store_is_an_input_error(tmp_path):
    convert_tsv(write_tsv(tmp_path / "f.tsv", make_rows(3, dim=2)), tmp_path / "store", progress=False)
    index_path = tmp_path / "store" / "index.json"
    index = json.loads(index_path.read_text())
    index["keys"] = index["keys"][:2]
    index_path.write_text(json.dumps(index))
    with pytest.raises(InputError, match=r"array shape \(3, 36, 2\) does not match the index \(2, 36, 2\)"):
        CachedFeatures(tmp_path / "store")
    index_path.write_text("{")
    with pytest.raises(InputError, match="malformed JSON"):
        CachedFeatures(tmp_path / "store")


def test_open_feature_store_dispatch(tmp_path):
    assert isinstance(open_feature_store(None, dim=5), SyntheticFeatures)
    synthetic = open_feature_store("synthetic", views=8, dim=5)
    assert (synthetic.views, synthetic.dim) == (8, 5)
    tsv = write_tsv(tmp_path / "f.tsv", make_rows(2, views=4, dim=3))
    assert isinstance(open_feature_store(str(tsv), views=4), TsvFeatures)
    convert_tsv(tsv, tmp_path / "store", views=4, progress=False)
    cached = open_feature_store(tmp_path / "store")  # a store keeps its own views and dim
    assert isinstance(cached, CachedFeatures) and (cached.views, cached.dim) == (4, 3)
    (tmp_path / "plain").mkdir()
    (tmp_path / "f.bin").write_bytes(b"x")
    for spec, message in [(tmp_path / "absent", "not found"), (tmp_path / "plain", "not a feature store"),
                          (tmp_path / "f.bin", "unknown feature store")]:
        with pytest.raises(InputError, match=message):
            open_feature_store(str(spec))


def _traced_peak(function) -> int:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_convert_memory_does_not_grow_with_the_array(tmp_path):
    """Python allocations while converting stay at a few rows whatever the file size (the array is memory-mapped);
    loading the TSV into a dict, the control, costs the whole array."""
    small = write_tsv(tmp_path / "small.tsv", make_rows(60, dim=256))
    large = write_tsv(tmp_path / "large.tsv", make_rows(600, dim=256))
    large_array_bytes = 600 * 36 * 256 * 4  # 22 MB
    convert_tsv(small, tmp_path / "warm-up", progress=False)  # first-call allocations (imports, caches) out of the way
    small_peak = _traced_peak(lambda: convert_tsv(small, tmp_path / "s1", progress=False))
    large_peak = _traced_peak(lambda: convert_tsv(large, tmp_path / "s2", progress=False))
    load_peak = _traced_peak(lambda: TsvFeatures(large).load())
    assert load_peak > large_array_bytes  # the measurement sees a whole-file load ...
    assert large_peak < large_array_bytes / 10  # ... the converter does not hold the rows ...
    assert large_peak < small_peak + 540 * 400  # ... and grows only by the index (<400 bytes a key), not 37 KB a row
    assert np.array_equal(CachedFeatures(tmp_path / "s2").table([("scan2", "vp0599")])[0],
                          TsvFeatures(large).get("scan2", "vp0599"))


# ---------------------------------------------------------------------------------------------------- CLI

def test_cli_convert_prints_summary_and_bad_input_exits_2(tmp_path, capsys):
    tsv = write_tsv(tmp_path / "f.tsv", make_rows(4, dim=3))
    assert main(["features", "convert", "--tsv", str(tsv), "--out", str(tmp_path / "store"), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["rows"], summary["dim"], summary["views"]) == (4, 3, 36)
    (tmp_path / "bad.tsv").write_text("s\tv\t640\t480\t60\t@@@\n")
    assert main(["features", "convert", "--tsv", str(tmp_path / "bad.tsv"), "--out", str(tmp_path / "s2")]) == 2
    err = capsys.readouterr().err
    assert "bad.tsv: line 1 field features: bad base64" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["features", "convert", "--tsv", str(tsv), "--out", str(tmp_path / "s3"), "--views", "5"]) == 2
    assert "not divisible into 5 views" in capsys.readouterr().err
