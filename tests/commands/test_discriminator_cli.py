"""valan train-discriminator / score / filter end to end on the bundled sample, and their bad-input behaviour."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from valan.cli import main
from valan.commands.filter import kept_indices
from valan.io import read_jsonl

TINY = ["--set", "run.total_steps=6", "--set", "run.eval_every_steps=3", "--set", "model.hidden_dim=16",
        "--set", "model.embed_dim=8", "--set", "learning.batch_size=24", "--set", "run.num_threads=1",
        "--set", "data.synthetic_dim=8"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("disc")
    assert main(["train-discriminator", "--out", str(out), *TINY]) == 0
    lines = read_jsonl(out / "metrics.jsonl")
    evals = [x for x in lines if x["split"] == "val_seen"]
    assert [x["step"] for x in evals] == [3, 6]
    assert {"auc/all", "auc/path_substitution", "auc/random_walk", "auc/partial_reorder", "auc/reversal",
            "auc/instruction_swap"} <= set(evals[-1])
    assert (out / "config.yaml").is_file() and any((out / "tensorboard").iterdir())
    return out / "checkpoints" / "ckpt-000000006.pt"


def test_score_writes_one_line_per_instruction(checkpoint, tmp_path, sample_val):
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--checkpoint", str(checkpoint), "--data", str(sample_val), "--output", str(out)]) == 0
    records = json.loads(sample_val.read_text())
    lines = read_jsonl(out)
    assert [x["instr_id"] for x in lines] == [f"{r['path_id']}_{i}" for r in records for i in range(len(r["instructions"]))]
    assert all(isinstance(x["score"], float) for x in lines)
    # The --pairs form gives the same scores for the same pairs.
    pairs = [{"instr_id": f"{r['path_id']}_{i}", "scan": r["scan"], "path": r["path"], "heading": r["heading"],
              "instruction": s} for r in records for i, s in enumerate(r["instructions"])][:10]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    out2 = tmp_path / "pairs_scores.jsonl"
    assert main(["score", "--checkpoint", str(checkpoint), "--pairs", str(tmp_path / "pairs.json"),
                 "--output", str(out2)]) == 0
    np.testing.assert_allclose([x["score"] for x in read_jsonl(out2)], [x["score"] for x in lines[:10]], rtol=1e-5)


def test_filter_keeps_exactly_the_top_fraction(checkpoint, tmp_path, sample_val):
    scores_file = tmp_path / "scores.jsonl"
    main(["score", "--checkpoint", str(checkpoint), "--data", str(sample_val), "--output", str(scores_file)])
    scores = {x["instr_id"]: x["score"] for x in read_jsonl(scores_file)}
    out = tmp_path / "filtered.json"
    assert main(["filter", "--checkpoint", str(checkpoint), "--data", str(sample_val), "--keep-top", "0.2",
                 "--output", str(out)]) == 0
    original = {r["path_id"]: r for r in json.loads(sample_val.read_text())}
    kept = []
    for record in json.loads(out.read_text()):
        source = original[record["path_id"]]
        assert {k: v for k, v in record.items() if k not in ("instructions", "score")} == \
               {k: v for k, v in source.items() if k != "instructions"}
        assert len(record["score"]) == len(record["instructions"])
        for text, score in zip(record["instructions"], record["score"]):
            i = source["instructions"].index(text)
            assert score == pytest.approx(scores[f"{record['path_id']}_{i}"], rel=1e-5)
            kept.append(score)
    assert len(kept) == round(0.2 * len(scores))
    assert min(kept) >= sorted(scores.values(), reverse=True)[len(kept) - 1] - 1e-6  # the best ones
    threshold = float(np.median(list(scores.values())))
    assert main(["filter", "--checkpoint", str(checkpoint), "--data", str(sample_val), "--threshold",
                 str(threshold), "--output", str(out)]) == 0
    assert sum(len(r["score"]) for r in json.loads(out.read_text())) == sum(s >= threshold for s in scores.values())


def test_kept_indices_exact_fraction_with_ties():
    scores = [0.5, 0.9, 0.5, 0.1, 0.5, 0.7, 0.2, 0.5, 0.3, 0.0]
    assert kept_indices(scores, keep_top=0.3) == [0, 1, 5]  # ties broken in file order
    assert kept_indices(scores, keep_top=0.25) == [0, 1, 5]  # round(2.5) -> 3
    assert kept_indices(scores, keep_top=1.0) == list(range(10))
    assert kept_indices(scores, threshold=0.5) == [0, 1, 2, 4, 5, 7]


def corrupt(sample_val, tmp_path, change):
    records = json.loads(sample_val.read_text())
    change(records)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    return path, records


def _not_adjacent(records):
    records[3]["path"] = [records[3]["path"][0], records[3]["path"][-1]]


@pytest.mark.parametrize("change, message", [
    (lambda r: r[2].update(scan="NoSuchScan"), "unknown scan 'NoSuchScan'"),
    (lambda r: r[4]["path"].__setitem__(1, "feedface"), "unknown viewpoint 'feedface'"),
    (_not_adjacent, "not adjacent"),
    (lambda r: r[5]["instructions"].__setitem__(1, "  "), "empty instruction"),
])
@pytest.mark.parametrize("command", ["score", "filter"])
def test_bad_input_exits_2_naming_the_record_and_writes_nothing(checkpoint, tmp_path, sample_val, capsys, change,
                                                                message, command):
    path, records = corrupt(sample_val, tmp_path, change)
    out = tmp_path / "out.json"
    extra = ["--keep-top", "0.5"] if command == "filter" else []
    assert main([command, "--checkpoint", str(checkpoint), "--data", str(path), "--output", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    bad = next(i for i, (a, b) in enumerate(zip(records, json.loads(sample_val.read_text()))) if a != b)
    assert f"instr_id {records[bad]['path_id']}_" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))


def test_bad_pairs_record_and_options(checkpoint, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"scan": "i5noydFURQK", "path": ["x"], "instruction": "go"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", "--checkpoint", str(checkpoint), "--pairs", str(pairs), "--output", str(out)]) == 2
    assert "record 0" in capsys.readouterr().err and not out.exists()
    assert main(["filter", "--checkpoint", str(checkpoint), "--data", str(pairs), "--keep-top", "1.5",
                 "--output", str(out)]) == 2
    assert "--keep-top" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "x.pt"
    shutil.copy(pairs, not_a_checkpoint)
    assert main(["score", "--checkpoint", str(not_a_checkpoint), "--pairs", str(pairs), "--output", str(out)]) == 2


@pytest.mark.parametrize("name", ["discriminator.yaml", "discriminator_r2r.yaml", "alignment.yaml"])
def test_shipped_configs_load(name):
    from valan.problems.alignment.config import AlignmentConfig
    from valan.config import load_config
    from valan.configs import config_path
    from valan.problems.discriminator.config import DiscriminatorConfig

    schema = AlignmentConfig if name.startswith("alignment") else DiscriminatorConfig
    config = load_config(config_path(name), schema=schema)
    assert config.problem == name.split(".")[0].split("_")[0]
