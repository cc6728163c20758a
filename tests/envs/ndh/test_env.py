"""valan/NDH-v0: gymnasium checks, R2R's observation layout, supervision by path type, goal-region rewards."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import valan.envs  # noqa: F401  (registers the environments)
from valan.data import sample_path
from valan.envs.ndh.dataset import load_ndh
from valan.envs.ndh.env import BatchedNDHEnv, NDHEnv
from valan.envs.r2r.rewards import DISTANCE_STOP_REWARD

VAL = sample_path("ndh/NDH_sample_val.json")


def test_check_env_passes_and_the_layout_is_r2rs():
    env = gymnasium.make("valan/NDH-v0").unwrapped
    check_env(env)
    r2r = gymnasium.make("valan/R2R-v0", max_steps=20, max_instruction_length=120).unwrapped
    assert list(env.observation_space.keys()) == list(r2r.observation_space.keys())
    assert all(env.observation_space[k].shape == r2r.observation_space[k].shape for k in r2r.observation_space.keys())
    assert env.action_space == r2r.action_space


@pytest.mark.parametrize("path_type", ["planner_path", "player_path", "trusted_path"])
def test_following_the_oracle_walks_the_path_types_goal(path_type):
    episodes = load_ndh(VAL)
    env = BatchedNDHEnv(16, data=VAL, path_type=path_type, evaluation=True)
    obs, _ = env.reset()
    finished = []
    while not env.finished:
        obs, _, _, infos = env.step(obs["oracle_next_action"])
        finished += infos["finished"]
    by_id = {e.inst_idx: e for e in episodes}
    assert sorted(f["inst_idx"] for f in finished) == sorted(by_id)
    for record in finished:
        path = by_id[record["inst_idx"]].path(path_type)
        assert record["trajectory"][0][0] == path[0] and record["trajectory"][-1][0] == path[-1]
        assert record["distance_to_goal"] == 0.0


def test_distance_reward_measures_progress_to_the_nearest_end_pano():
    episodes = load_ndh(VAL)
    # an instance whose player path ends short of the region's nearest viewpoint on the path
    episode = next(e for e in episodes if len(e.end_panos) > 1 and len(e.player_path) > 2)
    env = NDHEnv(split_episodes=[episode], path_type="player_path", history=True)
    world = env.world
    obs, info = env.reset(options={"episode_id": episode.inst_idx})
    assert obs["progress"] == 0.0
    assert info["inst_idx"] == info["episode_id"] == episode.inst_idx
    graph = world.connectivity.graph(episode.scan)
    here = episode.player_path[0]
    rewards = []
    for nxt in episode.player_path[1:]:
        slot = int(np.flatnonzero(obs["candidates"] == world.viewpoint_index.global_index(episode.scan, nxt))[0])
        obs, reward, terminated, _, _ = env.step(slot)
        before = min(graph.distance(here, e) for e in episode.end_panos)
        after = min(graph.distance(nxt, e) for e in episode.end_panos)
        rewards.append(reward)
        assert reward == pytest.approx(np.clip(before - after, -1, 1), abs=1e-6)
        at_start = min(graph.distance(episode.player_path[0], e) for e in episode.end_panos)
        assert obs["progress"] == pytest.approx(max(-1.0, 1 - after / at_start), abs=1e-5)  # toward the region
        here = nxt
    _, reward, terminated, _, record = env.step(0)
    region = min(graph.distance(here, e) for e in episode.end_panos)
    assert terminated and reward == (DISTANCE_STOP_REWARD if region < 3.0 else -DISTANCE_STOP_REWARD)
    assert record["inst_idx"] == episode.inst_idx


def test_test_split_instances_run_without_reward_or_supervision(tmp_path):
    import json

    records = [{k: v for k, v in r.items() if k not in ("end_panos", "planner_path", "player_path")}
               for r in json.loads(VAL.read_text())[:4]]
    path = tmp_path / "test.json"
    path.write_text(json.dumps(records))
    env = BatchedNDHEnv(4, data=path, evaluation=True)
    obs, _ = env.reset()
    assert (obs["oracle_next_action"] == 0).all()
    assert [env.world.viewpoint_ids[v] for v in obs["viewpoint"]] == [r["start_pano"]["pano"] for r in records]
    obs, reward, done, infos = env.step(np.ones(4, np.int64))
    assert (reward == 0).all() and not done.any()
