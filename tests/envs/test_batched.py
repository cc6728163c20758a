"""The contract of ``valan.envs.batched``, checked for every task's batched and single-episode envs alike."""

from __future__ import annotations

import numpy as np
import pytest

from valan.data import sample_path
from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.env import STOP as R2R_STOP
from valan.envs.r2r.env import BatchedR2REnv, R2REnv
from valan.envs.streetview.dataset import SAMPLE_TOUCHDOWN, load_routes
from valan.envs.streetview.env import BatchedTouchdownEnv, TouchdownEnv
from valan.envs.streetview.navigation import STOP as TOUCHDOWN_STOP

NUM_EPISODES = 7


def r2r(num_envs: int | None = None, **kwargs):
    episodes = load_r2r(sample_path("R2R_sample_val_seen.json"))[:NUM_EPISODES]
    if num_envs is None:
        return R2REnv(split_episodes=episodes)
    return BatchedR2REnv(num_envs, split_episodes=episodes, **kwargs)


def touchdown(num_envs: int | None = None, **kwargs):
    routes = load_routes(sample_path(SAMPLE_TOUCHDOWN))[:NUM_EPISODES]
    if num_envs is None:
        return TouchdownEnv(routes=routes)
    return BatchedTouchdownEnv(num_envs, routes=routes, **kwargs)


TASKS = [pytest.param(r2r, R2R_STOP, id="r2r"), pytest.param(touchdown, TOUCHDOWN_STOP, id="touchdown")]


def finished_ids(env, infos) -> list[str]:
    return [f[env.world.id_key] for f in infos["finished"]]


@pytest.mark.parametrize("make, stop", TASKS)
def test_evaluation_runs_each_episode_exactly_once_then_idles(make, stop):
    env = make(3, evaluation=True)
    obs, infos = env.reset()
    assert infos["active"].all() and infos["finished"] == []
    assert all(value.shape[0] == 3 for value in obs.values())
    rng = np.random.default_rng(0)
    ids: list[str] = []
    while not env.finished:
        obs, reward, done, infos = env.step(rng.integers(0, env.single_action_space.n, size=3))
        ids += finished_ids(env, infos)
        assert reward.dtype == np.float32 and done.dtype == bool
        assert (obs["time_step"][done & infos["active"]] == 0).all()  # auto-reset: the next episode's start
    assert sorted(ids) == sorted(env.world.episode_ids) and len(set(ids)) == NUM_EPISODES
    last = env.step(np.full(3, stop))[0]
    obs, reward, done, infos = env.step(np.full(3, stop))
    assert not infos["active"].any() and not done.any() and not reward.any() and infos["finished"] == []
    assert all(np.array_equal(obs[k], last[k]) for k in obs)
    env.reset()  # starts over from the first episode
    ids = finished_ids(env, env.step(np.full(3, stop))[3])
    assert ids == env.world.episode_ids[:3]


@pytest.mark.parametrize("make, stop", TASKS)
def test_evaluation_with_more_slots_than_episodes(make, stop):
    env = make(NUM_EPISODES + 2, evaluation=True)
    _, infos = env.reset()
    assert infos["active"].tolist() == [True] * NUM_EPISODES + [False, False]
    _, _, done, infos = env.step(np.full(NUM_EPISODES + 2, stop))
    assert done.tolist() == [True] * NUM_EPISODES + [False, False]
    assert finished_ids(env, infos) == env.world.episode_ids and env.finished


@pytest.mark.parametrize("make, stop", TASKS)
def test_training_walks_seeded_permutations_of_the_episode_pool(make, stop):
    def first_pass(seed: int) -> list[str]:
        env = make(1, seed=seed)
        env.reset()
        return [i for _ in range(NUM_EPISODES) for i in finished_ids(env, env.step(np.array([stop]))[3])]

    ids = first_pass(5)
    assert sorted(ids) == sorted(make(1).world.episode_ids)  # every episode once per pass
    assert ids == first_pass(5) and any(first_pass(seed) != ids for seed in range(6, 10))

    env = make(2, seed=0)
    env.reset()
    env.set_episode_pool(np.array([1, 4]))
    env.step(np.full(2, stop))  # ends the episodes drawn before; the next ones come from the pool
    pool = {env.world.episode_ids[1], env.world.episode_ids[4]}
    for _ in range(3):
        assert set(finished_ids(env, env.step(np.full(2, stop))[3])) <= pool


@pytest.mark.parametrize("make, stop", TASKS)
def test_single_episode_env_reset_and_step(make, stop):
    env = make()
    key, name = env.world.id_key, env.world.episode_ids[2]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(stop)
    obs, info = env.reset(options={"episode_id": name})
    text = env.world.instruction_text(2)  # the text as read, for people and logs (the agent sees token ids)
    assert len(text) > 10 and info == {key: name, "episode_id": name, "instruction": text}
    assert env.observation_space.contains(obs)
    _, _, terminated, truncated, info = env.step(stop)
    assert terminated and not truncated and info[key] == name and info["instruction"] == text
    assert {"trajectory", "return", "steps"} <= set(info)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(stop)
    _, info = env.reset(seed=1)
    assert info[key] in env.world.episode_ids


@pytest.mark.parametrize("make, stop", TASKS)
def test_batched_env_checks_its_arguments(make, stop):
    with pytest.raises(ValueError, match="num_envs"):
        make(0)
    env = make(2)
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="actions must be in"):
        env.step(np.full(2, env.single_action_space.n))
