"""The Touchdown environment: gymnasium API, oracle reproduction of real routes, rewards, batching."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import valan.envs  # noqa: F401  (registers valan/Touchdown-v0)
from valan.data import sample_path
from valan.envs.streetview.dataset import load_routes, parse_routes
from valan.envs.streetview.env import BatchedTouchdownEnv, TouchdownEnv
from valan.envs.streetview.graph import load_graph, read_graph
from valan.envs.streetview.navigation import FORWARD, LEFT, RIGHT, STOP
from valan.errors import InputError
from valan.envs.streetview.metrics import evaluate_streetview

from helpers.graphs import write_graph

SAMPLES = ("streetview/touchdown_sample.jsonl", "streetview/map2seq_sample.jsonl")


def follow_oracle(data, graph_dir, action_space="discrete", max_steps=60):
    """Run every route of ``data`` with the oracle's actions; predictions and per-episode step counts."""
    env = BatchedTouchdownEnv(8, data=data, graph=graph_dir, action_space=action_space, max_steps=max_steps,
                              evaluation=True)
    obs, _ = env.reset()
    finished = []
    while not env.finished:
        obs, _, _, infos = env.step(obs["oracle_next_action"])
        finished.extend(infos["finished"])
    return [{"id": f["id"], "trajectory": f["trajectory"]} for f in finished], [f["steps"] for f in finished]


def one_route_env(tmp_path, record: dict, max_steps: int) -> TouchdownEnv:
    """A TouchdownEnv on the toy graph of ``helpers.graphs`` holding the one map2seq ``record``."""
    data = tmp_path / "routes.jsonl"
    data.write_text(json.dumps(record) + "\n")
    return TouchdownEnv(data=data, graph=write_graph(tmp_path / "graph"), vocab_min_count=1, max_steps=max_steps)


