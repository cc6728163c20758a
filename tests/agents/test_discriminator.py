"""Discriminator models: the alignment equations, padding, geometry, and learning a task where the instruction
names the path's turns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from valan.agents.discriminator import (StepwiseDiscriminator, TwoTowerDiscriminator, in_batch_softmax_loss,
                                        stepwise_alignment, token_alignment)
from valan.problems.discriminator.pairs import PairEncoder, collate, path_geometry, travel_views, view_facing
from valan.envs.r2r.graph import Connectivity
from valan.features.stores import SyntheticFeatures
from valan.problems.discriminator.metrics import roc_auc
from valan.problems.discriminator.negatives import Pair, non_backtracking_walk
from valan.text import Vocabulary

from helpers.graphs import square_graph


def direct_alignment(steps, tokens, scale):
    """Huang et al. 2019 / VALAN's pooled alignment, written out with loops over one pair."""
    per_step = []
    for s in steps:
        a = [scale * float(s @ t / (np.linalg.norm(s) * np.linalg.norm(t))) for t in tokens]
        e = np.exp(a)
        c = e / e.sum()
        per_step.append(float((c * a).sum()))
    w = np.exp(-np.array(per_step))
    w /= w.sum()
    return float((w * per_step).sum())


def test_stepwise_alignment_matches_the_equations_and_ignores_padding():
    rng = np.random.default_rng(0)
    step_lengths, token_lengths = [3, 5], [7, 4]
    steps = torch.tensor(rng.standard_normal((2, 5, 8)), dtype=torch.float64)
    tokens = torch.tensor(rng.standard_normal((2, 7, 8)), dtype=torch.float64)
    step_mask = torch.arange(5)[None] < torch.tensor(step_lengths)[:, None]
    token_mask = torch.arange(7)[None] < torch.tensor(token_lengths)[:, None]
    got = stepwise_alignment(steps, step_mask, tokens, token_mask, 3.0).numpy()
    for b in range(2):
        want = direct_alignment(steps[b, :step_lengths[b]].numpy(), tokens[b, :token_lengths[b]].numpy(), 3.0)
        assert got[b] == pytest.approx(want, abs=1e-9)


def direct_token_alignment(steps, tokens, scale, token_logits):
    """The token-side pooling written out: each token attends over steps; tokens pooled by softmax weights."""
    per_token = []
    for t in tokens:
        a = np.array([scale * float(s @ t / (np.linalg.norm(s) * np.linalg.norm(t))) for s in steps])
        d = np.exp(a) / np.exp(a).sum()
        per_token.append(float((d * a).sum()))
    u = np.exp(token_logits) / np.exp(token_logits).sum()
    return float((u * np.array(per_token)).sum())


def test_token_alignment_matches_the_equations():
    rng = np.random.default_rng(1)
    steps = torch.tensor(rng.standard_normal((2, 4, 6)), dtype=torch.float64)
    tokens = torch.tensor(rng.standard_normal((2, 5, 6)), dtype=torch.float64)
    token_logits = torch.tensor(rng.standard_normal((2, 5)), dtype=torch.float64)
    step_lengths, token_lengths = [4, 2], [3, 5]
    step_mask = torch.arange(4)[None] < torch.tensor(step_lengths)[:, None]
    token_mask = torch.arange(5)[None] < torch.tensor(token_lengths)[:, None]
    got = token_alignment(steps, step_mask, tokens, token_mask, 2.0, token_logits).numpy()
    for b in range(2):
        want = direct_token_alignment(steps[b, :step_lengths[b]].numpy(), tokens[b, :token_lengths[b]].numpy(), 2.0,
                                      token_logits[b, :token_lengths[b]].numpy())
        assert got[b] == pytest.approx(want, abs=1e-9)


