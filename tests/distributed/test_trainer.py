"""The learner's trainers: the child-process trainer makes exactly the thread trainer's updates, in the learner's
own (shared) parameters, carries its optimizer state across, and reports its failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import distributed_toy as toy
from valan.distributed.trainer import ProcessTrainer, ThreadTrainer, make_trainer
from valan.errors import InputError
from valan.learning.unroll import Unroll

T, B = 2, 3


def toy_batch(seed: int) -> Unroll:
    rng = np.random.default_rng(seed)
    first = np.zeros((T + 1, B), bool)
    first[0] = True
    zeros = np.zeros((T + 1, B))
    observations = {
        "instruction": rng.integers(toy.BRANCH_TOKEN + 1, toy.VOCAB, (T + 1, B, toy.INSTRUCTION_LENGTH)),
        "time_step": np.tile(np.arange(T + 1)[:, None], (1, B)),
        "candidate_mask": np.ones((T + 1, B, toy.NUM_ACTIONS), np.int8),
        "oracle_next_action": rng.integers(0, toy.NUM_ACTIONS, (T + 1, B)),
    }
    return Unroll(observations=observations, reward=zeros.astype(np.float32), done=zeros.astype(bool), first=first,
                  action=zeros.astype(np.int64), behaviour_logits=np.zeros((T + 1, B, toy.NUM_ACTIONS), np.float32),
                  policy_version=zeros.astype(np.int64), teacher_forced=np.zeros(B, bool),
                  initial_state=(np.zeros((B, 32), np.float32), np.zeros((B, 32), np.float32)))


def toy_agent() -> toy.ToyAgent:
    torch.manual_seed(0)
    return toy.ToyAgent()


CONFIG = toy.toy_config(learning=dict(unroll_length=T, batch_size=B, lr=0.05))


def test_the_process_trainer_updates_the_learners_parameters_as_the_thread_trainer_does():
    threaded, forked = toy_agent(), toy_agent()
    initial = {name: p.detach().clone() for name, p in forked.named_parameters()}
    thread_trainer = ThreadTrainer(threaded, toy.ToyProblem(), CONFIG, torch.device("cpu"))
    process_trainer = ProcessTrainer(forked, toy.ToyProblem(), CONFIG)
    try:
        for step in range(3):
            expected = thread_trainer.train(toy_batch(step), step)
            stats = process_trainer.train(toy_batch(step), step)
            assert stats.keys() == expected.keys()
            assert stats["loss"] == pytest.approx(expected["loss"], abs=1e-6)
        for (name, p), q in zip(forked.named_parameters(), threaded.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        # The child's updates are visible here (shared memory): imitation trains all but the value head.
        changed = {name for name, p in forked.named_parameters() if not torch.equal(p, initial[name])}
        assert changed == {name for name, _ in forked.named_parameters() if not name.startswith("value.")}
    finally:
        process_trainer.close()


def test_a_submitted_update_runs_in_the_child_before_its_result_is_asked_for():
    """The learner assembles the next batch between submit and result: the child must not wait for it."""
    import time

    threaded, forked = toy_agent(), toy_agent()
    thread_trainer = ThreadTrainer(threaded, toy.ToyProblem(), CONFIG, torch.device("cpu"))
    process_trainer = ProcessTrainer(forked, toy.ToyProblem(), CONFIG)
    try:
        before = [p.detach().clone() for p in forked.parameters()]
        process_trainer.submit(toy_batch(0), 0)
        deadline = time.monotonic() + 30
        while all(torch.equal(p, q) for p, q in zip(forked.parameters(), before)):
            assert time.monotonic() < deadline, "the submitted update did not run before result()"
            time.sleep(0.01)
        stats = process_trainer.result()
        thread_trainer.submit(toy_batch(0), 0)
        assert stats["loss"] == pytest.approx(thread_trainer.result()["loss"], abs=1e-6)
        for p, q in zip(forked.parameters(), threaded.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    finally:
        process_trainer.close()


def test_optimizer_state_crosses_to_a_new_process_trainer():
    trainer = ProcessTrainer(toy_agent(), toy.ToyProblem(), CONFIG)
    try:
        trainer.train(toy_batch(0), 0)
        state = trainer.optimizer_state()
    finally:
        trainer.close()
    assert state["state"] and all(s["step"] == 1 for s in state["state"].values())
    fresh = ProcessTrainer(toy_agent(), toy.ToyProblem(), CONFIG)
    try:
        assert not fresh.optimizer_state()["state"]
        fresh.load_optimizer_state(state)
        loaded = fresh.optimizer_state()
        for key, values in state["state"].items():
            torch.testing.assert_close(loaded["state"][key]["exp_avg"], values["exp_avg"])
    finally:
        fresh.close()


def test_a_failed_update_is_reported_and_the_trainer_goes_on():
    trainer = ProcessTrainer(toy_agent(), toy.ToyProblem(), CONFIG)
    try:
        broken = toy_batch(0)
        del broken.observations["oracle_next_action"]
        with pytest.raises(RuntimeError, match="in the trainer process: KeyError: 'oracle_next_action'"):
            trainer.train(broken, 0)
        assert "loss" in trainer.train(toy_batch(0), 0)
    finally:
        trainer.close()


def test_a_dead_trainer_process_is_reported():
    trainer = ProcessTrainer(toy_agent(), toy.ToyProblem(), CONFIG)
    trainer._process.kill()
    trainer._process.join()
    with pytest.raises(RuntimeError, match="the trainer process died"):
        trainer.train(toy_batch(0), 0)
    trainer.close()


def test_auto_trains_in_a_process_on_cpu():
    trainer = make_trainer("auto", toy_agent(), toy.ToyProblem(), CONFIG, torch.device("cpu"))
    try:
        assert isinstance(trainer, ProcessTrainer)
    finally:
        trainer.close()
    assert isinstance(make_trainer("thread", toy_agent(), toy.ToyProblem(), CONFIG, torch.device("cpu")), ThreadTrainer)
    with pytest.raises(InputError, match="distributed.trainer=process needs the learner on CPU, but it runs on cuda"):
        make_trainer("process", toy_agent(), toy.ToyProblem(), CONFIG, torch.device("cuda"))
