"""The R2R and Touchdown gymnasium environments as a user meets them: made by id without importing valan,
rendered as pictures, fed a feature store by path, warning-free under ``check_env``; and the floor clustering
behind the per-floor pictures."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import valan.envs
from valan.envs.drawing import END, GOAL, TRAJECTORY
from valan.envs.r2r.drawing import floor_of

ENV_IDS = ["valan/R2R-v0", "valan/Touchdown-v0"]


def test_make_by_id_needs_no_import_of_valan():
    """gymnasium >= 1.0 has no plugin entry points; its ``module:id`` form imports the registering module."""
    code = ("import json, sys, gymnasium\n"
            "env = gymnasium.make('valan.envs:valan/R2R-v0')\n"
            "obs, info = env.reset(seed=0)\n"
            "print(json.dumps([sorted(obs), info['episode_id'], 'valan.envs' in sys.modules]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    keys, episode_id, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "instruction" in keys and "_" in episode_id and imported


def test_one_registration_table():
    assert set(ENV_IDS) <= set(valan.envs._ENVS) and all(i in gymnasium.registry for i in valan.envs._ENVS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_raises_no_warning_with_features_and_rendering(env_id):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gymnasium.make(env_id, include_features=True, render_mode="rgb_array").unwrapped
        check_env(env)
    assert [str(w.message) for w in caught] == []
    box = env.observation_space["features"]
    assert np.isfinite(box.low).all() and np.isfinite(box.high).all() and box.low.max() < box.high.min()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_draws_the_path_taken(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array").unwrapped
    assert gymnasium.make(env_id).unwrapped.render() is None  # no render_mode, no picture
    obs, info = env.reset(seed=3)
    before = env.render()
    assert before.dtype == np.uint8 and before.ndim == 3 and before.shape[2] == 3
    oracle = int(obs["oracle_next_action"])
    env.step(oracle)
    env.step(oracle if env_id.endswith("Touchdown-v0") else int(env._observation()["oracle_next_action"]))
    after = env.render()
    assert after.shape[1] == before.shape[1] and not np.array_equal(before, after)
    colours = {tuple(c) for c in after.reshape(-1, 3)}
    assert TRAJECTORY in colours and END in colours and GOAL in colours


def test_r2r_picture_circles_three_metres_around_the_goal():
    env = gymnasium.make("valan/R2R-v0", render_mode="rgb_array").unwrapped
    env.reset(seed=0)
    picture = env.render()
    ep = env.world.episodes[int(env._slots.episode[0])]
    assert ep.has_reference
    # the 3 m circle: red pixels far from the goal marker's 7-pixel ring
    red = np.argwhere(np.all(picture == GOAL, axis=2))
    spread = red.max(axis=0) - red.min(axis=0)
    assert spread.max() > 40


def test_features_by_path(tmp_path):
    from valan.features.stores import StoreWriter
    from valan.envs.r2r.env import R2REnv

    keys = R2REnv().world.keys()
    rng = np.random.default_rng(0)
    values = {key: rng.uniform(0.0, 2.0, (36, 8)).astype(np.float32) for key in keys}
    with StoreWriter(tmp_path / "store", len(keys), 36, 8) as writer:
        for (group, node), row in values.items():
            writer.write(group, node, row)
    env = gymnasium.make("valan/R2R-v0", features=str(tmp_path / "store"), include_features=True).unwrapped
    obs, _ = env.reset(seed=0)
    here = env.world.keys()[int(obs["viewpoint"])]
    assert np.array_equal(obs["features"], values[here])
    box = env.observation_space["features"]
    table = np.stack(list(values.values()))
    assert box.shape == (36, 8) and box.low.min() == table.min() and box.high.max() == table.max()


def test_floors_are_clusters_of_heights_with_stairs_joining_the_nearest():
    ground = [0.0, 0.05, 0.1, 0.1, 0.12]
    stairs = [0.9, 1.6, 2.3]
    upper = [3.0, 3.02, 3.1, 3.1]
    floors = floor_of(np.array(ground + stairs + upper))
    assert floors.tolist() == [0] * 5 + [0, 1, 1] + [1] * 4
    assert floor_of(np.array([1.5, 1.6, 1.55, 1.52, 3.0])).tolist() == [0] * 5  # one floor and a landing
    split_level = [0.0, 0.02, 0.05, 0.04, 1.0, 1.02, 1.05, 1.1]  # a sunken room 1 m below: one floor
    assert floor_of(np.array(split_level + upper)).tolist() == [0] * 8 + [1] * 4
