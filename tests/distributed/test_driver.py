"""The training driver on Ray with the toy problem: learning end to end, actor failure recovery, resume."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import torch

from helpers import distributed_toy as toy
from valan.checkpoint import CheckpointManager, load_checkpoint
from valan.distributed.evaluation import EvalAggregator

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    ray.cloudpickle.register_pickle_by_value(toy)  # Ray workers do not have tests/ on their path
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def small_config(total_env_steps: int, **sections):
    config = toy.toy_config(
        learning=dict(mode="mixed", p_imitation=0.5, unroll_length=4, batch_size=8, lr=3e-3),
        distributed=dict(num_actors=2, envs_per_actor=4, max_batch=8, max_wait_ms=5.0, queue_size=8),
        run=dict(total_env_steps=total_env_steps, eval_every_env_steps=0, checkpoint_every_env_steps=1024, keep_last=2),
        data=dict(eval={"val": "all instructions"}))
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


def _kill_first_actor_once_running(stop: threading.Event, killed: list) -> None:
    """Once the learner has trained a few steps (so actors are mid-run), ray.kill actor 0 (Ray may restart it)."""
    while not stop.is_set():
        names = ray.util.list_named_actors()
        learner = [n for n in names if "-learner-" in n]
        actor = [n for n in names if "-actor-0-" in n]
        if learner and actor and ray.get(ray.get_actor(learner[0]).progress.remote())["step"] >= 5:
            ray.kill(ray.get_actor(actor[0]), no_restart=False)
            killed.append(actor[0])
            return
        time.sleep(0.1)


def test_learns_to_follow_instructions_from_near_chance_despite_a_killed_actor(ray_session, tmp_path):
    from valan.distributed.driver import train

    torch.manual_seed(0)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_actor_once_running, args=(stop, killed), daemon=True)
    killer.start()
    config = small_config(6000)
    try:
        result = train(toy.ToyProblem(), config, tmp_path, show_progress=False)
    finally:
        stop.set()
        killer.join()
    # The killed actor was restarted (a new incarnation) and training went on to its budget.
    assert killed, "the actor was never seen running"
    assert result.actor_failures == 1
    assert result.env_steps >= 6000
    assert len(result.actor_nodes) == config.distributed.num_actors
    # Learning: from near chance to > 0.8 success, each evaluation episode run exactly once.
    untrained, trained = result.evaluations[0]["val"], result.evaluations[result.step]["val"]
    assert untrained["episodes"] == trained["episodes"] == len(toy.all_instructions())
    assert untrained["sr"] <= 0.25  # chance is (1/4)^3
    assert trained["sr"] > 0.8
    # Outputs: metrics lines for both evaluations, leaderboard predictions, effective config, TensorBoard.
    history = EvalAggregator.read_history(tmp_path)
    assert [(line["step"], line["split"]) for line in history] == [(0, "val"), (result.step, "val")]
    assert len(list((tmp_path / "eval" / "val").glob("predictions-*.json"))) == 2
    assert (tmp_path / "config.yaml").is_file()
    assert any((tmp_path / "tensorboard").iterdir())


def test_resume_continues_step_count_and_optimizer_state(ray_session, tmp_path):
    from valan.distributed.driver import train

    config = small_config(1024, data=dict(eval={}))
    first = train(toy.ToyProblem(), config, tmp_path, show_progress=False)
    assert first.step == 1024 // (4 * 8)
    config.run.total_env_steps = 2048
    second = train(toy.ToyProblem(), config, tmp_path, resume=True, show_progress=False)
    assert second.step == 2 * first.step and second.env_steps == 2048
    manager = CheckpointManager(tmp_path / "checkpoints")
    state = load_checkpoint(manager.latest())
    assert state["step"] == second.step and state["env_steps"] == 2048
    adam_steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {second.step}  # Adam's moments were restored, not restarted


def test_resume_evaluates_a_checkpoint_the_stopped_run_left_unevaluated(ray_session, tmp_path):
    from valan.distributed.driver import train

    config = small_config(512)
    first = train(toy.ToyProblem(), config, tmp_path, show_progress=False)
    history = EvalAggregator.read_history(tmp_path)
    assert [line["step"] for line in history] == [0, first.step]  # the untrained policy and the end
    # What a signal leaves: the final evaluation missing (here: its line removed), the checkpoint there.
    path = tmp_path / "eval" / "metrics.jsonl"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:1]))
    config.run.total_env_steps = 1024
    second = train(toy.ToyProblem(), config, tmp_path, resume=True, show_progress=False)
    steps = [line["step"] for line in EvalAggregator.read_history(tmp_path)]
    assert steps == [0, first.step, second.step]  # the resumed weights first, before training on
    third = train(toy.ToyProblem(), config, tmp_path, resume=True, show_progress=False)  # nothing left to train
    assert third.step == second.step
    assert [line["step"] for line in EvalAggregator.read_history(tmp_path)] == steps  # evaluated already


def test_resume_without_checkpoint_is_an_input_error(ray_session, tmp_path):
    from valan.distributed.driver import train
    from valan.errors import InputError

    with pytest.raises(InputError, match="no checkpoint to resume"):
        train(toy.ToyProblem(), small_config(64, data=dict(eval={})), tmp_path, resume=True, show_progress=False)
