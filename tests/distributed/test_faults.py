"""Fault injection on short toy runs: the eval actor and the learner are killed mid-run, and the run still
finishes its budget, with the evaluations and the loss report (env steps lost) it promises. (A killed training
actor: tests/distributed/test_driver.py; two runs on one folder, an old run's folder, SIGINT then --resume:
tests/commands/test_train_cli.py; a kill during a checkpoint write: tests/test_runs.py.)"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from helpers import distributed_toy as toy

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

UNROLL, BATCH = 4, 8  # env steps per learner step: 32
CHECKPOINT_EVERY = 512  # env steps (16 learner steps)


@pytest.fixture(scope="module")
def ray_session():
    ray.cloudpickle.register_pickle_by_value(toy)  # Ray workers do not have tests/ on their path
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    yield
    ray.shutdown()


def fault_config(total_env_steps: int, evaluate: bool):
    return toy.toy_config(
        learning=dict(mode="mixed", unroll_length=UNROLL, batch_size=BATCH, lr=3e-3),
        distributed=dict(num_actors=2, envs_per_actor=4, max_batch=8, max_wait_ms=5.0, queue_size=8),
        run=dict(total_env_steps=total_env_steps, eval_every_env_steps=0, checkpoint_every_env_steps=CHECKPOINT_EVERY,
                 keep_last=2),
        data=dict(eval={"val": "all instructions"} if evaluate else {}))


def _named(part: str):
    names = [n for n in ray.util.list_named_actors() if part in n]
    return ray.get_actor(names[0]) if names else None


def kill_when(condition, part: str, stop: threading.Event, killed: list, no_restart: bool = False,
              delay_s: float = 0.0) -> threading.Thread:
    """A thread that kills the first named actor containing ``part`` ``delay_s`` seconds after ``condition()``
    holds."""
    def watch() -> None:
        while not stop.is_set():
            with_name = _named(part)
            if with_name is not None and condition():
                time.sleep(delay_s)
                ray.kill(with_name, no_restart=no_restart)
                killed.append(time.monotonic())
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def learner_step() -> int:
    learner = _named("-learner-0")
    try:
        return ray.get(learner.progress.remote(), timeout=5)["step"] if learner is not None else 0
    except ray.exceptions.RayError:
        return 0


def run_with_killer(problem, config, out_dir, condition, part: str, no_restart: bool = False, delay_s: float = 0.0):
    from valan.distributed.driver import train

    stop, killed, said = threading.Event(), [], []
    killer = kill_when(condition, part, stop, killed, no_restart, delay_s)
    try:
        result = train(problem, config, out_dir, show_progress=False, say=said.append)
    finally:
        stop.set()
        killer.join()
    assert killed, f"no actor named *{part}* was killed"
    return result, said


def test_a_killed_learner_restarts_from_the_newest_checkpoint_and_the_loss_is_reported(ray_session, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = fault_config(1536, evaluate=False)
    # Learner steps of >= 0.1 s: killed at step >= 20 plus 0.8 s (< step 32, the next checkpoint), the driver
    # (polling every 0.5 s) has seen some of the steps after the checkpoint of step 16.
    result, said = run_with_killer(toy.SlowToyProblem(train_delay_s=0.1), config, tmp_path,
                                   lambda: learner_step() >= 20, "-learner-0", no_restart=True, delay_s=0.8)
    assert result.learner_failures == 1 and result.env_steps == 1536 and result.step == 1536 // (UNROLL * BATCH)
    # What was trained since the checkpoint (env step 512) is lost: no more than one checkpoint interval.
    assert 4 * UNROLL * BATCH <= result.env_steps_lost < CHECKPOINT_EVERY
    (line,) = [s for s in said if "learner failed" in s]
    assert f"ckpt-000000016.pt (env step 512): {result.env_steps_lost} env steps lost" in line
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    (scalar,) = events.Scalars("faults/learner_env_steps_lost")
    assert scalar.value == result.env_steps_lost and scalar.step == 512


def test_a_killed_eval_actor_is_restarted_and_its_evaluation_retried(ray_session, tmp_path):
    marker = tmp_path / "evaluating"
    config = fault_config(640, evaluate=True)
    result, said = run_with_killer(toy.SlowToyProblem(str(marker), eval_delay_s=0.1), config, tmp_path / "run",
                                   marker.exists, "-eval-0-")
    # Killed during the step-0 evaluation: it was retried on the restarted actor; training was not disturbed.
    assert result.eval_actor_failures == 1 and result.evaluations_skipped == 0
    assert sorted(result.evaluations) == [0, result.step] and result.step == 640 // (UNROLL * BATCH)
    assert result.evaluations[0]["val"]["episodes"] == len(toy.all_instructions())
    assert any("eval actor 0 failed evaluating val at step 0; retrying" in s for s in said)
    assert (tmp_path / "run" / "checkpoints" / "BEST.pt").is_file()
