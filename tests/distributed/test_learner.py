"""The learner in process (no Ray): weights-only warm start, evaluation snapshots, batches from unroll blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import distributed_toy as toy
from valan.checkpoint import save_checkpoint
from valan.distributed.learner import Learner, load_snapshot, weights_snapshot
from valan.errors import InputError
from valan.learning.unroll import Unroll


def make_learner(tmp_path, **kwargs) -> Learner:
    config = toy.toy_config(learning=dict(unroll_length=2, batch_size=3), distributed=dict(envs_per_actor=2))
    learner = Learner(toy.ToyProblem(), config, str(tmp_path), **kwargs)
    learner.setup()
    return learner


def test_init_from_loads_weights_only(tmp_path):
    source = toy.ToyAgent()
    with torch.no_grad():
        for p in source.parameters():
            p.fill_(0.25)
    path = save_checkpoint(tmp_path / "warm.pt", {"model": source.state_dict(), "step": 500, "env_steps": 9000})
    learner = make_learner(tmp_path / "run", init_from=str(path))
    try:
        assert all(torch.equal(p, torch.full_like(p, 0.25)) for p in learner.agent.parameters())
        assert learner.step == 0 and learner.env_steps == 0  # counters are not taken over
        assert not learner.trainer.optimizer_state()["state"]  # a fresh optimizer
    finally:
        learner.close()


def test_init_from_a_file_without_weights_is_an_input_error(tmp_path):
    path = save_checkpoint(tmp_path / "not_weights.pt", {"step": 3})
    with pytest.raises(InputError, match="no 'model' weights"):
        make_learner(tmp_path / "run", init_from=str(path))


def test_evaluation_snapshot_is_frozen_while_training_changes_the_model(tmp_path):
    learner = make_learner(tmp_path)
    try:
        before = {k: v.clone() for k, v in learner.agent.state_dict().items()}
        learner.begin_evaluation(current=True)
        with torch.no_grad():
            for p in learner.agent.parameters():
                p.add_(1.0)
        for name, value in learner.eval_agent.state_dict().items():
            assert torch.equal(value, before[name]), name
    finally:
        learner.close()


def test_snapshot_leaves_out_tensors_the_models_share():
    shared = torch.arange(6.0).view(2, 3)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    a.register_buffer("table", shared)
    b.register_buffer("table", shared)  # one feature table serves both models
    snapshot = weights_snapshot(a, b)
    assert set(snapshot) == {"weight", "bias"}
    load_snapshot(b, snapshot)
    assert torch.equal(b.weight, a.weight) and b.weight.data_ptr() != a.weight.data_ptr()


def test_batches_of_b_unrolls_are_cut_from_blocks_of_k(tmp_path):
    learner = make_learner(tmp_path)  # B = 3 unrolls per batch, blocks of K = 2
    try:
        for value in range(3):  # three blocks of two unrolls: 6 unrolls -> two batches of 3
            steps = np.full((3, 2), value)
            learner.queue.put(Unroll(observations={"x": steps}, reward=steps, done=steps, first=steps, action=steps,
                                     behaviour_logits=steps[..., None], policy_version=steps,
                                     teacher_forced=np.zeros(2, bool), initial_state=(np.full((2, 1), value),)))
        first, second = learner._next_batch(), learner._next_batch()
        np.testing.assert_array_equal(first.action[0], [0, 0, 1])
        np.testing.assert_array_equal(second.action[0], [1, 2, 2])
        np.testing.assert_array_equal(second.initial_state[0][:, 0], [1, 2, 2])
    finally:
        learner.close()
