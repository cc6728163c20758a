"""The by-scan unseen split (``valan.envs.r2r.split``) and ``valan data split r2r``."""

from __future__ import annotations

import json

import pytest

from valan.cli import main
from valan.envs.r2r.split import instruction_count, split_by_scan


def records(scans: int = 10, paths_per_scan: int = 4) -> list[dict]:
    """Path records over ``scans`` scans; scan k has k + 1 paths (so scans differ in size) of 3 instructions."""
    return [{"scan": f"scan{k}", "path_id": 100 * k + p, "path": ["a", "b"], "heading": 0.0,
             "instructions": ["go", "walk", "move"]}
            for k in range(scans) for p in range(min(k + 1, paths_per_scan))]


def test_no_scan_is_in_both_parts_and_every_record_is_kept_in_order():
    data = records()
    split = split_by_scan(data, holdout_scans=3, seed=1)
    train_scans, held_scans = {r["scan"] for r in split.train}, {r["scan"] for r in split.held_out}
    assert not train_scans & held_scans and held_scans == set(split.held_out_scans) and len(held_scans) == 3
    assert sorted(split.train + split.held_out, key=data.index) == data
    assert split.train == [r for r in data if r["scan"] in train_scans]  # file order kept


def test_the_split_depends_only_on_the_scans_and_the_seed():
    data = records()
    assert split_by_scan(data, seed=3).held_out_scans == split_by_scan(list(reversed(data)), seed=3).held_out_scans
    assert split_by_scan(data, seed=3) == split_by_scan(data, seed=3)
    assert len({split_by_scan(data, holdout_scans=2, seed=s).held_out_scans for s in range(6)}) > 1


def test_default_holds_out_just_enough_scans_for_the_fraction():
    data = records()
    split = split_by_scan(data, fraction=0.25, seed=0)
    total, held = instruction_count(data), instruction_count(split.held_out)
    assert held >= 0.25 * total
    # one scan fewer (the last one taken) would be below the fraction
    smallest_last = min(instruction_count([r for r in split.held_out if r["scan"] == s]) for s in split.held_out_scans)
    assert held - smallest_last < 0.25 * total or len(split.held_out_scans) == 1


@pytest.mark.parametrize("count", [0, 10])
def test_holding_out_no_scan_or_every_scan_is_refused(count):
    with pytest.raises(ValueError, match=f"cannot hold out {count} of 10 scans"):
        split_by_scan(records(), holdout_scans=count)


def test_restricting_a_seen_split_drops_held_out_scans():
    data = records()
    split = split_by_scan(data, holdout_scans=2, seed=0)
    kept = split.restrict_to_train_scans(data)
    assert kept == split.train


def test_cli_writes_the_parts_and_a_manifest(tmp_path, sample_train, sample_val, capsys):
    out = tmp_path / "split"
    assert main(["data", "split", "r2r", "--data", str(sample_train), "--seen-eval", str(sample_val),
                 "--holdout-scans", "2", "--seed", "4", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    train, held = json.loads((out / "train.json").read_text()), json.loads((out / "dev_unseen.json").read_text())
    seen = json.loads((out / "val_seen.json").read_text())
    assert manifest["seed"] == 4 and len(manifest["held_out_scans"]) == 2
    assert {r["scan"] for r in held} == set(manifest["held_out_scans"])
    assert not {r["scan"] for r in train + seen} & set(manifest["held_out_scans"])
    assert manifest["parts"]["train"]["instructions"] == instruction_count(train)
    assert manifest["parts"]["dev_unseen"]["paths"] == len(held)
    assert len(train) + len(held) == len(json.loads(sample_train.read_text()))
    assert "held out:" in capsys.readouterr().out
    # deterministic: the same command writes the same files
    again = tmp_path / "again"
    main(["data", "split", "r2r", "--data", str(sample_train), "--holdout-scans", "2", "--seed", "4", "--out", str(again)])
    assert (again / "train.json").read_bytes() == (out / "train.json").read_bytes()


@pytest.mark.parametrize("bad, message", [
    (lambda r: r[3].pop("scan"), "missing field 'scan'"),
    (lambda r: r[3].update(instructions="go"), "field 'instructions' must be a list of strings"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, sample_train, capsys, bad, message):
    data = json.loads(sample_train.read_text())
    bad(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert main(["data", "split", "r2r", "--data", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(path) in err[0] and f"path_id {data[3].get('path_id')}" in err[0]
    assert not out.exists()


def test_too_many_held_out_scans_is_one_line_exit_2(tmp_path, sample_train, capsys):
    assert main(["data", "split", "r2r", "--data", str(sample_train), "--holdout-scans", "99",
                 "--out", str(tmp_path / "out")]) == 2
    assert "cannot hold out 99 of" in capsys.readouterr().err and not (tmp_path / "out").exists()
