"""Inference requests over the learner's Unix socket: the bytes round-trip exactly, the answers and failures reach
the actor as Ray calls would deliver them, and actors off the learner's node fall back to Ray calls."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import numpy as np
import pytest

from helpers import distributed_toy as toy
from valan.distributed.transport import InferenceSocketClient, InferenceSocketServer, LearnerLost, connect


class Recorder:
    """An ``infer`` that records what it was sent and answers ``action = actor_id + slot``."""

    def __init__(self, answer=None):
        self.calls = []
        self.answer = answer

    def __call__(self, actor_id, incarnation, obs, reward, done, first, evaluation):
        self.calls.append((actor_id, incarnation, {k: v.copy() for k, v in obs.items()}, reward.copy(), done.copy(),
                           first.copy(), evaluation))
        if self.answer is not None:
            return self.answer(len(self.calls))
        return actor_id + np.arange(len(first))


def observations(k: int, tokens: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(k * 100 + tokens)
    return {"tokens": rng.integers(0, 1000, (k, tokens)).astype(np.int64),
            "mask": rng.random((k, tokens)) < 0.5,
            "geometry": rng.standard_normal((k, 3, 4)).astype(np.float32),
            "heading": rng.standard_normal(k),  # float64
            "viewpoint": np.arange(k, dtype=np.int32)}


@pytest.fixture
def server():
    recorder = Recorder()
    server = InferenceSocketServer(recorder)
    server.recorder = recorder
    yield server
    server.close()


def test_observations_and_flags_arrive_exactly_and_actions_come_back(server):
    client = InferenceSocketClient(server.path, server.token, actor_id=7, incarnation="abc", evaluation=False)
    try:
        sent = []
        for step, (k, tokens) in enumerate([(3, 5), (3, 5), (3, 9)]):  # the last one changes a shape: new layout
            obs = observations(k, tokens)
            reward = np.array([0.5, -1.0, 2.0], np.float32) * step
            done = np.array([True, False, step == 2])
            first = np.array([step == 0, True, False])
            sent.append((obs, reward, done, first))
            np.testing.assert_array_equal(client.infer(obs, reward, done, first), [7, 8, 9])
    finally:
        client.close()
    assert len(server.recorder.calls) == 3 and server.requests == 3
    for (obs, reward, done, first), call in zip(sent, server.recorder.calls):
        actor_id, incarnation, got, got_reward, got_done, got_first, evaluation = call
        assert (actor_id, incarnation, evaluation) == (7, "abc", False)
        assert got.keys() == obs.keys()
        for key in obs:
            assert got[key].dtype == obs[key].dtype and got[key].shape == obs[key].shape, key
            np.testing.assert_array_equal(got[key], obs[key])
        np.testing.assert_array_equal(got_reward, reward)
        np.testing.assert_array_equal(got_done, done)
        np.testing.assert_array_equal(got_first, first)


def test_non_contiguous_observations_are_sent_in_c_order(server):
    client = InferenceSocketClient(server.path, server.token, 0, "x", evaluation=True)
    try:
        grid = np.arange(24, dtype=np.int64).reshape(4, 6)
        client.infer({"column_major": grid.T[:, :3]}, None, None, np.ones(6, bool))
    finally:
        client.close()
    (call,) = server.recorder.calls
    np.testing.assert_array_equal(call[2]["column_major"], grid.T[:, :3])
    assert call[6] is True  # evaluation
    np.testing.assert_array_equal(call[3], np.zeros(6, np.float32))  # no reward given: zeros


def test_training_over_and_learner_errors_reach_the_actor():
    def answer(n):
        if n == 2:
            return None
        if n == 3:
            raise KeyError("unknown actor")
        return np.zeros(2, np.int64)

    server = InferenceSocketServer(Recorder(answer))
    try:
        client = InferenceSocketClient(server.path, server.token, 1, "x")
        obs, flags = observations(2), np.zeros(2, bool)
        assert client.infer(obs, None, flags, flags).tolist() == [0, 0]
        assert client.infer(obs, None, flags, flags) is None  # "training is over"
        with pytest.raises(RuntimeError, match="KeyError: 'unknown actor'"):
            client.infer(obs, None, flags, flags)
        client.close()
    finally:
        server.close()


def test_a_closed_learner_is_learner_lost_and_a_dead_actor_frees_its_connection():
    release = threading.Event()

    def slow(n):  # the first request is answered only after the learner closed
        release.wait(5)
        return np.zeros(2, np.int64)

    server = InferenceSocketServer(Recorder(slow))
    client = InferenceSocketClient(server.path, server.token, 1, "x")
    gone = InferenceSocketClient(server.path, server.token, 2, "y")
    gone.close()  # an actor that died before its first request
    deadline = time.monotonic() + 5
    while (server.accepted < 2 or server.open_connections > 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.accepted == 2 and server.open_connections == 1
    result = []
    thread = threading.Thread(target=lambda: result.append(_catch(client.infer, observations(2), None, None,
                                                                  np.zeros(2, bool))))
    thread.start()
    time.sleep(0.2)
    server.close()  # the learner shuts down while a request waits
    release.set()
    thread.join(5)
    assert isinstance(result[0], LearnerLost)
    with pytest.raises(LearnerLost):
        client.infer(observations(2), None, None, np.zeros(2, bool))
    with pytest.raises(OSError):  # nothing listens any more, and the socket file is gone
        InferenceSocketClient(server.path, server.token, 3, "z")


def _catch(fn, *args):
    try:
        return fn(*args)
    except Exception as e:
        return e


def test_connect_uses_the_socket_only_on_the_learners_node(server):
    address = {"node_id": "node-a", "path": server.path, "token": server.token}
    assert connect(None, "node-a", 0, "x") is None  # distributed.transport: ray
    assert connect(address, "node-b", 0, "x") is None  # another node: Ray calls
    assert connect({**address, "path": server.path + ".missing"}, "node-a", 0, "x") is None
    client = connect(address, "node-a", 0, "x")
    assert client is not None
    assert client.infer(observations(2), None, None, np.ones(2, bool)).tolist() == [0, 1]
    client.close()


def test_a_connection_without_the_learners_token_is_hung_up_on(server):
    stranger = InferenceSocketClient(server.path, "0" * 32, 5, "x")
    with pytest.raises(LearnerLost):
        stranger.infer(observations(2), None, None, np.ones(2, bool))
    stranger.close()
    assert server.recorder.calls == [] and server.requests == 0


def test_the_socket_leaves_no_file_behind():
    """On Linux the address is abstract (nothing on disk, so a killed learner leaves nothing either); elsewhere
    close() removes the private directory."""
    server = InferenceSocketServer(Recorder())
    if sys.platform.startswith("linux"):
        assert server.path.startswith("\0") and not os.path.exists(server.path[1:])
    server.close()
    if not sys.platform.startswith("linux"):
        assert not os.path.exists(os.path.dirname(server.path))


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["auto", "ray"])
def test_a_learner_on_ray_serves_actors_by_its_transport(tmp_path, transport):
    ray = pytest.importorskip("ray")
    from valan.distributed.actor import EnvActor
    from valan.distributed.learner import Learner

    ray.cloudpickle.register_pickle_by_value(toy)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    try:
        config = toy.toy_config(learning=dict(unroll_length=4, batch_size=4),
                                distributed=dict(num_actors=1, envs_per_actor=4, transport=transport),
                                run=dict(total_env_steps=256, eval_every_env_steps=0, checkpoint_every_env_steps=0))
        learner = ray.remote(Learner).options(max_concurrency=8).remote(toy.ToyProblem(), config, str(tmp_path))
        info = ray.get(learner.setup.remote())
        address = ray.get(learner.inference_address.remote())
        if transport == "auto":
            assert address["node_id"] == info["node_id"] == ray.get_runtime_context().get_node_id()
        else:
            assert address is None
        actor = ray.remote(EnvActor).remote(0, toy.ToyProblem(), config, 4)
        run = actor.run.remote(learner)
        ray.get(learner.start.remote())
        env_steps = ray.get(run, timeout=120)  # returns once the learner says training is over
        progress = ray.get(learner.progress.remote())
        assert progress["finished"] and progress["env_steps"] == 256
        assert env_steps >= 256
        # Every request of the actor came over the socket (auto), or none did (ray).
        assert progress["socket_requests"] == (env_steps // 4 + 1 if transport == "auto" else 0)
        ray.get(learner.close.remote())
    finally:
        ray.shutdown()
