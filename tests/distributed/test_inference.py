"""The central inference server: dynamic batching, per-slot recurrent state, unroll assembly (no Ray needed)."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from helpers.distributed_toy import ToyBatchedEnv
from valan.agents.base import AgentOutput
from valan.distributed.inference import InferenceServer
from valan.learning.unroll import Unroll

NUM_ACTIONS = 6


class EchoAgent(nn.Module):
    """Greedy action = the observation ``x`` (so each caller can recognise its own answer)."""

    def initial_state(self, batch_size):
        return (torch.zeros(batch_size, 1),)

    def forward(self, obs, state, first):
        logits = 10.0 * nn.functional.one_hot(obs["x"], NUM_ACTIONS).float()
        return AgentOutput(logits, torch.zeros(first.shape)), state


class CountingAgent(nn.Module):
    """State = steps taken since the episode started; greedy action = that count (capped)."""

    def initial_state(self, batch_size):
        return (torch.zeros(batch_size, 1),)

    def forward(self, obs, state, first):
        (count,) = state
        actions = []
        for t in range(first.shape[0]):
            count = torch.where(first[t][:, None], torch.zeros_like(count), count)
            actions.append(count[:, 0].long().clamp(max=NUM_ACTIONS - 1))
            count = count + 1
        logits = 10.0 * nn.functional.one_hot(torch.stack(actions), NUM_ACTIONS).float()
        return AgentOutput(logits, torch.zeros(first.shape)), (count,)


def make_server(agent, **kwargs):
    options = dict(unroll_length=3, unroll_queue=queue.Queue(), max_batch=64, max_wait_ms=20.0)
    options.update(kwargs)
    return InferenceServer(agent, **options)


def test_each_request_gets_its_own_actions_from_shared_batches():
    server = make_server(EchoAgent(), max_batch=8, max_wait_ms=200.0)
    results, barrier = {}, threading.Barrier(4)

    def actor(actor_id):
        x = np.array([actor_id, (actor_id + 1) % NUM_ACTIONS], np.int64)
        barrier.wait()
        results[actor_id] = server.infer(actor_id, "a", {"x": x}, None, None, np.ones(2, bool), evaluation=True)

    threads = [threading.Thread(target=actor, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = server.pop_stats()
    server.close()
    for actor_id in range(4):
        np.testing.assert_array_equal(results[actor_id], [actor_id, (actor_id + 1) % NUM_ACTIONS])
    # Four requests of two slots fill max_batch=8: one forward pass served all of them.
    assert stats.requests == 4 and stats.slots == 8
    assert stats.batches == 1


def test_partial_batch_runs_after_the_deadline():
    server = make_server(EchoAgent(), max_batch=1000, max_wait_ms=150.0)
    start = time.monotonic()
    actions = server.infer(0, "a", {"x": np.array([2, 3])}, None, None, np.ones(2, bool), evaluation=True)
    elapsed = time.monotonic() - start
    stats = server.pop_stats()
    server.close()
    np.testing.assert_array_equal(actions, [2, 3])
    assert 0.14 <= elapsed < 2.0, elapsed  # waited for the deadline, then ran the 2-slot batch alone
    assert stats.batches == 1 and stats.slots == 2
    assert stats.mean_wait_ms >= 140


def test_full_batch_does_not_wait_for_the_deadline():
    server = make_server(EchoAgent(), max_batch=2, max_wait_ms=5000.0)
    start = time.monotonic()
    server.infer(0, "a", {"x": np.array([1, 1])}, None, None, np.ones(2, bool), evaluation=True)
    server.close()
    assert time.monotonic() - start < 2.0


def test_batch_runs_without_waiting_when_every_known_actor_is_waiting():
    server = make_server(EchoAgent(), max_batch=1000, max_wait_ms=3000.0)
    barrier = threading.Barrier(2)

    def actor(actor_id, results):
        for _ in range(3):
            barrier.wait()
            start = time.monotonic()
            server.infer(actor_id, "a", {"x": np.array([1])}, None, None, np.ones(1, bool), evaluation=True)
            results.append(time.monotonic() - start)

    first, second = [], []
    threads = [threading.Thread(target=actor, args=(0, first)), threading.Thread(target=actor, args=(1, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.close()
    # The first round waits out the deadline (the server does not know the actors yet); later rounds run as soon
    # as both known actors are waiting.
    assert first[0] > 2.5 and second[0] > 2.5
    assert max(first[1:] + second[1:]) < 1.5


def test_recurrent_state_is_kept_per_actor_and_slot_and_reset_at_episode_starts():
    server = make_server(CountingAgent())
    obs = {"x": np.zeros(2, np.int64)}

    def act(actor_id, first):
        return server.infer(actor_id, "a", obs, None, None, np.array(first), evaluation=True).tolist()

    assert act(0, [True, True]) == [0, 0]
    assert act(0, [False, False]) == [1, 1]
    assert act(1, [True, True]) == [0, 0]  # another actor's slots have their own state
    assert act(0, [False, True]) == [2, 0]  # slot 1 starts a new episode: its state resets, slot 0's does not
    assert act(0, [False, False]) == [3, 1]
    assert act(1, [False, False]) == [1, 1]
    server.retire(0)  # a dead actor's state is forgotten; late requests from its old incarnation are answered
    assert act(0, [False, False]) == [0, 0]  # from a throwaway state...
    assert act(0, [False, False]) == [0, 0]  # ...that is not kept
    assert server.infer(0, "b", obs, None, None, np.array([False, False]), evaluation=True).tolist() == [0, 0]
    server.close()


def run_stream(server, env, steps, actor_id=0, incarnation="a"):
    """Drive ``env`` through ``server`` like an actor; return the per-step stream the server saw."""
    obs, _ = env.reset()
    reward = np.zeros(env.num_envs, np.float32)
    done = np.zeros(env.num_envs, bool)
    first = np.ones(env.num_envs, bool)
    stream = []
    for _ in range(steps):
        actions = server.infer(actor_id, incarnation, obs, reward, done, first)
        stream.append(dict(obs=obs, reward=reward, done=done, first=first, action=actions))
        obs, reward, done, _ = env.step(actions)
        first = done.copy()
    return stream


def drain(q):
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


@pytest.mark.parametrize("p_imitation", [0.0, 0.5, 1.0])
def test_unrolls_have_t_plus_one_steps_overlapping_by_one(p_imitation):
    torch.manual_seed(0)
    T, K = 3, 4
    q = queue.Queue()
    server = make_server(CountingAgent(), unroll_length=T, unroll_queue=q, p_imitation=p_imitation,
                         policy_version=lambda: 7, seed=1)
    env = ToyBatchedEnv(K, seed=0, evaluation=False)
    stream = run_stream(server, env, steps=3 * T + 2)
    server.close()
    unrolls = drain(q)
    assert len(unrolls) == 3  # steps 0..3, 3..6, 6..9; the unroll from 9 is unfinished
    for n, unroll in enumerate(unrolls):
        assert isinstance(unroll, Unroll) and unroll.batch_size == K
        assert unroll.action.shape == (T + 1, K)
        assert unroll.behaviour_logits.shape == (T + 1, K, NUM_ACTIONS)
        for t in range(T + 1):
            seen = stream[n * T + t]
            for key in ("reward", "done", "first", "action"):
                np.testing.assert_array_equal(getattr(unroll, key)[t], seen[key], err_msg=f"unroll {n} step {t} {key}")
            for key in seen["obs"]:
                np.testing.assert_array_equal(unroll.observations[key][t], seen["obs"][key])
        np.testing.assert_array_equal(unroll.policy_version, 7)
        # first = done after the first step of the stream; True at the actor's very first step.
        np.testing.assert_array_equal(unroll.first[1:], unroll.done[1:])
        # initial_state = the count before step 0 (the counting agent's state), i.e. the behaviour logits'
        # count unless step 0 starts an episode.
        (count,) = unroll.initial_state
        expected = np.where(unroll.first[0], 0, count[:, 0])
        np.testing.assert_array_equal(unroll.behaviour_logits[0].argmax(-1), np.minimum(expected, NUM_ACTIONS - 1))
        # Teacher-forced unrolls executed the oracle's actions at steps 0..T-1.
        imitation = unroll.teacher_forced
        assert imitation.shape == (K,)
        oracle = unroll.observations["oracle_next_action"][:T]
        assert (unroll.action[:T][:, imitation] == oracle[:, imitation]).all()
        if p_imitation == 1.0:
            assert imitation.all()
        if p_imitation == 0.0:
            assert not imitation.any()
    # Consecutive unrolls share their boundary step, and the next unroll's imitation flags chose that step's action.
    for a, b in zip(unrolls, unrolls[1:]):
        for key in ("action", "reward", "first"):
            np.testing.assert_array_equal(getattr(a, key)[-1], getattr(b, key)[0])
        np.testing.assert_array_equal(a.observations["instruction"][-1], b.observations["instruction"][0])
        forced = b.teacher_forced
        np.testing.assert_array_equal(b.action[0][forced], b.observations["oracle_next_action"][0][forced])
    if p_imitation == 0.5:
        flags = np.concatenate([u.teacher_forced for u in unrolls])
        assert 0 < flags.sum() < len(flags)


def test_backpressure_blocks_the_actor_when_the_queue_is_full():
    q = queue.Queue(maxsize=1)
    server = make_server(CountingAgent(), unroll_length=1, unroll_queue=q)
    env = ToyBatchedEnv(2, seed=0, evaluation=False)
    finished = threading.Event()

    def actor():
        run_stream(server, env, steps=4)  # emits 3 unrolls: the second put blocks
        finished.set()

    thread = threading.Thread(target=actor, daemon=True)
    thread.start()
    assert not finished.wait(0.5)
    assert q.full()
    drain(q)
    time.sleep(0.05)
    drain(q)
    assert finished.wait(5.0)
    server.close()


def test_retired_actor_unfinished_unroll_is_dropped_and_new_incarnation_starts_fresh():
    q = queue.Queue()
    server = make_server(CountingAgent(), unroll_length=4, unroll_queue=q)
    env = ToyBatchedEnv(2, seed=0, evaluation=False)
    run_stream(server, env, steps=3)  # 3 of 5 steps of the first unroll
    server.retire(0)
    stream = run_stream(server, ToyBatchedEnv(2, seed=1, evaluation=False), steps=5, incarnation="b")
    server.close()
    (unroll,) = drain(q)
    assert unroll.first[0].all()  # the new incarnation's unroll, from its fresh episodes
    np.testing.assert_array_equal(unroll.action, np.stack([s["action"] for s in stream]))


def test_stack_and_split_unrolls_round_trip():
    q = queue.Queue()
    server = make_server(CountingAgent(), unroll_length=2, unroll_queue=q)
    run_stream(server, ToyBatchedEnv(3, seed=0, evaluation=False), steps=3, actor_id=0)
    run_stream(server, ToyBatchedEnv(2, seed=1, evaluation=False), steps=3, actor_id=1)
    server.close()
    a, b = drain(q)
    both = Unroll.concatenate([a, b])
    assert both.action.shape == (3, 5) and both.teacher_forced.shape == (5,) and both.batch_size == 5
    assert both.initial_state[0].shape == (5, 1)
    head, tail = both.split(3)
    np.testing.assert_array_equal(head.action, a.action)
    np.testing.assert_array_equal(tail.observations["instruction"], b.observations["instruction"])
    np.testing.assert_array_equal(tail.initial_state[0], b.initial_state[0])
    assert head.valid is None and tail.batch_size == 2
    tensors = both.to_tensors()
    assert isinstance(tensors.initial_state, tuple) and torch.equal(tensors.action, torch.as_tensor(both.action))
    assert tensors.observations["instruction"].shape[:2] == (3, 5)
