"""Where relative data paths resolve: ``--set`` against the working directory, config files against ``data.root``;
a missing one stops ``valan train`` with one line before Ray starts or anything is written."""

from __future__ import annotations

import pytest

from valan.cli import main
from valan.problems import load_train_config


def test_set_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_train_config(None, ["data.features=features/tiny", "data.eval.test=splits/test.json",
                                      "data.train=[a.json, /abs/b.json]", "data.connectivity=graphs"])
    d = config.data
    assert d.resolve(d.features) == tmp_path / "features" / "tiny"
    assert d.split_files("test") == [str(tmp_path / "splits" / "test.json")]
    assert d.split_files("train") == [str(tmp_path / "a.json"), "/abs/b.json"]
    assert d.resolve(d.connectivity) == tmp_path / "graphs"
    # untouched fields and sentinels keep their meaning: bundled vocabulary, synthetic features
    assert d.resolve(d.vocab).name == "train_vocab.txt" and d.resolve(d.vocab).parent != tmp_path
    assert load_train_config(None, ["data.features=synthetic"]).data.features == "synthetic"
    touchdown = load_train_config(None, ["problem=touchdown", "data.graph=g"])
    assert touchdown.data.resolve(touchdown.data.graph) == tmp_path / "g"


def test_config_file_paths_resolve_against_the_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    path = tmp_path / "run.yaml"
    path.write_text(f"problem: r2r\ndata:\n  root: {root}\n  features: features/tiny\n")
    d = load_train_config(path).data
    assert d.resolve(d.features) == root / "features" / "tiny"


@pytest.mark.parametrize("override, named", [("data.features=features/tiny", "features/tiny"),
                                             ("data.eval.test=missing.json", "missing.json")])
def test_a_missing_path_stops_train_before_ray(tmp_path, monkeypatch, capsys, override, named):
    import ray

    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--set", override, "--out", "run"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert str(tmp_path / named) in err
    assert not (tmp_path / "run").exists() and not ray.is_initialized()
