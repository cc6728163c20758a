"""Weighted training files (``data.train: [{file, weight}]``): valan train's R2R env draws episodes in the
configured proportions, and reports what each file contributes."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from valan.envs.batched import EpisodeSchedule
from valan.problems import get_problem, load_train_config


def _draws(env, steps: int) -> list[str]:
    """instr_ids of the episodes the env runs in ``steps`` calls that stop every slot at once."""
    env.reset()
    ids = []
    for _ in range(steps):
        _, _, _, infos = env.step(np.zeros(env.num_envs, np.int64))
        ids += [record["instr_id"] for record in infos["finished"]]
    return ids


@pytest.mark.parametrize("weight", [3.0, 0.5])
def test_weighted_files_are_drawn_in_the_configured_proportions(weight, sample_train, sample_val):
    config = load_train_config(None, [f"data.train=[{sample_train}, {{file: {sample_val}, weight: {weight}}}]",
                                      "learning.curriculum=none"])
    problem = get_problem("r2r")
    mix = problem.training_mix(config)
    n_train, n_val = (sum(len(r["instructions"]) for r in json.loads(f.read_text())) for f in (sample_train, sample_val))
    assert [(m["episodes"], m["weight"]) for m in mix] == [(n_train, 1.0), (n_val, weight)]
    expected = weight * n_val / (n_train + weight * n_val)
    assert mix[1]["share"] == pytest.approx(expected)
    env = problem.make_env(config, "train", num_envs=32, seed=5, evaluation=False)
    val_ids = {f"{r['path_id']}_{i}" for r in json.loads(sample_val.read_text()) for i in range(len(r["instructions"]))}
    ids = _draws(env, 400)  # 12,800 episodes, about 10 passes
    share = sum(i in val_ids for i in ids) / len(ids)
    assert share == pytest.approx(expected, abs=0.01)
    counts = Counter(ids)
    if weight >= 1:  # every episode of a heavier file comes round about weight times as often
        assert np.mean([counts[i] for i in val_ids]) / np.mean([c for i, c in counts.items() if i not in val_ids]) \
            == pytest.approx(weight, rel=0.1)


def test_plain_file_names_keep_the_unweighted_schedule(sample_train):
    names = load_train_config(None, [f"data.train=[{sample_train}]"])
    same = load_train_config(None, [f"data.train=[{{file: {sample_train}}}]"])
    problem = get_problem("r2r")
    assert _draws(problem.make_env(names, "train", 8, 1, False), 30) == \
        _draws(problem.make_env(same, "train", 8, 1, False), 30)


def test_weighted_schedule_passes_are_exact_per_weight_and_cover_pools():
    weights = np.r_[np.ones(10), np.full(4, 2.5)]
    schedule = EpisodeSchedule(14, evaluation=False, seed=0, weights=weights)
    rows = schedule.take(10 * 20)  # a pass holds 10 + 10 rows
    heavy = np.isin(rows, np.arange(10, 14))
    assert heavy.sum() == 100 and (np.bincount(rows, minlength=14)[:10] == 10).all()
    schedule.set_pool(np.arange(10, 14))  # a curriculum's pool keeps its weights
    assert set(schedule.take(50).tolist()) == set(range(10, 14))
    with pytest.raises(ValueError):
        EpisodeSchedule(3, evaluation=False, seed=0, weights=np.array([1.0, 0.0, 1.0]))


def test_valan_train_config_rejects_bad_weights():
    from valan.errors import InputError

    with pytest.raises(InputError, match="positive number"):
        load_train_config(None, ["data.train=[{file: a.json, weight: 0}]"])
    with pytest.raises(InputError, match=r"data.train\[0\].path' \(known: file, weight\)"):
        load_train_config(None, ["data.train=[{path: a.json}]"])
