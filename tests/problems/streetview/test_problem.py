"""The Touchdown follower, the touchdown/map2seq problems and ``valan evaluate streetview --checkpoint``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from valan.checkpoint import save_checkpoint
from valan.cli import main
from valan.problems.r2r.config import R2RConfig
from valan.config import to_dict
from valan.problems import load_train_config
from valan.configs import config_path
from valan.data import sample_path
from valan.envs.streetview.env import BatchedTouchdownEnv, TouchdownEnv
from valan.problems import get_problem
from valan.distributed.evaluation import EvalAggregator, leaderboard_predictions, local_greedy_episodes
from valan.learning.unroll import Step, Unroll
from valan.problems.streetview.problem import Map2seqConfig, TouchdownConfig, feature_store, vocabulary

MAP2SEQ = sample_path("streetview/map2seq_sample.jsonl")
torch.set_num_threads(1)  # the test machines' few cores are shared


def small_config(name: str = "map2seq_sample.yaml", *overrides: str):
    return load_train_config(config_path(name), ["agent.hidden_dim=32", "agent.embed_dim=16", "agent.view_dim=8",
                                           "data.synthetic_dim=16", *overrides])


def as_tensors(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}


def test_configs_pick_the_problem_classes_and_defaults():
    touchdown, map2seq = (load_train_config(config_path("touchdown_sample.yaml")),
                          load_train_config(config_path("map2seq_sample.yaml")))
    assert type(touchdown) is TouchdownConfig and type(map2seq) is Map2seqConfig
    assert (touchdown.env.max_steps, touchdown.env.eval_max_steps) == (55, 50)
    assert map2seq.data.train == ["streetview/map2seq_sample.jsonl"] and map2seq.env.max_instruction_length == 100
    assert get_problem("map2seq").metric_names == ("task_completion", "spd", "sed")


@pytest.mark.parametrize("name", ["touchdown", "map2seq"])
def test_shipped_street_view_runs_train_outside_the_unseen_area_and_evaluate_inside_it(name):
    config = load_train_config(config_path(f"{name}.yaml"))
    assert config.problem == name and config.data.train == ["runs/splits/map2seq/train.jsonl"]
    assert config.data.eval["dev_seen"] == "runs/splits/map2seq/dev_seen.jsonl"
    unseen = "runs/splits/map2seq/dev_unseen.jsonl" if name == "map2seq" else "touchdown_unseen_dev_sample.jsonl"
    assert config.data.eval["dev_unseen"].endswith(unseen)
    assert config.resolve_visual() == "none"  # synthetic features


@pytest.mark.parametrize("visual", ["features", "none"])
def test_acting_step_by_step_equals_one_pass_over_the_sequence(visual):
    torch.manual_seed(0)
    config = small_config("map2seq_sample.yaml", f"agent.visual={visual}")
    problem = get_problem("map2seq")
    agent = problem.make_agent(config)
    env = problem.make_env(config, "train", 3, seed=1, evaluation=False)
    obs, _ = env.reset()
    first = np.ones(3, bool)
    state = agent.initial_state(3)
    steps, logits = [], []
    rng = np.random.default_rng(0)
    for _ in range(50):  # long enough for episodes to end (random actions often STOP) and restart
        with torch.inference_mode():
            out, state = agent(as_tensors(obs), state, torch.as_tensor(first).unsqueeze(0))
        logits.append(out.logits[0])
        steps.append((obs, first))
        obs, _, done, _ = env.step(rng.integers(0, 4, size=3))
        first = done
    assert np.stack([f for _, f in steps])[1:].any()  # an episode ended and restarted mid-sequence
    sequence = {k: torch.as_tensor(np.stack([o[k] for o, _ in steps])) for k in steps[0][0]}
    firsts = torch.as_tensor(np.stack([f for _, f in steps]))
    out, _ = agent(sequence, agent.initial_state(3), firsts)  # gradients on: learning's code path
    assert out.logits.shape == (50, 3, 4) and out.values.shape == (50, 3)
    torch.testing.assert_close(out.logits, torch.stack(logits), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key, layer", [("link_layout", "layout_projection"), ("heading_change", "turn_projection")])
def test_the_follower_reads_the_junction_and_turn_and_older_checkpoints_load_blind_to_them(key, layer):
    torch.manual_seed(0)
    config = small_config("map2seq_sample.yaml")
    problem = get_problem("map2seq")
    agent = problem.make_agent(config).eval()
    env = problem.make_env(config, "train", 4, seed=1, evaluation=False)
    obs, _ = env.reset()
    obs, _, _, _ = env.step(np.full(4, 1))  # LEFT: a turn to report
    assert obs["link_layout"].shape == (4, 8) and (obs["link_layout"].sum(1) >= 1).all()
    assert (obs["heading_change"] != 0).all()  # on a street LEFT turns round (about 180 degrees)
    first = torch.zeros(1, 4, dtype=torch.bool)

    def logits(model, observation):
        with torch.inference_mode():
            return model(as_tensors(observation), model.initial_state(4), first)[0].logits

    other = {**obs, "link_layout": 1 - obs["link_layout"], "heading_change": -obs["heading_change"]}
    other = {**obs, key: other[key]}
    assert not torch.allclose(logits(agent, obs), logits(agent, other))  # the input reaches the policy
    old = {k: v for k, v in agent.state_dict().items() if not k.startswith(f"{layer}.")}
    loaded = problem.make_agent(config).eval()
    loaded.load_state_dict(old)  # a checkpoint saved before the input existed
    assert not any(p.any() for p in getattr(loaded, layer).parameters())
    torch.testing.assert_close(logits(loaded, obs), logits(loaded, other))


def test_agent_rolls_table_features_like_the_environment():
    config = small_config("touchdown_sample.yaml", "agent.visual=features")
    problem = get_problem("touchdown")
    agent = problem.make_agent(config)
    env = TouchdownEnv(features=feature_store(config), include_features=True)
    obs, _ = env.reset(seed=5)
    for action in (1, 0, 0, 2):
        obs, *_ = env.step(action)
    tensors = as_tensors({k: v[None] for k, v in obs.items()})
    without = {k: v for k, v in tensors.items() if k != "features"}
    np.testing.assert_allclose(agent.panorama_views(without)[0, 0].numpy(), obs["features"], rtol=0, atol=0)


def imitation_unrolls(agent, env, unroll_length: int):
    """Teacher-forced SEED-RL unrolls: T + 1 steps, step 0 = the previous unroll's last step."""
    obs, _ = env.reset()
    first = np.ones(env.num_envs, bool)
    reward, done = np.zeros(env.num_envs, np.float32), np.zeros(env.num_envs, bool)
    state = agent.initial_state(env.num_envs)
    last = None
    while True:
        steps = [last] if last is not None else []
        while len(steps) < unroll_length + 1:
            before = tuple(s.numpy() for s in state)
            with torch.no_grad():
                out, state = agent(as_tensors(obs), state, torch.as_tensor(first).unsqueeze(0))
            action = obs["oracle_next_action"]
            steps.append((Step(obs, reward, done, first, action, out.logits[0].numpy(), np.zeros_like(action)),
                          before))
            obs, reward, done, _ = env.step(action)
            first = done
        last = steps[-1]
        yield Unroll.from_steps([s for s, _ in steps], np.ones(env.num_envs, bool), steps[0][1]).to_tensors()


