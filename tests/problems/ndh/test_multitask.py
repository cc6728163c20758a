"""The multitask problem (R2R + NDH): slot shares, mixed environments whose unrolls carry their task, per-task
loss statistics, per-task evaluation splits and config errors."""

from __future__ import annotations

import pytest
import torch

from helpers.teacher_forcing import teacher_forced_unroll

from valan.config import apply_overrides
from valan.configs import config_path
from valan.distributed.evaluation import leaderboard_predictions
from valan.errors import InputError
from valan.learning.losses import unroll_loss
from valan.problems import get_problem, load_train_config
from valan.problems.multitask import slot_counts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = ["agent.hidden_dim=32", "agent.embed_dim=16", "agent.geometry_dim=8"]


@pytest.fixture(scope="module")
def setup():
    return get_problem("multitask"), apply_overrides(load_train_config(config_path("r2r_ndh.yaml")), SMALL)


def test_slot_counts_follow_the_shares():
    assert slot_counts([0.5, 0.5], 8) == [4, 4]
    assert slot_counts([0.25, 0.75], 8) == [2, 6]
    assert slot_counts([1.0, 0.01], 4) == [3, 1]  # every task keeps a slot
    with pytest.raises(InputError, match="envs_per_actor"):
        slot_counts([1, 1, 1], 2)


def run_oracle(env, steps: int):
    obs, _ = env.reset()
    seen, finished = [obs], []
    for _ in range(steps):
        obs, _, _, infos = env.step(obs["oracle_next_action"])
        seen.append(obs)
        finished += infos["finished"]
        if env.evaluation and env.finished:
            break
    return seen, finished


def test_training_env_mixes_the_tasks_by_share(setup):
    problem, config = setup
    config = apply_overrides(config, ["tasks.r2r.share=0.25", "tasks.ndh.share=0.75"])
    env = problem.make_env(config, "train", 8, seed=0, evaluation=False)
    seen, finished = run_oracle(env, 30)
    assert (seen[0]["task"] == [0, 0, 1, 1, 1, 1, 1, 1]).all()
    assert {"r2r", "ndh"} == {r["task"] for r in finished}
    for record in finished:
        assert (record["slot"] < 2) == (record["task"] == "r2r")
        assert ("instr_id" if record["task"] == "r2r" else "inst_idx") in record
        prediction = problem.prediction(record)
        assert set(prediction) == {"instr_id" if record["task"] == "r2r" else "inst_idx", "trajectory"}


def test_evaluation_covers_every_tasks_split_with_its_metrics(setup):
    problem, config = setup
    assert list(config.data.eval) == ["r2r/val_seen", "ndh/val"]
    for split, key, metric in (("r2r/val_seen", "instr_id", "ndtw"), ("ndh/val", "inst_idx", "goal_progress")):
        env = problem.make_env(config, split, 16, seed=0, evaluation=True)
        _, finished = run_oracle(env, 1000)
        predictions = leaderboard_predictions(problem, finished)
        assert [p[key] for p in predictions] == sorted(p[key] for p in predictions)
        metrics = problem.evaluate(config, split, predictions)
        assert metrics["num_episodes"] == 87 and metrics["success_rate"] == 1.0 and metric in metrics


def test_loss_reports_each_task_over_its_own_steps(setup):
    problem, config = setup
    torch.manual_seed(0)
    agent = problem.make_agent(config)
    env = problem.make_env(config, "train", 6, seed=0, evaluation=False)
    unroll = teacher_forced_unroll(env, agent, 8, seed=0)
    loss, stats = problem.loss(agent, unroll, config)
    assert stats["r2r/step_share"] == pytest.approx(0.5) and stats["ndh/step_share"] == pytest.approx(0.5)
    output, _ = agent(unroll.observations, unroll.initial_state, unroll.first.bool())
    for task, columns in (("r2r", slice(0, 3)), ("ndh", slice(3, 6))):
        part = unroll._replace(observations={k: v[:, columns] for k, v in unroll.observations.items()},
                               **{name: getattr(unroll, name)[:, columns] for name in
                                  ("reward", "done", "first", "action", "behaviour_logits", "policy_version")},
                               teacher_forced=unroll.teacher_forced[columns],
                               initial_state=tuple(s[columns] for s in unroll.initial_state))
        _, alone = unroll_loss(output.logits[:, columns], output.values[:, columns], part, config.learning)
        assert stats[f"{task}/loss"] == pytest.approx(alone["loss"], rel=1e-5)
        assert stats[f"{task}/imitation_accuracy"] == pytest.approx(alone["imitation_accuracy"])
    assert float(loss.detach()) == pytest.approx(stats["loss"])


@pytest.mark.parametrize("override, message", [
    ("data.eval.val_seen=R2R_sample_val_seen.json", "<task>/<split>"),
    ("data.train=[R2R_sample_train.json]", "tasks.<problem>.train"),
    ("tasks.ndh.share=0", "share must be positive"),
])
def test_config_errors_are_one_line(setup, override, message):
    _, config = setup
    with pytest.raises(InputError, match=message):
        apply_overrides(config, [override])


def test_only_matterport_problems_can_be_tasks(setup):
    problem, config = setup
    with pytest.raises(InputError, match="cannot share"):
        problem.task_config(apply_overrides(config, ["tasks.touchdown.train=[x.json]"]), "touchdown")


def test_check_inputs_checks_every_task(setup, tmp_path):
    problem, config = setup
    problem.check_inputs(config)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"inst_idx": 1}]')
    with pytest.raises(InputError, match="bad.json"):
        problem.check_inputs(apply_overrides(config, [f"tasks.ndh.train=[{bad}]"]))
