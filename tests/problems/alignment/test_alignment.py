"""Alignment pretraining (CMA, NVS) and the follower warm start."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from valan.agents.alignment import AlignmentModel, load_alignment_into, nvs_loss
from valan.agents.r2r_follower import R2RFollower
from valan.cli import main
from valan.checkpoint import load_checkpoint
from valan.problems.discriminator.pairs import arrival_views, collate_candidates, next_step_candidates
from valan.errors import InputError
from valan.features.stores import SyntheticFeatures
from valan.io import read_jsonl
from valan.problems import get_problem
from valan.text import Vocabulary

from helpers.graphs import square_graph


def test_next_step_candidates_and_arrival_views():
    graph = square_graph()
    store = SyntheticFeatures(dim=4)
    path = ["a", "b", "c"]
    cands = next_step_candidates(graph, store, path, heading=math.pi)  # facing -y at the start
    assert len(cands.features) == 2
    neighbours_a = [graph.viewpoints[i] for i in graph.neighbors[graph.local_index("a")]]
    assert neighbours_a[cands.target[0]] == "b"
    b = neighbours_a.index("b")
    np.testing.assert_allclose(cands.geometry[0][b], [0, -1, 0, 1, 2], atol=1e-6)  # b is straight behind, 2 m
    np.testing.assert_array_equal(cands.features[0][b], store.get("toy", "a")[12])  # the view facing +y at a
    neighbours_b = [graph.viewpoints[i] for i in graph.neighbors[graph.local_index("b")]]
    c = neighbours_b.index("c")
    assert cands.target[1] == c
    np.testing.assert_allclose(cands.geometry[1][c][:2], [1, 0], atol=1e-6)  # arrived facing +y: c is to the right
    # The alignment model sees, at each viewpoint, the view facing the way it arrived - never the next move's.
    assert arrival_views(graph, path, math.pi) == [12 + 6, 12, 15]
    batch = collate_candidates([cands, next_step_candidates(graph, store, ["d", "a"], 0.0)])
    assert batch["candidate_features"].shape == (2, 2, 4, 4)
    assert batch["move_mask"].tolist() == [[True, True], [True, False]]


def test_nvs_loss_ignores_padded_moves():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 9.0]]])
    target = torch.tensor([[0, 0]])
    loss = nvs_loss(logits, target, torch.tensor([[True, False]]))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2.0)))


VOCAB = Vocabulary.load(__import__("valan.data", fromlist=["sample_path"]).sample_path("train_vocab.txt"))


def follower(feature_dim=64, hidden_dim=128):
    return R2RFollower(len(VOCAB), None, feature_dim=feature_dim, embed_dim=64, hidden_dim=hidden_dim)


def alignment_checkpoint(model):
    return {"model": model.state_dict(), "problem": "alignment", "vocab": VOCAB.tokens, "step": 1}


def test_warm_start_copies_the_encoders_bit_for_bit_and_nothing_else(capsys):
    torch.manual_seed(0)
    source = AlignmentModel(len(VOCAB), 64)
    agent = follower()
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    report = load_alignment_into(agent, alignment_checkpoint(source), source="align.pt", vocab=VOCAB.tokens)
    after = agent.state_dict()
    expected = sorted(k for k in source.state_dict() if k.startswith(("instruction_encoder.", "visual_encoder.")))
    assert report.loaded == expected and len(expected) >= 8
    for name in expected:
        assert torch.equal(after[name], source.state_dict()[name]) and not torch.equal(after[name], before[name])
    for name in report.new:
        assert torch.equal(after[name], before[name])
    assert set(report.new) | set(report.loaded) == set(after)
    printed = capsys.readouterr().out
    assert f"{len(expected)} tensors loaded" in printed and "new:    core.0.weight_ih" in printed
    # Through the R2R problem (what `valan train --init-from` calls).
    fresh = follower()
    get_problem("r2r").init_from(fresh, alignment_checkpoint(source), source="align.pt")
    assert torch.equal(fresh.state_dict()["instruction_encoder.embedding.weight"],
                       source.state_dict()["instruction_encoder.embedding.weight"])


def test_warm_start_refuses_mismatches_without_copying():
    torch.manual_seed(0)
    agent = follower(hidden_dim=64)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    with pytest.raises(InputError, match=r"align.pt: shape mismatch for instruction_encoder\.\S+: checkpoint"):
        load_alignment_into(agent, alignment_checkpoint(AlignmentModel(len(VOCAB), 64)), source="align.pt")
    assert all(torch.equal(v, before[k]) for k, v in agent.state_dict().items())
    with pytest.raises(InputError, match="shape mismatch for visual_encoder.projection.weight"):
        load_alignment_into(follower(feature_dim=32), alignment_checkpoint(AlignmentModel(len(VOCAB), 64)))
    with pytest.raises(InputError, match="vocabulary differs"):
        load_alignment_into(follower(), alignment_checkpoint(AlignmentModel(len(VOCAB), 64)),
                            vocab=VOCAB.tokens[:-1] + ["zzz"])
    with pytest.raises(InputError, match="not a pretrain-alignment checkpoint"):
        load_alignment_into(follower(), {"model": {}, "problem": "r2r"})


@pytest.mark.slow
def test_pretrain_alignment_cli_learns_nvs_and_warm_starts(tmp_path, capsys):
    out = tmp_path / "align"
    small = ["model.embed_dim=64", "model.hidden_dim=32", "data.synthetic_dim=16", "learning.batch_size=72",
             "learning.lr=3e-3", "run.total_steps=60", "run.eval_every_steps=60", "run.num_threads=1"]
    assert main(["pretrain-alignment", "--tasks", "cma,nvs", "--out", str(out),
                 *[arg for item in small for arg in ("--set", item)]]) == 0
    result = [x for x in read_jsonl(out / "metrics.jsonl") if x["split"] == "val_seen"][-1]
    # Picking the true next viewpoint from instruction + path so far beats chance clearly (geometry and language).
    assert result["nvs/accuracy"] > result["nvs/chance"] + 0.15
    assert result["cma_auc/all"] > 0.6
    state = load_checkpoint(out / "checkpoints" / "ckpt-000000060.pt")
    agent = follower(feature_dim=16, hidden_dim=32)
    report = load_alignment_into(agent, state, vocab=VOCAB.tokens, verbose=False)
    assert torch.equal(agent.state_dict()["visual_encoder.projection.weight"],
                       state["model"]["visual_encoder.projection.weight"]) and report.loaded
    capsys.readouterr()
    assert main(["pretrain-alignment", "--tasks", "cma,speaker", "--out", str(out)]) == 2
    assert "--tasks: unknown task 'speaker'" in capsys.readouterr().err