def test_path_geometry_and_travel_views():
    graph = square_graph()
    geometry = path_geometry(graph, ["a", "b", "c", "d", "e"], heading=0.0)
    np.testing.assert_allclose(geometry[0], [0, 1, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(geometry[1], [0, 1, 0, 1, 2], atol=1e-6)  # straight ahead (+y), 2 m
    np.testing.assert_allclose(geometry[2], [1, 0, 0, 1, 2], atol=1e-6)  # right turn (clockwise +pi/2)
    np.testing.assert_allclose(geometry[3], [1, 0, 0, 1, 2], atol=1e-6)  # right again: now heading -y
    s = math.sqrt(0.5)
    np.testing.assert_allclose(geometry[4], [0, 1, s, s, math.sqrt(2)], atol=1e-6)  # straight on, 45 degrees up
    # Facing +y, +x, -y, up the stairs (elevation +45 deg -> the +30 degree row), then the same on arrival.
    assert travel_views(graph, ["a", "b", "c", "d", "e"], 0.0) == [12, 15, 18, 24 + 6, 24 + 6]
    assert view_facing(-math.pi / 2, -0.1) == 12 + 9


def turn_word(turn: float) -> str:
    turn = math.atan2(math.sin(turn), math.cos(turn))
    return "right" if turn > math.pi / 4 else "left" if turn < -math.pi / 4 else "straight"


def turns_task(connectivity, n, seed):
    """Random walks in the sample scans; the instruction names each move's turn."""
    rng = np.random.default_rng(seed)
    scans = connectivity.scans()
    walks = []
    while len(walks) < n:
        graph = connectivity.graph(scans[rng.integers(len(scans))])
        start = graph.viewpoints[rng.integers(len(graph))]
        walk = non_backtracking_walk(graph, start, int(rng.integers(3, 6)), rng)
        heading = float(rng.uniform(-math.pi, math.pi))
        turns = path_geometry(graph, walk, heading)[1:, :2]
        words = [turn_word(math.atan2(s, c)) for s, c in turns]
        walks.append((graph.scan, walk, heading, "go " + " then ".join(words)))
    return walks


def turn_pairs(walks, rng):
    """Each walk with its own instruction (positive) and with another walk's instruction naming other turns."""
    pairs = []
    for i, (scan, walk, heading, text) in enumerate(walks):
        pairs.append(Pair(str(i), str(i), i, scan, walk, heading, text, 1, "positive"))
        while True:
            other = walks[rng.integers(len(walks))][3]
            if other != text:
                break
        pairs.append(Pair(f"{i}:swap", str(i), i, scan, walk, heading, other, 0, "instruction_swap"))
    return pairs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["stepwise", "two_tower"])
def test_discriminator_learns_which_turns_an_instruction_names(sample_connectivity, kind):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    connectivity = Connectivity(sample_connectivity)
    vocab = Vocabulary(["<PAD>", "<UNK>", "<EOS>", "go", "then", "left", "right", "straight"])
    encoder = PairEncoder(connectivity, vocab, SyntheticFeatures(dim=8), use_visual=False)
    rng = np.random.default_rng(0)
    train, test = turns_task(connectivity, 600, seed=1), turns_task(connectivity, 200, seed=2)
    test_pairs = turn_pairs(test, rng)
    cls = StepwiseDiscriminator if kind == "stepwise" else TwoTowerDiscriminator
    model = cls(len(vocab), feature_dim=8, embed_dim=16, hidden_dim=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(250):
        chunk = turn_pairs([train[i] for i in rng.choice(len(train), 32, replace=False)], rng)
        batch = collate([encoder.encode(p) for p in chunk])
        if kind == "stepwise":
            labels = torch.tensor([float(p.label) for p in chunk])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), labels)
        else:
            positives = collate([encoder.encode(p) for p in chunk if p.label])
            loss = in_batch_softmax_loss(model.in_batch_logits(positives))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        scores = model(collate([encoder.encode(p) for p in test_pairs])).numpy()
    assert roc_auc(scores, [p.label for p in test_pairs]) > 0.95


def test_two_tower_scores_agree_with_its_similarity_matrix():
    torch.manual_seed(0)
    model = TwoTowerDiscriminator(10, feature_dim=4, embed_dim=8, hidden_dim=16).eval()
    batch = {"tokens": torch.randint(3, 10, (3, 6)), "token_lengths": torch.tensor([6, 2, 4]),
             "instruction_index": torch.tensor([2, 0, 1]),
             "features": torch.randn(3, 5, 4), "geometry": torch.randn(3, 5, 5), "path_lengths": torch.tensor([5, 3, 1])}
    with torch.no_grad():
        assert torch.allclose(model(batch), torch.diagonal(model.in_batch_logits(batch)), atol=1e-6)


def test_in_batch_softmax_is_the_mean_of_both_cross_entropies():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [0.2, 0.1, 3.0]])
    rows = -torch.log_softmax(logits, 1).diagonal().mean()
    cols = -torch.log_softmax(logits, 0).diagonal().mean()
    assert in_batch_softmax_loss(logits).item() == pytest.approx(0.5 * (rows + cols).item())


def test_scores_do_not_depend_on_batch_padding(sample_connectivity):
    torch.manual_seed(0)
    connectivity = Connectivity(sample_connectivity)
    vocab = Vocabulary(["<PAD>", "<UNK>", "<EOS>", "go", "then", "left", "right", "straight"])
    encoder = PairEncoder(connectivity, vocab, SyntheticFeatures(dim=8))
    pairs = turn_pairs(turns_task(connectivity, 6, seed=3), np.random.default_rng(0))
    model = StepwiseDiscriminator(len(vocab), feature_dim=8, embed_dim=8, hidden_dim=16).eval()
    with torch.no_grad():
        together = model(collate([encoder.encode(p) for p in pairs]))
        alone = torch.cat([model(collate([encoder.encode(p)])) for p in pairs])
    assert torch.allclose(together, alone, atol=1e-5)
