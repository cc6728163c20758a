"""Negative instruction-path pairs: graph validity where promised, determinism per seed, ROC-AUC."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.problems.discriminator.metrics import roc_auc, roc_auc_by_kind
from valan.problems.discriminator.negatives import GRAPH_VALID_TYPES, NEGATIVE_TYPES, NegativeConfig, NegativeSampler, euclidean_path_length


@pytest.fixture(scope="module")
def sample(sample_train, sample_connectivity):
    connectivity = Connectivity(sample_connectivity)
    episodes = load_r2r(sample_train)
    return episodes, connectivity, NegativeSampler(episodes, connectivity)


def test_every_type_is_made_and_graph_types_are_walks(sample):
    episodes, connectivity, sampler = sample
    pairs = sampler.pairs(seed=3)
    kinds = Counter(p.kind for p in pairs)
    assert kinds["positive"] == len(episodes)
    for kind in NEGATIVE_TYPES:
        assert kinds[kind] >= 0.95 * len(episodes), kind
    by_id = {e.instr_id: e for e in episodes}
    for p in pairs:
        graph = connectivity.graph(p.scan)
        true = by_id[p.instr_id]
        assert all(vp in graph for vp in p.path)
        if p.kind in GRAPH_VALID_TYPES:
            assert all(graph.adjacent(a, b) for a, b in zip(p.path, p.path[1:])), p.pair_id
        if p.kind == "positive":
            assert p.label == 1 and p.path == true.path and p.instruction == true.instruction
            continue
        assert p.label == 0
        if p.kind == "instruction_swap":
            assert p.path == true.path and p.instruction != true.instruction
        else:
            assert p.path != true.path and p.instruction == true.instruction
        if p.kind == "random_walk":
            assert p.path[0] == true.start and len(p.path) == len(true.path)
            for i in range(2, len(p.path)):  # steps back only at a dead end
                if p.path[i] == p.path[i - 2]:
                    assert len(graph.neighbors[graph.local_index(p.path[i - 1])]) == 1
        if p.kind == "reversal":
            assert p.path == true.path[::-1]
        if p.kind == "partial_reorder":
            assert (p.path[0], p.path[-1]) == (true.start, true.goal)
            assert sorted(p.path) == sorted(true.path)
    walks = [p for p in pairs if p.kind == "random_walk"]
    far = [connectivity.graph(p.scan).distance(p.path[-1], by_id[p.instr_id].goal) > 3.0 for p in walks]
    assert np.mean(far) > 0.9  # redrawn when ending near the goal (kept only after walk_attempts failures)


def test_path_substitution_takes_a_nearby_similar_path_of_the_file(sample):
    episodes, connectivity, sampler = sample
    cfg = NegativeConfig()
    file_paths = {(e.scan, e.path) for e in episodes}
    near = similar = 0
    subs = [p for p in sampler.pairs(seed=0, types=["path_substitution"]) if p.kind == "path_substitution"]
    for p in subs:
        graph = connectivity.graph(p.scan)
        true = next(e for e in episodes if e.instr_id == p.instr_id)
        assert (p.scan, p.path) in file_paths and p.path_id != true.path_id
        assert graph.distance(p.path[-1], true.goal) > cfg.min_goal_distance
        near += graph.distance(p.path[0], true.start) <= cfg.start_radius
        length, true_length = euclidean_path_length(graph, p.path), euclidean_path_length(graph, true.path)
        similar += abs(length - true_length) <= cfg.length_tolerance * true_length
    assert similar >= 0.9 * len(subs) and near >= 0.5 * len(subs)


def test_deterministic_per_seed_and_independent_of_requested_types(sample):
    _, _, sampler = sample
    a = sampler.pairs(seed=7)
    assert a == sampler.pairs(seed=7)
    b = sampler.pairs(seed=8)
    assert sum(x != y for x, y in zip(a, b)) > 0.3 * len(a)
    walks_only = [p for p in sampler.pairs(seed=7, types=["random_walk"]) if p.kind == "random_walk"]
    assert walks_only == [p for p in a if p.kind == "random_walk"]


def test_unknown_type_is_refused(sample):
    with pytest.raises(ValueError, match="unknown negative types"):
        sample[2].pairs(0, ["sideways"])


def brute_force_auc(scores, labels):
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=60).astype(float)  # many ties
    labels = rng.random(60) < 0.3
    assert roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels), abs=1e-12)


def test_roc_auc_edge_cases_and_per_kind():
    assert roc_auc([0.9, 0.1], [1, 0]) == 1.0
    assert roc_auc([0.1, 0.9], [1, 0]) == 0.0
    assert roc_auc([0.5, 0.5], [1, 0]) == 0.5
    assert np.isnan(roc_auc([1.0, 2.0], [1, 1]))
    by_kind = roc_auc_by_kind([3, 2, 1, 4, 0], [1, 1, 0, 0, 0], ["positive", "positive", "a", "b", "a"])
    assert by_kind == {"all": pytest.approx(4 / 6), "a": 1.0, "b": 0.0}
