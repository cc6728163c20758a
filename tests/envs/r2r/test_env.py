"""The R2R environment: spaces, dynamics, oracle, rewards and the batched form, checked against the graph."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import valan.envs  # noqa: F401  (registers valan/R2R-v0)
from valan.envs.r2r.dataset import R2REpisode, load_r2r
from valan.envs.r2r.env import BatchedR2REnv, R2REnv
from valan.envs.r2r.graph import Connectivity
from valan.envs.r2r.rewards import Transition, distance_reward, ndtw_reward, success_reward
from valan.data import sample_path
from valan.errors import InputError
from valan.features.stores import SyntheticFeatures
from valan.envs.r2r.metrics import ndtw
from valan.text import Vocabulary


@pytest.fixture(scope="module")
def env() -> R2REnv:
    return R2REnv()


@pytest.fixture(scope="module")
def graphs(sample_connectivity) -> Connectivity:
    return Connectivity(sample_connectivity)


def _where(env: R2REnv, obs: dict) -> tuple[str, str]:
    g = int(obs["viewpoint"])
    return env.world.viewpoint_scans[g], env.world.viewpoint_ids[g]


def _random_valid(rng: np.random.Generator, mask: np.ndarray, allow_stop: bool = True) -> int:
    valid = np.flatnonzero(mask)
    return int(rng.choice(valid if allow_stop else valid[1:] if len(valid) > 1 else valid))


def test_gymnasium_make_and_check_env_pass():
    env = gym.make("valan/R2R-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no env_checker warnings either
        check_env(env.unwrapped)
    assert env.action_space == gym.spaces.Discrete(17)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert set(obs) == {"instruction", "instruction_length", "viewpoint", "heading", "elevation", "candidates",
                        "candidate_mask", "candidate_view", "candidate_geometry", "previous_action_geometry",
                        "time_step", "oracle_next_action"}
    history = R2REnv(history=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(history, skip_render_check=True)
    obs, _ = history.reset(seed=3)
    assert history.observation_space.contains(obs)
    assert set(obs) - set(env.observation_space.spaces) == {"candidate_visited", "odometry", "progress"}


def test_check_env_passes_with_features_and_ndtw_reward():
    env = R2REnv(include_features=True, features=SyntheticFeatures(dim=8), reward="ndtw")
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["features"].shape == (36, 8) and obs["features"].dtype == np.float32


def test_reset_with_episode_id_places_agent_at_start(env, sample_train, graphs):
    episode = load_r2r(sample_train)[17]
    obs, info = env.reset(options={"episode_id": episode.instr_id})
    assert info["instr_id"] == episode.instr_id
    assert _where(env, obs) == (episode.scan, episode.start)
    assert obs["heading"] == pytest.approx(episode.heading % (2 * math.pi), abs=1e-6)
    ids, length = Vocabulary.load(sample_path("train_vocab.txt")).encode(episode.instruction, 80)
    np.testing.assert_array_equal(obs["instruction"], ids)
    assert obs["instruction_length"] == length
    assert obs["time_step"] == 0 and obs["elevation"] == 0
    np.testing.assert_array_equal(obs["previous_action_geometry"], [0, 1, 0, 1, 0])
    with pytest.raises(InputError, match="no_such_id"):
        env.reset(options={"episode_id": "no_such_id"})


def test_reset_with_seed_is_deterministic(env):
    a, _ = env.reset(seed=123)
    b, _ = env.reset(seed=123)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_candidates_are_graph_neighbours_with_correct_geometry(env, graphs):
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    checked = 0
    for _ in range(300):
        scan, here = _where(env, obs)
        graph = graphs.graph(scan)
        heading = float(obs["heading"])
        mask = obs["candidate_mask"].astype(bool)
        assert mask[0] and obs["candidates"][0] == obs["viewpoint"]
        slots = np.flatnonzero(mask)[1:]
        neighbours = {env.world.viewpoint_ids[g] for g in obs["candidates"][slots]}
        assert neighbours == {graph.viewpoints[i] for i in graph.neighbors[graph.local_index(here)]}
        absolute = []
        for k in slots:
            there = env.world.viewpoint_ids[obs["candidates"][k]]
            sin_h, cos_h, sin_e, cos_e, dist = obs["candidate_geometry"][k]
            rel = graph.heading(here, there) - heading
            assert (sin_h, cos_h) == pytest.approx((math.sin(rel), math.cos(rel)), abs=1e-5)
            elev = graph.elevation(here, there)
            assert (sin_e, cos_e) == pytest.approx((math.sin(elev), math.cos(elev)), abs=1e-5)
            assert dist == pytest.approx(graph.edge_length(here, there), rel=1e-6)
            # nearest of the 36 views by brute force over view directions
            view_dirs = [((v % 12) * math.pi / 6, (v // 12 - 1) * math.pi / 6) for v in range(36)]
            h_abs = graph.heading(here, there)
            cost = [math.atan2(math.sin(h_abs - vh), math.cos(h_abs - vh)) ** 2 + (elev - ve) ** 2
                    for vh, ve in view_dirs]
            assert obs["candidate_view"][k] == int(np.argmin(cost))
            absolute.append(h_abs % (2 * math.pi))
            checked += 1
        assert absolute == sorted(absolute)  # slots ordered by absolute heading
        assert not obs["candidate_geometry"][~mask].any() and not obs["candidates"][~mask].any()
        np.testing.assert_array_equal(obs["candidate_geometry"][0], [0, 1, 0, 1, 0])
        assert obs["candidate_view"][0] == 12 + round(heading / (math.pi / 6)) % 12
        action = _random_valid(rng, mask, allow_stop=False)
        chosen_geometry = obs["candidate_geometry"][action].copy()
        obs, _, terminated, _, _ = env.step(action)
        if action:
            there = _where(env, obs)[1]
            assert graph.adjacent(here, there)
            assert float(obs["heading"]) == pytest.approx(graph.heading(here, there) % (2 * math.pi), abs=1e-5)
            np.testing.assert_allclose(obs["previous_action_geometry"], chosen_geometry, atol=1e-6)
        if terminated:
            obs, _ = env.reset()
    assert checked > 500


def test_visited_candidates_and_odometry_follow_the_walk(graphs):
    """Random walks, checked against a separate record of where the agent has been and how far it walked."""
    env = R2REnv(history=True)
    rng = np.random.default_rng(5)
    obs, _ = env.reset(seed=5)
    start, walked, been, revisits = _where(env, obs)[1], 0.0, {_where(env, obs)[1]}, 0
    for _ in range(300):
        scan, here = _where(env, obs)
        graph = graphs.graph(scan)
        mask = obs["candidate_mask"].astype(bool)
        expected = [k > 0 and mask[k] and env.world.viewpoint_ids[obs["candidates"][k]] in been
                    for k in range(len(mask))]
        np.testing.assert_array_equal(obs["candidate_visited"].astype(bool), expected)
        revisits += sum(expected)
        heading = float(obs["heading"])
        back = graph.positions[graph.local_index(start)] - graph.positions[graph.local_index(here)]
        ahead = back[0] * math.sin(heading) + back[1] * math.cos(heading)
        right = back[0] * math.cos(heading) - back[1] * math.sin(heading)
        np.testing.assert_allclose(obs["odometry"], [walked, ahead, right, back[2]], atol=1e-4)
        assert np.hypot(ahead, right) == pytest.approx(np.hypot(back[0], back[1]), abs=1e-4)
        action = _random_valid(rng, mask, allow_stop=rng.random() < 0.1)
        walked += float(obs["candidate_geometry"][action, 4])
        obs, _, terminated, _, _ = env.step(action)
        been.add(_where(env, obs)[1])
        if terminated:
            obs, _ = env.reset()
            start, walked, been = _where(env, obs)[1], 0.0, {_where(env, obs)[1]}
    assert revisits > 20  # random walks step back often: the flag was exercised


def test_masked_action_is_a_no_op_that_counts_as_a_step(env):
    obs, _ = env.reset(seed=1)
    invalid = int(np.flatnonzero(obs["candidate_mask"] == 0)[0])
    after, reward, terminated, truncated, _ = env.step(invalid)
    assert after["viewpoint"] == obs["viewpoint"] and after["time_step"] == 1
    assert reward == 0.0 and not terminated and not truncated
    with pytest.raises(ValueError):
        env.step(99)


def test_max_steps_ends_the_episode_as_if_stopped(sample_train, graphs):
    env = R2REnv(max_steps=3)
    episode = load_r2r(sample_train)[5]
    obs, _ = env.reset(options={"episode_id": episode.instr_id})
    for t in range(3):
        obs, reward, terminated, truncated, info = env.step(int(np.flatnonzero(obs["candidate_mask"])[1]))
        assert terminated == (t == 2) and not truncated
    assert obs["time_step"] == 3
    assert len(info["trajectory"]) == 4 and info["steps"] == 3
    graph = graphs.graph(episode.scan)
    final = info["trajectory"][-1][0]
    d = graph.distance(final, episode.goal)
    assert info["distance_to_goal"] == pytest.approx(d)
    assert reward == (4.0 if d < 3.0 else -4.0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_distance_reward_matches_hand_computation(env, sample_train, graphs):
    episodes = load_r2r(sample_train)
    rng = np.random.default_rng(5)
    for episode in episodes[::40]:
        graph = graphs.graph(episode.scan)
        obs, _ = env.reset(options={"episode_id": episode.instr_id})
        for _ in range(3):
            here = _where(env, obs)[1]
            obs, reward, terminated, _, _ = env.step(_random_valid(rng, obs["candidate_mask"], allow_stop=False))
            there = _where(env, obs)[1]
            expected = np.clip(graph.distance(here, episode.goal) - graph.distance(there, episode.goal), -1, 1)
            assert reward == pytest.approx(expected, abs=1e-6)
        obs, reward, terminated, _, info = env.step(0)
        d = graph.distance(_where(env, obs)[1], episode.goal)
        assert terminated and reward == (4.0 if d < 3.0 else -4.0)
        assert info["success"] == (d < 3.0) and info["distance_to_goal"] == pytest.approx(d)


def test_oracle_return_and_success_reward(sample_train, graphs):
    episodes = load_r2r(sample_train)[::50]
    for name in ("distance", "success"):
        env = R2REnv(reward=name)
        for episode in episodes:
            graph = graphs.graph(episode.scan)
            obs, _ = env.reset(options={"episode_id": episode.instr_id})
            rewards, terminated = [], False
            while not terminated:
                obs, reward, terminated, _, info = env.step(int(obs["oracle_next_action"]))
                rewards.append(reward)
            path = graph.shortest_path(episode.start, episode.goal)
            assert [v for v, _, _ in info["trajectory"]] == path
            headings = [episode.heading] + [graph.heading(a, b) for a, b in zip(path, path[1:])]
            assert [h for _, h, _ in info["trajectory"]] == pytest.approx([h % (2 * math.pi) for h in headings])
            assert all(e == 0.0 for _, _, e in info["trajectory"])
            if name == "distance":
                edges = [min(1.0, graph.edge_length(a, b)) for a, b in zip(path, path[1:])]
                assert rewards == pytest.approx(edges + [4.0], abs=1e-6)
            else:
                assert rewards == [0.0] * (len(path) - 1) + [1.0]


def test_progress_is_the_share_of_the_distance_made_good(sample_train, graphs):
    env = R2REnv(history=True)
    rng = np.random.default_rng(3)
    for episode in load_r2r(sample_train)[::60]:
        graph = graphs.graph(episode.scan)
        obs, _ = env.reset(options={"episode_id": episode.instr_id})
        assert obs["progress"] == 0.0
        at_start, terminated, seen, action = graph.distance(episode.start, episode.goal), False, [], None
        while not terminated:  # wander first, then follow the oracle: progress falls and rises
            random_step = len(seen) < 3
            action = _random_valid(rng, obs["candidate_mask"], allow_stop=False) if random_step else int(
                obs["oracle_next_action"])
            obs, _, terminated, _, _ = env.step(action)
            here = _where(env, obs)[1]
            expected = max(-1.0, 1 - graph.distance(here, episode.goal) / at_start)
            assert obs["progress"] == pytest.approx(expected, abs=1e-5)
            seen.append(float(obs["progress"]))
        if action == 0:  # the oracle stopped: at the goal
            assert seen[-1] == 1.0


def test_ndtw_reward_is_the_change_in_ndtw_of_the_path(sample_train, graphs):
    env = R2REnv(reward="ndtw")
    rng = np.random.default_rng(2)
    for episode in load_r2r(sample_train)[::120]:
        graph = graphs.graph(episode.scan)
        obs, _ = env.reset(options={"episode_id": episode.instr_id})
        visited = [episode.start]
        total, terminated = 0.0, False
        while not terminated:
            before = ndtw(graph, visited, episode.path)
            obs, reward, terminated, _, info = env.step(_random_valid(rng, obs["candidate_mask"]))
            here = _where(env, obs)[1]
            if here != visited[-1]:
                visited.append(here)
            assert reward == pytest.approx(ndtw(graph, visited, episode.path) - before, abs=1e-6)
            total += reward
        assert total == pytest.approx(ndtw(graph, visited, episode.path) - ndtw(graph, [episode.start],
                                                                               episode.path), abs=1e-5)


def test_reward_functions_on_hand_made_transitions():
    t = Transition(distance_before=np.array([10.0, 5.0, 2.5, 7.0, 2.9]),
                   distance_after=np.array([8.5, 5.4, 2.5, 7.0, 3.0]),
                   ended=np.array([False, False, True, True, True]),
                   ndtw_before=np.array([0.2, 0.5, 0.5, 0.1, 0.3]), ndtw_after=np.array([0.4, 0.45, 0.5, 0.1, 0.3]))
    np.testing.assert_allclose(distance_reward(t), [1.0, -0.4, 4.0, -4.0, -4.0], atol=1e-6)
    np.testing.assert_allclose(success_reward(t), [0, 0, 1, 0, 0])
    np.testing.assert_allclose(ndtw_reward(t), [0.2, -0.05, 0, 0, 0], atol=1e-6)


def test_episodes_without_reference_run_with_zero_reward_and_stop_oracle(sample_train):
    base = load_r2r(sample_train)[0]
    test_episode = R2REpisode("test_0", 0, base.scan, (base.start,), base.heading, base.instruction)
    env = R2REnv(split_episodes=[test_episode])
    obs, _ = env.reset(seed=0)
    assert obs["oracle_next_action"] == 0
    obs, reward, terminated, _, _ = env.step(1)
    assert reward == 0.0 and obs["oracle_next_action"] == 0
    _, reward, terminated, _, info = env.step(0)
    assert terminated and reward == 0.0
    assert info["distance_to_goal"] is None and info["success"] is None and len(info["trajectory"]) == 2


def test_too_many_neighbours_for_max_candidates_names_scan_and_viewpoint():
    with pytest.raises(InputError, match=r"viewpoint \w+ in scan \w+ has \d+ neighbours, more than max_candidates=2"):
        R2REnv(max_candidates=2)


def test_features_in_observation_match_store_and_feature_table():
    store = SyntheticFeatures(dim=16)
    env = R2REnv(include_features=True, features=store)
    table = env.feature_table()
    assert table.shape == (env.viewpoint_index.num_viewpoints, 36, 16)
    obs, _ = env.reset(seed=4)
    np.testing.assert_array_equal(obs["features"], store.get(*_where(env, obs)))
    np.testing.assert_array_equal(table[obs["viewpoint"]], obs["features"])
    assert R2REnv().observation_space["candidates"].shape == (17,)


def test_global_index_is_shared_by_splits(sample_train, sample_val):
    train, val = R2REnv(data=sample_train), R2REnv(data=sample_val)
    assert train.viewpoint_index.keys() == val.viewpoint_index.keys()
    episode = load_r2r(sample_val)[0]
    obs, _ = val.reset(options={"episode_id": episode.instr_id})
    assert train.viewpoint_index.global_index(episode.scan, episode.start) == obs["viewpoint"]


def _run_batched(env: BatchedR2REnv, policy, max_calls: int = 10_000) -> list[dict]:
    obs, infos = env.reset()
    finished = []
    for _ in range(max_calls):
        if env.finished:
            break
        obs, reward, done, infos = env.step(policy(obs))
        finished += infos["finished"]
        assert not reward[~infos["active"] & ~done].any()
    return finished


def test_batched_evaluation_runs_each_episode_exactly_once(sample_val):
    env = BatchedR2REnv(8, data=sample_val, evaluation=True)
    rng = np.random.default_rng(0)
    finished = _run_batched(env, lambda obs: np.array([_random_valid(rng, m) for m in obs["candidate_mask"]]))
    ids = [f["instr_id"] for f in finished]
    assert sorted(ids) == sorted(ep.instr_id for ep in load_r2r(sample_val)) and len(set(ids)) == len(ids)
    # Once finished, idle slots ignore actions: nothing moves, no reward, no done.
    last = env.step(np.zeros(8, np.int64))[0]
    obs, reward, done, infos = env.step(np.ones(8, np.int64))
    assert not infos["active"].any() and not done.any() and not reward.any()
    assert all(np.array_equal(obs[k], last[k]) for k in obs)


def test_batched_evaluation_with_more_slots_than_episodes(sample_val):
    episodes = load_r2r(sample_val)[:3]
    env = BatchedR2REnv(5, split_episodes=episodes, evaluation=True)
    obs, infos = env.reset()
    np.testing.assert_array_equal(infos["active"], [True, True, True, False, False])
    _, _, done, infos = env.step(np.zeros(5, np.int64))
    np.testing.assert_array_equal(done, [True, True, True, False, False])
    assert [f["instr_id"] for f in infos["finished"]] == [ep.instr_id for ep in episodes]
    assert env.finished


def test_batched_auto_reset_and_seeded_sampling(sample_train):
    env = BatchedR2REnv(4, data=sample_train, seed=7)
    obs, _ = env.reset()
    obs, reward, done, infos = env.step(np.zeros(4, np.int64))  # STOP everywhere
    assert done.all() and len(infos["finished"]) == 4 and infos["active"].all()
    assert [f["slot"] for f in infos["finished"]] == [0, 1, 2, 3]
    assert (obs["time_step"] == 0).all()  # the next episodes' first observations
    starts = [f["trajectory"][0][0] for f in infos["finished"]]
    assert all(len(f["trajectory"]) == 1 and f["steps"] == 0 for f in infos["finished"])
    assert len(starts) == 4

    def first_ids(seed: int, n: int) -> list[str]:
        e = BatchedR2REnv(2, data=sample_train, seed=seed)
        e.reset()
        ids = []
        while len(ids) < n:
            ids += [f["instr_id"] for f in e.step(np.zeros(2, np.int64))[3]["finished"]]
        return ids

    one_pass = len(load_r2r(sample_train))
    ids = first_ids(7, one_pass)
    assert ids == first_ids(7, one_pass) and ids != first_ids(8, one_pass)
    assert len(set(ids)) == one_pass  # a permutation: every episode once per pass


def test_batched_matches_single_env_step_by_step(sample_train):
    episodes = load_r2r(sample_train)[:2]
    batched = BatchedR2REnv(2, split_episodes=episodes, evaluation=True)
    single = R2REnv(split_episodes=episodes)
    obs_b, _ = batched.reset()
    single.reset(options={"episode_id": episodes[0].instr_id})
    rng = np.random.default_rng(3)
    for _ in range(4):
        action = _random_valid(rng, obs_b["candidate_mask"][0], allow_stop=False)
        obs_b, reward_b, done_b, _ = batched.step(np.array([action, 0 if _ == 0 else 1]))
        obs_1, reward_1, terminated, _, _ = single.step(action)
        for key in obs_1:
            np.testing.assert_array_equal(obs_b[key][0], obs_1[key], err_msg=key)
        assert reward_b[0] == pytest.approx(reward_1) and done_b[0] == terminated


@pytest.fixture(scope="module")
def val_seen_env(shared_r2r) -> BatchedR2REnv:
    return BatchedR2REnv(64, data=shared_r2r / "R2R_val_seen.json", connectivity=shared_r2r / "connectivity",
                         vocab=shared_r2r / "train_vocab.txt", evaluation=True, max_steps=30)


def test_oracle_reaches_the_goal_on_real_val_seen(val_seen_env, shared_r2r):
    finished = _run_batched(val_seen_env, lambda obs: obs["oracle_next_action"])
    episodes = {ep.instr_id: ep for ep in load_r2r(shared_r2r / "R2R_val_seen.json")}
    assert len(finished) == len(episodes) == 1021
    connectivity = val_seen_env.world.connectivity
    for f in finished:
        ep = episodes[f["instr_id"]]
        graph = connectivity.graph(ep.scan)
        path = [v for v, _, _ in f["trajectory"]]
        assert f["success"] and f["distance_to_goal"] == 0.0
        assert path == graph.shortest_path(ep.start, ep.goal)
        length = sum(graph.edge_length(a, b) for a, b in zip(path, path[1:]))
        assert length == pytest.approx(graph.distance(ep.start, ep.goal), abs=1e-9)
        assert f["return"] == pytest.approx(sum(min(1.0, graph.edge_length(a, b))
                                                for a, b in zip(path, path[1:])) + 4.0, abs=1e-4)


def test_default_max_candidates_fits_every_real_scan(shared_r2r):
    connectivity = Connectivity(shared_r2r / "connectivity")
    degree = max(len(nb) for scan in connectivity.scans() for nb in connectivity.graph(scan).neighbors)
    assert degree <= 16 - 3  # max degree over all 90 scans is 13; the default 16 leaves room


def _reflected_connectivity(source, out) -> None:
    """Copy of the connectivity folder ``source`` reflected left to right (x -> -x) into ``out``."""
    out.mkdir()
    for f in sorted(source.glob("*_connectivity.json")):
        records = json.loads(f.read_text())
        for r in records:
            r["pose"][3] = -r["pose"][3]
        (out / f.name).write_text(json.dumps(records))


def test_mirrored_episodes_see_the_reflected_scene(sample_connectivity, sample_train, tmp_path):
    """An episode seen mirrored observes what the same episode sees in a truly reflected copy of its scan (x -> -x,
    start heading -> -heading, left/right words swapped), step by step along the same viewpoints; rewards and
    positions stay the real episode's."""
    reflected = tmp_path / "reflected"
    _reflected_connectivity(Path(sample_connectivity), reflected)
    episodes = load_r2r(sample_train)[:6]
    swapped = [ep._replace(heading=-ep.heading % (2 * math.pi),
                           instruction=re.sub(r"\b(left|right)\b", lambda m: {"left": "right", "right": "left"}[
                               m.group(1)], ep.instruction, flags=re.IGNORECASE)) for ep in episodes]
    n = len(episodes)
    mirrored = BatchedR2REnv(n, split_episodes=episodes, connectivity=sample_connectivity, history=True,
                             evaluation=True, mirror=1.0)
    truth = BatchedR2REnv(n, split_episodes=swapped, connectivity=reflected, history=True, evaluation=True)
    plain = BatchedR2REnv(n, split_episodes=episodes, connectivity=sample_connectivity, history=True,
                          evaluation=True)
    (om, _), (ot, _), (op, _) = mirrored.reset(), truth.reset(), plain.reset()
    assert any("left" in ep.instruction.lower() or "right" in ep.instruction.lower() for ep in episodes)
    np.testing.assert_array_equal(om["instruction"], ot["instruction"])
    for _ in range(6):
        np.testing.assert_array_equal(om["viewpoint"], ot["viewpoint"])
        np.testing.assert_allclose(om["heading"] % (2 * math.pi), ot["heading"] % (2 * math.pi), atol=1e-5)
        np.testing.assert_allclose(om["previous_action_geometry"], ot["previous_action_geometry"], atol=1e-5)
        np.testing.assert_allclose(om["odometry"], ot["odometry"], atol=1e-4)
        # candidate slots are ordered by absolute heading, which the reflection reverses: compare by viewpoint
        for b in range(n):
            slots_m = {int(v): om["candidate_geometry"][b, k] for k, v in enumerate(om["candidates"][b])
                       if om["candidate_mask"][b, k]}
            slots_t = {int(v): ot["candidate_geometry"][b, k] for k, v in enumerate(ot["candidates"][b])
                       if ot["candidate_mask"][b, k]}
            assert slots_m.keys() == slots_t.keys()
            for v in slots_m:
                np.testing.assert_allclose(slots_m[v], slots_t[v], atol=1e-5)
        assert np.abs(om["candidate_geometry"][..., 0]).max() > 0.1  # the sign flip was exercised
        # the oracle's move in the real scene, taken in all three
        oracle = op["oracle_next_action"]
        target = op["candidates"][np.arange(n), oracle]
        truth_action = np.array([int(np.flatnonzero(ot["candidates"][b] == target[b])[0]) if oracle[b] else 0
                                 for b in range(n)])
        om, rm, *_ = mirrored.step(oracle)
        op, rp, *_ = plain.step(oracle)
        ot, _, *_ = truth.step(truth_action)
        np.testing.assert_allclose(rm, rp)
        np.testing.assert_array_equal(om["viewpoint"], op["viewpoint"])


def test_mirror_draws_a_share_of_episode_starts_and_needs_no_features(sample_train):
    env = BatchedR2REnv(8, data=sample_train, mirror=0.5, seed=1)
    env.reset()
    shares = []
    for _ in range(40):
        env.step(np.zeros(8, np.int64))  # STOP: every slot starts a new episode
        shares.append(env._slots.mirror.mirrored.mean())
    assert 0.35 < np.mean(shares) < 0.65
    assert not BatchedR2REnv(8, data=sample_train, seed=1)._slots.mirror.mirrored.any()
    with pytest.raises(ValueError, match="mirror"):
        BatchedR2REnv(2, data=sample_train, mirror=0.5, include_features=True)
    with pytest.raises(ValueError, match="probability"):
        BatchedR2REnv(2, data=sample_train, mirror=1.5)
