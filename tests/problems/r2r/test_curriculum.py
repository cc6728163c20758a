"""Curriculum: difficulty order, constant and adaptive schedules, and an R2R env drawing only from the pool."""

from __future__ import annotations

import numpy as np
import pytest

from valan.learning.config import LearningConfig
from valan.config import apply_overrides
from valan.problems import load_train_config
from valan.problems.r2r.curriculum import CurriculumEnv, CurriculumSchedule, difficulty_order
from valan.problems import get_problem


def test_difficulty_order_by_hops_then_instruction_length():
    hops = np.array([5, 3, 3, 4, 3])
    lengths = np.array([10, 40, 20, 5, 20])
    assert difficulty_order(hops, lengths).tolist() == [2, 4, 1, 3, 0]


def test_constant_schedule_widens_linearly_counting_all_actors():
    schedule = CurriculumSchedule(LearningConfig(curriculum="constant", curriculum_start=0.2, curriculum_steps=1000),
                                  num_actors=4)
    assert schedule.fraction == 0.2
    assert schedule.update(125, []) == pytest.approx(0.2 + 0.8 * 0.5)  # 125 * 4 actors = half of 1000
    assert schedule.update(10_000, []) == 1.0


def test_adaptive_schedule_widens_when_the_pool_is_mastered():
    schedule = CurriculumSchedule(LearningConfig(curriculum="adaptive", curriculum_start=0.25,
                                                 curriculum_threshold=0.5), window=4)
    assert schedule.update(0, [True, False, True]) == 0.25  # window not full yet
    assert schedule.update(0, [False]) == 0.25  # 2 of 4: not above the threshold
    assert schedule.update(0, [True, True, True]) == 0.5  # last 4: 3 of 4 succeeded
    assert schedule.update(0, [True, True, True]) == 0.5  # the window restarts after widening
    with pytest.raises(ValueError):
        CurriculumSchedule(LearningConfig())


def test_r2r_training_env_draws_only_from_the_easiest_pool():
    config = apply_overrides(load_train_config(), ["learning.curriculum=constant", "learning.curriculum_start=0.1",
                                             "learning.curriculum_steps=100000", "distributed.num_actors=1"])
    env = get_problem("r2r").make_env(config, "train", 8, seed=0, evaluation=False)
    assert isinstance(env, CurriculumEnv)
    world = env.world
    hops = np.array([len(ep.path) - 1 for ep in world.episodes])
    pool = set(env.order[:env.pool_size].tolist())
    assert env.pool_size == int(np.ceil(0.1 * len(world.episodes)))
    assert max(hops[list(pool)]) <= np.quantile(hops, 0.25)
    obs, _ = env.reset()
    seen = []
    for _ in range(60):
        obs, _, _, infos = env.step(np.zeros(env.num_envs, np.int64))  # STOP: one episode per step and slot
        seen += [world.episode(f["instr_id"]) for f in infos["finished"]]
    assert len(seen) == 60 * 8 and set(seen) <= set(env.order[:env.pool_size].tolist())
    assert len(pool) < env.pool_size < 0.11 * len(world.episodes)  # 480 of 100000 steps: widening has begun
    evaluation = get_problem("r2r").make_env(config, "val_seen", 8, seed=0, evaluation=True)
    assert not isinstance(evaluation, CurriculumEnv)