def test_make_with_no_arguments_and_check_env():
    env = gymnasium.make("valan/Touchdown-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["id"] in env.unwrapped.world.id_index
    check_env(env.unwrapped, skip_render_check=True)
    check_env(TouchdownEnv(action_space="panoramic", include_features=True), skip_render_check=True)
    assert env.action_space.n == 4 and TouchdownEnv(action_space="panoramic").action_space.n == 19


@pytest.mark.parametrize("action_space", ["discrete", "panoramic"])
@pytest.mark.parametrize("sample", SAMPLES)
def test_oracle_reproduces_every_bundled_route(sample, action_space):
    predictions, _ = follow_oracle(sample_path(sample), None, action_space)
    summary, per_episode = evaluate_streetview(load_routes(sample_path(sample)), predictions, load_graph())
    assert summary["num_episodes"] == len(load_routes(sample_path(sample)))
    assert all(e["task_completion"] == 1.0 and e["sed"] == 1.0 and e["spd"] == 0 for e in per_episode)


@pytest.mark.parametrize("name", ["touchdown_unseen_dev_sample.jsonl", "map2seq_seen_dev.jsonl"])
def test_oracle_reproduces_every_real_dev_route(shared_streetview, name):
    """All 100 Touchdown dev-sample and 800 map2seq dev routes on the full 29,641-panorama graph."""
    predictions, steps = follow_oracle(shared_streetview / name, shared_streetview / "graph")
    routes = load_routes(shared_streetview / name)
    summary, _ = evaluate_streetview(routes, predictions, load_graph(shared_streetview / "graph"))
    assert summary == {"task_completion": 1.0, "spd": 0.0, "sed": 1.0, "num_episodes": len(routes)}
    assert max(steps) <= 55  # within the training step limit (3 map2seq dev routes need 51 > 50 actions)


def test_start_heading_is_not_snapped_and_touchdown_starts_need_turning():
    env = TouchdownEnv(data=sample_path(SAMPLES[0]))
    route = env.world.routes[0]
    obs, _ = env.reset(options={"episode_id": route.id})
    assert route.start_heading == 0.0 and obs["heading"] == 0.0  # Touchdown routes start at heading 0
    assert obs["panorama"] == env.graph.index[route.start] and obs["time_step"] == 0
    assert obs["previous_action"] == 4 and obs["num_links"] == env.graph.out_degree(int(obs["panorama"]))
    obs, _, _, _, _ = env.step(LEFT)
    assert obs["heading"] in env.graph.links(int(obs["panorama"]))[0] and obs["previous_action"] == LEFT


def test_heading_change_is_the_signed_turn_of_the_last_action(tmp_path):
    env = one_route_env(tmp_path, {"id": 3, "navigation_text": "turn right and follow the bend", "start_heading": 0,
                                   "route_panoids": ["X", "E", "E2"]}, max_steps=8)
    obs, _ = env.reset(options={"episode_id": 3})
    assert obs["heading_change"] == 0.0 and env.observation_space.contains(obs)
    changes = []
    for action in (RIGHT, FORWARD, FORWARD, LEFT, LEFT):  # turn to E, X -> E, E -> E2 round the bend, dead end
        obs, _, _, _, _ = env.step(action)
        changes.append(float(obs["heading_change"]))
    # E's onward link leaves at 100 degrees; E2's only link points back (280): turning there is a U-turn
    assert changes == [90.0, 0.0, 10.0, 180.0, 0.0]
    env.reset(options={"episode_id": 3})
    obs, _, _, _, _ = env.step(LEFT)
    assert obs["heading_change"] == -90.0


def test_rewards_progress_minus_step_cost_and_stop_bonus(tmp_path):
    env = one_route_env(tmp_path, {"id": 1, "navigation_text": "go north twice", "start_heading": 0,
                                   "route_panoids": ["X", "N", "N2"]}, max_steps=4)
    env.reset(options={"episode_id": 1})
    _, r, terminated, _, _ = env.step(LEFT)  # a turn: no progress
    assert r == pytest.approx(-0.2) and not terminated
    env.step(2)  # RIGHT, back to facing north
    _, r, _, _, _ = env.step(FORWARD)  # X -> N: one hop closer to N2
    assert r == pytest.approx(1 - 0.2)
    _, r, terminated, _, info = env.step(STOP)  # N is adjacent to the goal N2: task completed
    assert r == pytest.approx(1.0) and terminated
    assert info["trajectory"] == ["X", "N"] and info["task_completion"] == 1.0 and info["spd"] == 1
    assert info["steps"] == 4 and info["return"] == pytest.approx(-0.4 + 0.8 + 1.0)
    env.reset(options={"episode_id": 1})
    _, r, terminated, _, _ = env.step(STOP)  # X is two hops from the goal
    assert r == pytest.approx(-1.0) and terminated


def test_step_limit_ends_the_episode_as_if_stopped(tmp_path):
    env = one_route_env(tmp_path, {"id": 7, "navigation_text": "x", "start_heading": 90,
                                   "route_panoids": ["X", "N", "N2", "D"]}, max_steps=2)
    env.reset()
    _, _, terminated, _, _ = env.step(LEFT)
    assert not terminated
    _, r, terminated, truncated, info = env.step(LEFT)
    assert terminated and not truncated and r == pytest.approx(-0.2 - 1.0) and info["steps"] == 2
    with pytest.raises(RuntimeError, match="reset"):
        env.step(LEFT)


def test_batched_evaluation_runs_every_route_exactly_once_then_idles():
    routes = load_routes(sample_path(SAMPLES[0]))
    env = BatchedTouchdownEnv(8, data=sample_path(SAMPLES[0]), evaluation=True)
    assert env._slots.max_steps == 50  # Touchdown's evaluation limit
    obs, infos = env.reset()
    assert infos["active"].all() and obs["instruction"].shape[0] == 8
    ids = []
    rng = np.random.default_rng(0)
    while not env.finished:
        actions = rng.integers(0, 4, size=8)
        before = obs["time_step"].copy()
        obs, reward, done, infos = env.step(actions)
        ids.extend(f["id"] for f in infos["finished"])
        restarted = done & infos["active"]
        assert (obs["time_step"][restarted] == 0).all()  # auto-reset: the next episode's first observation
        assert (reward[~infos["active"] & ~done] == 0).all()
        assert (obs["time_step"][~done & infos["active"]] == before[~done & infos["active"]] + 1).all()
    assert sorted(ids) == sorted(r.id for r in routes)


def test_batched_training_order_is_seeded_and_cycles():
    def first_ids(seed):
        env = BatchedTouchdownEnv(4, data=sample_path(SAMPLES[1]), seed=seed)
        env.reset()
        assert env._slots.max_steps == 55
        return [env.world.routes[e].id for e in env._slots.episode]

    assert first_ids(3) == first_ids(3) and first_ids(3) != first_ids(4)


def test_unknown_route_panorama_and_bad_records_name_the_route(tmp_path):
    graph_dir = write_graph(tmp_path / "graph")
    data = tmp_path / "routes.jsonl"
    data.write_text(json.dumps({"route_id": 42, "navigation_text": "x", "start_heading": 0.0, "end_heading": 1.5,
                                "route_panoids": ["X", "Q"]}) + "\n")
    with pytest.raises(InputError, match=r"routes\.jsonl: route_id 42: 1 of 2 panoramas are not in the graph: 1 'Q'"):
        TouchdownEnv(data=data, graph=read_graph(graph_dir))
    with pytest.raises(InputError, match=r"src: route_id 5: field 'start_heading' must be a finite number"):
        parse_routes([{"route_id": 5, "navigation_text": "x", "route_panoids": ["X"], "start_heading": "0"}], "src")
    with pytest.raises(InputError, match=r"src: id 5: duplicate route id"):
        parse_routes([{"id": 5, "navigation_text": "x", "route_panoids": ["X"], "start_heading": 0}] * 2, "src")
    with pytest.raises(InputError, match=r"src: record 1: missing field 'route_id' \(Touchdown\) or 'id'"):
        parse_routes([{"navigation_text": "x"}], "src")


def test_touchdown_records_keep_sdr_fields():
    route = load_routes(sample_path(SAMPLES[0]))[0]
    assert route.format == "touchdown" and route.end_heading is not None
    assert {"td_location_text", "main_pano", "main_static_center"} <= set(route.fields)
    m = load_routes(sample_path(SAMPLES[1]))[0]
    assert m.format == "map2seq" and m.end_heading is None and "instructions_id" in m.fields


def test_rolled_features_in_observations_match_the_store(tmp_path):
    from valan.envs.streetview.views import rolled_features
    from valan.features.stores import SyntheticFeatures

    store = SyntheticFeatures(dim=6, views=8)
    env = TouchdownEnv(features=store, include_features=True)
    obs, _ = env.reset(seed=2)
    obs, *_ = env.step(LEFT)
    g = env.graph
    raw = store.get(g.name, g.panoids[int(obs["panorama"])])
    np.testing.assert_array_equal(obs["features"], rolled_features(raw, float(obs["heading"]), float(obs["pano_yaw"])))
    table = env.feature_table()
    assert table.shape == (len(g), 8, 6)
    np.testing.assert_array_equal(table[int(obs["panorama"])], raw)


class TouchdownRules:
    """The Touchdown navigator's rules (lil-lab/touchdown ``base_navigator.py``), re-implemented as a reference:
    links keyed by integer heading in file order; FORWARD needs the heading to be a link heading, then snaps to
    the new panorama's link nearest the old heading (first listed on ties); LEFT/RIGHT go to the nearest link
    heading counter-clockwise/clockwise other than the current one; moves into panoramas with fewer than two
    links are refused."""

    def __init__(self, graph_dir):
        self.links: dict[str, dict[int, str]] = {}
        for line in (graph_dir / "links.txt").read_text().splitlines():
            start, heading, end = line.split(",")
            self.links.setdefault(start, {})[int(heading)] = end

    def nearest(self, heading: int, panoid: str, how: str) -> int:
        best, best_diff = heading, None
        for h in self.links.get(panoid, {}):
            if h == heading and how != "forward":
                continue
            diff = {"forward": 180 - abs(abs(h - heading) - 180), "left": (heading - h) % 360,
                    "right": (h - heading) % 360}[how]
            if best_diff is None or diff < best_diff:
                best, best_diff = h, diff
        return best

    def step(self, panoid: str, heading: int, action: int) -> tuple[str, int, bool]:
        """``(panoid, heading, refused)`` after FORWARD (0), LEFT (1) or RIGHT (2)."""
        if action == FORWARD:
            target = self.links[panoid].get(heading, panoid)
            if len(self.links.get(target, {})) < 2:
                return panoid, heading, True
            return target, self.nearest(heading, target, "forward"), False
        return panoid, self.nearest(heading, panoid, "left" if action == LEFT else "right"), False


def test_oracle_actions_replay_identically_under_touchdown_navigator_rules(shared_streetview):
    """map2seq routes start on a link heading, where valan's rules and Touchdown's agree: replaying the oracle's
    actions with Touchdown's rules visits the same panoramas, except where Touchdown refuses a dead end."""
    rules = TouchdownRules(shared_streetview / "graph")
    env = BatchedTouchdownEnv(1, data=shared_streetview / "map2seq_seen_dev.jsonl", graph=shared_streetview / "graph",
                              evaluation=True, max_steps=60)
    obs, _ = env.reset()
    same = refused = 0
    while not env.finished:
        route = env.world.routes[int(env._slots.episode[0])]
        panoid, heading, path, was_refused = route.start, int(route.start_heading), [route.start], False
        while True:
            action = int(obs["oracle_next_action"][0])
            obs, _, _, infos = env.step(np.array([action]))
            if action == STOP:
                break
            panoid, heading, r = rules.step(panoid, heading, action)
            was_refused |= r
            if panoid != path[-1]:
                path.append(panoid)
        refused += was_refused
        same += not was_refused and path == infos["finished"][0]["trajectory"]
    assert (same, refused) == (799, 1)


@pytest.mark.parametrize("action_space", ["discrete", "panoramic"])
def test_mirrored_episodes_see_the_reflected_street_layout(tmp_path, action_space):
    """A route seen mirrored observes what it sees on a truly reflected copy of the graph (every link heading h ->
    360 - h, start heading likewise, left/right words swapped) under the same actions; the panoramas visited and
    the rewards are those of the real route."""
    import dataclasses
    import re

    source = sample_path("streetview/graph")
    reflected = tmp_path / "reflected"
    reflected.mkdir()
    (reflected / "nodes.txt").write_text((source / "nodes.txt").read_text())
    rows = [line.split(",") for line in (source / "links.txt").read_text().splitlines() if line]
    (reflected / "links.txt").write_text("".join(f"{a},{(360 - int(h)) % 360},{b}\n" for a, h, b in rows))
    routes = load_routes(sample_path("streetview/map2seq_sample.jsonl"), load_graph(source))[:6]
    swap = {"left": "right", "right": "left"}
    swapped = [dataclasses.replace(r, start_heading=(360.0 - r.start_heading) % 360.0,
                                   navigation_text=re.sub(r"\b(left|right)\b", lambda m: swap[m.group(1)],
                                                          r.navigation_text.lower()))
               for r in routes]
    vocab = BatchedTouchdownEnv(1, routes=routes, graph=source).world.vocab
    n = len(routes)
    kwargs = dict(action_space=action_space, vocab=vocab, evaluation=True, max_steps=40)
    mirrored = BatchedTouchdownEnv(n, routes=routes, graph=source, mirror=1.0, **kwargs)
    truth = BatchedTouchdownEnv(n, routes=swapped, graph=reflected, **kwargs)
    plain = BatchedTouchdownEnv(n, routes=routes, graph=source, **kwargs)
    (om, _), (ot, _), (op, _) = mirrored.reset(), truth.reset(), plain.reset()
    turned, straight = 0, [FORWARD, STOP] if action_space == "discrete" else [9, 18]
    for _ in range(40):
        for key in ("instruction", "panorama", "heading", "num_links", "link_layout", "previous_action",
                    "time_step"):
            np.testing.assert_array_equal(om[key], ot[key], err_msg=key)
        np.testing.assert_allclose(om["heading_change"], ot["heading_change"], atol=1e-4)
        # The oracle prefers LEFT for an exact U-turn in either frame, so only that label may differ
        differs = om["oracle_next_action"] != ot["oracle_next_action"]
        assert all(sorted(pair) == [LEFT, RIGHT] for pair in zip(om["oracle_next_action"][differs],
                                                                   ot["oracle_next_action"][differs]))
        actions = ot["oracle_next_action"]
        turned += int((~np.isin(actions, straight)).sum())
        om, rm, *_ = mirrored.step(actions)
        ot, rt, *_ = truth.step(actions)
        op, rp, *_ = plain.step(mirrored._slots.mirror_actions[actions])  # the same moves in the real frame
        np.testing.assert_allclose(rm, rt)
        np.testing.assert_allclose(rm, rp)
        np.testing.assert_array_equal(om["panorama"], op["panorama"])
        if mirrored.finished:
            break
    assert turned > 0  # the oracle turned, so the action swap was exercised