@pytest.mark.slow
def test_imitation_learns_to_follow_training_routes(tmp_path, capsys):
    """Teacher forcing on 3 map2seq routes (synthetic features: language and graph only) until the greedy agent
    follows them; then ``valan evaluate streetview --checkpoint`` scores it the same way."""
    torch.manual_seed(0)
    data = tmp_path / "three.jsonl"
    data.write_text("".join(MAP2SEQ.read_text().splitlines(keepends=True)[:3]))
    config = small_config("map2seq_sample.yaml", f"data.train=[{data}]", f"data.eval.dev={data}", "data.vocab_min_count=1",
                          "learning.mode=imitation", "agent.visual=features")  # train = eval: memorising pays
    problem = get_problem("map2seq")
    agent = problem.make_agent(config)
    env = BatchedTouchdownEnv(3, data=data, vocab=vocabulary(config), max_instruction_length=100, seed=0)
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3)
    unrolls = imitation_unrolls(agent, env, 20)
    losses = []
    for _ in range(70):
        loss, _ = problem.loss(agent, next(unrolls), config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    agent.eval()
    metrics = problem.evaluate(config, "dev", leaderboard_predictions(problem, local_greedy_episodes(
        problem, config, agent, "dev", num_envs=3)))
    assert metrics["task_completion"] >= 2 / 3 and metrics["num_episodes"] == 3

    save_checkpoint(tmp_path / "agent.pt", {"model": agent.state_dict(), "config": to_dict(config),
                                            "problem": "map2seq", "step": 70})
    capsys.readouterr()
    code = main(["evaluate", "streetview", "--data", str(data), "--checkpoint", str(tmp_path / "agent.pt"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["task_completion"] == metrics["task_completion"]


def test_evaluate_checkpoint_of_another_problem_is_refused(tmp_path, capsys):
    save_checkpoint(tmp_path / "r2r.pt", {"model": {}, "config": to_dict(R2RConfig()), "problem": "r2r"})
    code = main(["evaluate", "streetview", "--checkpoint", str(tmp_path / "r2r.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "a 'r2r' checkpoint, not a Touchdown or map2seq one" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name, key", [("touchdown", "route_id"), ("map2seq", "id")])
def test_evaluations_write_the_tasks_prediction_key_and_the_cli_scores_them(tmp_path, capsys, name, key):
    """An eval writes predictions keyed as the task's community format (Touchdown ``route_id``, map2seq ``id``);
    ``valan evaluate streetview --predictions`` scores that file, and ``--checkpoint`` (the same acting code, in
    process) scores what the eval scored."""
    torch.manual_seed(0)
    config = small_config(f"{name}_sample.yaml", "env.eval_max_steps=8")
    problem = get_problem(name)
    agent = problem.make_agent(config).eval()
    aggregator = EvalAggregator(problem, config, tmp_path)
    metrics = aggregator.record("dev", 0, 0, local_greedy_episodes(problem, config, agent, "dev"))
    aggregator.close()
    predictions_file = tmp_path / "eval" / "dev" / "predictions-000000000.json"
    predictions = json.loads(predictions_file.read_text())
    assert all(set(p) == {key, "trajectory"} for p in predictions) and len(predictions) == metrics["num_episodes"]
    data = config.data.split_files("dev")[0]
    capsys.readouterr()
    assert main(["evaluate", "streetview", "--data", data, "--predictions", str(predictions_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(metrics)
    save_checkpoint(tmp_path / "agent.pt", {"model": agent.state_dict(), "config": to_dict(config), "problem": name})
    assert main(["evaluate", "streetview", "--data", data, "--checkpoint", str(tmp_path / "agent.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(metrics)
