"""The augmentation chain end to end on the bundled sample with tiny budgets: train-speaker -> augment paths ->
speak -> train-discriminator -> score (histogram, human vs speaker AUC) -> filter -> a valan train config that
mixes the filtered file in with a weight; and the commands' bad-input behaviour."""

from __future__ import annotations

import json

import pytest

from valan.cli import main
from valan.commands.filter import kept_indices
from valan.io import read_jsonl
from valan.problems import get_problem, load_train_config

SAMPLE_SCANS = ["759xd9YjKW5", "JF19kD82Mey", "i5noydFURQK", "jh4fc5c5qoQ", "r47D5H71a5s"]
SMALL = ["--set", "run.num_threads=1", "--set", "data.synthetic_dim=8"]
SPEAKER = ["--set", "run.total_steps=4", "--set", "run.eval_every_steps=2", "--set", "model.hidden_dim=16",
           "--set", "model.embed_dim=8", "--set", "learning.batch_size=16", *SMALL]
DISCRIMINATOR = ["--set", "run.total_steps=3", "--set", "run.eval_every_steps=3", "--set", "model.hidden_dim=16",
                 "--set", "model.embed_dim=8", "--set", "learning.batch_size=24", *SMALL]


@pytest.fixture(scope="module")
def speaker(tmp_path_factory):
    out = tmp_path_factory.mktemp("speaker")
    assert main(["train-speaker", "--out", str(out), *SPEAKER]) == 0
    evals = [x for x in read_jsonl(out / "metrics.jsonl") if x["split"] == "val_seen"]
    assert [x["step"] for x in evals] == [2, 4]
    assert all(0.0 <= x["bleu4"] <= 1.0 and x["perplexity"] > 1.0 for x in evals)
    return out / "checkpoints" / "ckpt-000000004.pt"


@pytest.fixture(scope="module")
def paths(tmp_path_factory, sample_connectivity):
    out = tmp_path_factory.mktemp("paths") / "paths.json"
    assert main(["augment", "paths", "--connectivity", str(sample_connectivity), "--scans", *SAMPLE_SCANS,
                 "--count", "40", "--seed", "0", "--output", str(out)]) == 0
    return out


def test_the_chain_produces_a_filtered_file_valan_train_accepts(speaker, paths, tmp_path, sample_val, sample_train,
                                                                capsys):
    augmented = tmp_path / "augmented.json"
    assert main(["speak", "--checkpoint", str(speaker), "--data", str(paths), "--output", str(augmented)]) == 0
    sampled, spoken = json.loads(paths.read_text()), json.loads(augmented.read_text())
    assert [r["path_id"] for r in spoken] == [r["path_id"] for r in sampled]
    for before, after in zip(sampled, spoken):
        assert after["source"] == "speaker" and len(after["instructions"]) == 1 and after["instructions"][0]
        assert {k: v for k, v in after.items() if k not in ("instructions", "source")} == \
            {k: v for k, v in before.items() if k != "instructions"}

    disc = tmp_path / "disc"
    assert main(["train-discriminator", "--out", str(disc), *DISCRIMINATOR]) == 0
    checkpoint = str(disc / "checkpoints" / "ckpt-000000003.pt")
    human_vs_speaker = tmp_path / "val_speaker.json"
    assert main(["speak", "--checkpoint", str(speaker), "--data", str(sample_val), "--output",
                 str(human_vs_speaker)]) == 0
    scores, png = tmp_path / "scores.jsonl", tmp_path / "scores.png"
    capsys.readouterr()
    assert main(["score", "--checkpoint", checkpoint, "--data", str(sample_val), str(human_vs_speaker),
                 "--output", str(scores), "--histogram", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "ROC-AUC human vs speaker" in printed
    lines = read_jsonl(scores)
    human = sum(len(r["instructions"]) for r in json.loads(sample_val.read_text()))
    assert [x["source"] for x in lines] == ["human"] * human + ["speaker"] * len(json.loads(sample_val.read_text()))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    filtered = tmp_path / "aug_top20.json"
    assert main(["filter", "--checkpoint", checkpoint, "--data", str(augmented), "--keep-top", "0.2",
                 "--output", str(filtered)]) == 0
    kept = json.loads(filtered.read_text())
    assert sum(len(r["instructions"]) for r in kept) == 8 and all(r["source"] == "speaker" for r in kept)
    control = tmp_path / "aug_random20.json"  # the same number of pairs, drawn at random
    assert main(["filter", "--checkpoint", checkpoint, "--data", str(augmented), "--keep-random", "0.2",
                 "--seed", "1", "--output", str(control)]) == 0
    assert sum(len(r["instructions"]) for r in json.loads(control.read_text())) == 8

    config = load_train_config(None, [f"data.train=[{sample_train}, {{file: {filtered}, weight: 0.5}}]"])
    problem = get_problem("r2r")
    problem.check_inputs(config)  # what valan train checks before Ray starts
    mix = problem.training_mix(config)
    assert [m["episodes"] for m in mix] == [1062, 8] and mix[1]["weight"] == 0.5
    env = problem.make_env(config, "train", num_envs=4, seed=0, evaluation=False)
    assert len(env.world.episode_ids) == 1070


def test_speak_sampling_is_seeded_and_beam_search_runs(speaker, paths, tmp_path):
    def spoken(*options: str) -> list[str]:
        out = tmp_path / f"spoken{len(list(tmp_path.iterdir()))}.json"
        assert main(["speak", "--checkpoint", str(speaker), "--data", str(paths), "--output", str(out), *options]) == 0
        return [r["instructions"][0] for r in json.loads(out.read_text())]

    assert spoken("--sample", "--seed", "3") == spoken("--sample", "--seed", "3")
    assert spoken("--sample", "--seed", "3") != spoken("--sample", "--seed", "4")
    assert all(spoken("--beam", "3"))


def test_bad_input_is_one_line_and_writes_nothing(speaker, paths, tmp_path, capsys):
    records = json.loads(paths.read_text())
    records[2]["path"] = [records[2]["path"][0], records[2]["path"][-1]]  # not adjacent
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    out = tmp_path / "out.json"
    assert main(["speak", "--checkpoint", str(speaker), "--data", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"path_id {records[2]['path_id']}" in err and "not adjacent" in err
    assert not out.exists()
    assert main(["speak", "--checkpoint", str(paths), "--data", str(paths), "--output", str(out)]) == 2
    assert main(["score", "--checkpoint", str(speaker), "--pairs", str(paths), "--output", str(out),
                 "--histogram", str(tmp_path / "h.png")]) == 2
    assert "--histogram needs --data" in capsys.readouterr().err and not out.exists()


def test_random_control_keeps_a_seeded_share_whatever_the_scores():
    scores = list(range(100))
    first = kept_indices(scores, keep_random=0.2, seed=1)
    assert len(first) == 20 and first == sorted(set(first)) and first == kept_indices(scores[::-1], keep_random=0.2,
                                                                                        seed=1)
    assert first != kept_indices(scores, keep_random=0.2, seed=2)
