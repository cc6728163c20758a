"""A two-node Ray cluster on one machine: the learner lands on the node with the ``learner`` resource, the actors
on the CPU node, and training runs across them."""

from __future__ import annotations

import logging

import pytest

from helpers import distributed_toy as toy
from valan.distributed.driver import placement

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")


def test_placement_asks_for_the_accelerator_and_shares_the_remaining_cpus():
    learner, actor_cpus = placement({"CPU": 2.0}, num_actors=2, num_eval_actors=1)
    assert learner["num_cpus"] == 1.0 and "num_gpus" not in learner and "resources" not in learner
    assert actor_cpus == 0.33  # three actors share the learner-free CPU
    learner, actor_cpus = placement({"CPU": 64.0, "GPU": 1.0, "learner": 1.0}, num_actors=8, num_eval_actors=1)
    assert learner["num_gpus"] == 1 and learner["resources"] == {"learner": 1}
    assert actor_cpus == 1.0  # at most one CPU each
    assert learner["max_concurrency"] >= 9  # every actor can wait on the inference server at once


def test_relative_data_root_is_made_absolute_for_workers(tmp_path, monkeypatch):
    from valan.problems.r2r.config import R2RConfig
    from valan.distributed.driver import with_absolute_data_root

    monkeypatch.chdir(tmp_path)
    config = R2RConfig()
    config.data.root = "data/r2r"
    resolved = with_absolute_data_root(config)
    assert resolved.data.root == str(tmp_path / "data" / "r2r")
    assert config.data.root == "data/r2r"  # the caller's config is left alone
    assert with_absolute_data_root(R2RConfig()).data.root is None  # the bundled sample


@pytest.mark.slow
def test_learner_on_learner_node_actors_on_cpu_node(tmp_path):
    from valan.distributed.driver import train

    ray.cloudpickle.register_pickle_by_value(toy)
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"learner": 1}, "include_dashboard": False})
    cpu_node = cluster.add_node(num_cpus=2)
    try:
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        config = toy.toy_config(
            learning=dict(unroll_length=4, batch_size=8),
            distributed=dict(num_actors=2, envs_per_actor=4, max_batch=8),
            run=dict(total_env_steps=320, checkpoint_every_env_steps=0),
            data=dict(eval={}))
        result = train(toy.ToyProblem(), config, tmp_path, show_progress=False)
        assert result.learner_node == cluster.head_node.node_id
        assert result.actor_nodes == [cpu_node.node_id] * 2
        assert result.step == 320 // (4 * 8)
        assert (tmp_path / "checkpoints").is_dir()
    finally:
        ray.shutdown()
        cluster.shutdown()
