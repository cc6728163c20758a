"""Central inference with dynamic batching, server-side recurrent state and unroll assembly (SEED RL).

Actors send the observations of their ``K`` env slots (plus the reward and ``done`` of the previous action and
the ``first`` flags) and get one action per slot back. Requests from different actors are merged into one
forward pass of up to ``max_batch`` env slots. A batch runs when it is full, when every actor the server knows
is waiting in it (no other request can come), or once the oldest waiting request has waited ``max_wait_ms``
(a partial batch: some actors are slow, dead or not started yet). The recurrent state of every (actor, slot)
lives here, so actors hold no model, no weights and no features.

From the same stream the server assembles the learner's :class:`~valan.learning.unroll.Unroll` blocks (one block
= the ``K`` slots of one actor, ``T + 1`` steps, step 0 overlapping the previous unroll's last step). Whether an
unroll is teacher-forced (executes ``oracle_next_action`` instead of the sampled action) is drawn per slot when
the unroll starts, before its step-0 action is chosen, with probability ``p_imitation``.

:meth:`InferenceServer.infer` blocks the calling thread (one thread per request in a Ray threaded actor) while
the model runs on a single batching thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, ContextManager

import numpy as np
import torch

from valan.learning.unroll import Step, Unroll

Observation = dict[str, np.ndarray]


@dataclasses.dataclass
class InferenceStats:
    """Counters since the last :meth:`InferenceServer.pop_stats` call."""

    batches: int = 0
    slots: int = 0
    requests: int = 0
    wait_s: float = 0.0
    forward_s: float = 0.0

    @property
    def mean_batch_size(self) -> float:
        """Env slots per forward pass."""
        return self.slots / self.batches if self.batches else 0.0

    @property
    def mean_wait_ms(self) -> float:
        """Mean time a request waited for its batch to start, milliseconds."""
        return 1000.0 * self.wait_s / self.requests if self.requests else 0.0


@dataclasses.dataclass
class _Request:
    actor_id: int
    incarnation: str
    obs: Observation
    reward: np.ndarray
    done: np.ndarray
    first: np.ndarray
    evaluation: bool
    arrival: float = dataclasses.field(default_factory=time.monotonic)
    actions: np.ndarray | None = None
    unrolls: list[Unroll] = dataclasses.field(default_factory=list)
    error: BaseException | None = None
    event: threading.Event = dataclasses.field(default_factory=threading.Event)  # set once the batch ran

    @property
    def size(self) -> int:
        return len(self.first)


@dataclasses.dataclass
class _SlotGroup:
    """The ``K`` env slots of one actor incarnation; they step in lockstep, so they share unroll boundaries."""

    incarnation: str
    state: tuple[torch.Tensor, ...]
    steps: list[Step] = dataclasses.field(default_factory=list)
    initial_state: tuple[np.ndarray, ...] = ()
    teacher_forced: np.ndarray | None = None


class InferenceServer:
    """Dynamic-batching policy server with per-(actor, slot) recurrent state and unroll assembly.

    Args:
        agent: the model (``initial_state(batch)``, ``forward(obs, state, first)`` with ``(T, B, ...)`` tensors).
        unroll_length: ``T``; emitted unrolls have ``T + 1`` steps.
        unroll_queue: where finished unroll blocks go (one block = the ``K`` slots of one actor); ``put`` blocks
            when the queue is full, which blocks the actor whose request completed the unroll (backpressure).
        max_batch: env slots per forward pass at most (a single request larger than this runs alone).
        max_wait_ms: a partial batch runs once its oldest request has waited this long, milliseconds.
        p_imitation: probability that an unroll is teacher-forced (executes the observations'
            ``oracle_next_action``).
        device: where the model and states live.
        policy_version: callable returning the current policy version (learner steps).
        seed: seeds action sampling and the imitation draws.
        weights_lock: held around every forward pass of ``agent`` (not of the evaluation agent), when a trainer in
            another process updates ``agent``'s parameters in place (``valan.distributed.trainer``).
    """

    def __init__(self, agent: torch.nn.Module, unroll_length: int, unroll_queue: queue.Queue,
                 max_batch: int, max_wait_ms: float, p_imitation: float = 0.0,
                 device: torch.device | str = "cpu", policy_version: Callable[[], int] = lambda: 0,
                 seed: int = 0, weights_lock: ContextManager[Any] | None = None):
        if unroll_length < 1:
            raise ValueError(f"unroll_length must be >= 1, got {unroll_length}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not 0.0 <= p_imitation <= 1.0:
            raise ValueError(f"p_imitation must lie in [0, 1], got {p_imitation}")
        self.agent = agent
        self.eval_agent: torch.nn.Module | None = None
        self.unroll_length = unroll_length
        self.unroll_queue = unroll_queue
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.p_imitation = p_imitation
        self.device = torch.device(device)
        self.policy_version = policy_version
        self._weights_lock = weights_lock if weights_lock is not None else contextlib.nullcontext()
        self._rng = np.random.default_rng(seed)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)
        self._groups: dict[tuple[bool, int], _SlotGroup] = {}
        self._retired: dict[int, set[str]] = {}
        self._blocked: set[int] = set()  # actors waiting for room in the unroll queue: no request can come from them
        self._pending: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._stats = InferenceStats()
        self._stop = threading.Event()
        self._recording = threading.Event()
        self._recording.set()
        self._thread = threading.Thread(target=self._batching_loop, name="inference-batcher", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------- inference
    def infer(self, actor_id: int, incarnation: str, obs: Observation, reward: np.ndarray, done: np.ndarray,
              first: np.ndarray, evaluation: bool = False) -> np.ndarray:
        """Actions ``(K,)`` int64 for one actor's ``K`` slots; blocks the calling thread until its batch ran.

        ``reward``/``done`` are the results of the previous action, ``first`` marks episode starts (the state of
        those slots is reset). ``evaluation=True`` acts greedily with the evaluation snapshot and records no
        unrolls.
        """
        first = np.asarray(first, dtype=bool)
        k = len(first)
        reward = np.zeros(k, np.float32) if reward is None else np.asarray(reward, dtype=np.float32)
        done = np.zeros(k, bool) if done is None else np.asarray(done, dtype=bool)
        request = _Request(int(actor_id), str(incarnation), obs, reward, done, first, bool(evaluation))
        with self._cond:
            if self._stop.is_set():
                raise RuntimeError("inference server is closed")
            self._pending.append(request)
            self._cond.notify_all()
        request.event.wait()
        if request.error is not None:
            raise request.error
        if request.unrolls:  # blocks while the unroll queue is full (backpressure)
            self._enqueue(request.actor_id, request.unrolls)
        return request.actions

    # ------------------------------------------------------------------------------------------- control
    def retire(self, actor_id: int) -> None:
        """Forget an actor's state and drop its unfinished unrolls (the actor died; its next incarnation starts
        fresh episodes). Late requests from the retired incarnation are answered but not recorded."""
        with self._cond:
            for key in [(False, actor_id), (True, actor_id)]:
                group = self._groups.pop(key, None)
                if group is not None:
                    self._retired.setdefault(actor_id, set()).add(group.incarnation)

    def set_eval_agent(self, agent: torch.nn.Module | None) -> None:
        """Use ``agent`` (a frozen snapshot) for evaluation requests; ``None`` evaluates the live model."""
        with self._cond:
            self.eval_agent = agent
            for key in [k for k in self._groups if k[0]]:
                del self._groups[key]

    def stop_unrolls(self) -> None:
        """Training is over: record no more unrolls and release actors blocked on a full queue."""
        self._recording.clear()

    def pop_stats(self) -> InferenceStats:
        """Batching statistics since the previous call."""
        with self._cond:
            stats, self._stats = self._stats, InferenceStats()
        return stats

    def close(self) -> None:
        """Stop the batching thread; waiting requests fail."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------------------------------ internals
    def _enqueue(self, actor_id: int, unrolls: list[Unroll]) -> None:
        for unroll in unrolls:
            try:
                self.unroll_queue.put_nowait(unroll)
                continue
            except queue.Full:
                pass
            with self._cond:
                self._blocked.add(actor_id)
                self._cond.notify_all()  # a batch waiting for this actor can run now
            try:
                while self._recording.is_set() and not self._stop.is_set():
                    try:
                        self.unroll_queue.put(unroll, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            finally:
                with self._cond:
                    self._blocked.discard(actor_id)

    def _batch_ready(self) -> bool:
        """Whether the oldest request's kind has a full batch, or every known actor of that kind that is not blocked
        on a full unroll queue is waiting (no other request can come before one of them is answered)."""
        kind = self._pending[0].evaluation
        waiting = [r for r in self._pending if r.evaluation == kind]
        if sum(r.size for r in waiting) >= self.max_batch:
            return True
        expected = {actor for evaluation, actor in self._groups if evaluation == kind} - self._blocked
        return bool(expected) and expected <= {r.actor_id for r in waiting}

    def _take_batch(self) -> list[_Request] | None:
        """Wait for a ready batch (see :meth:`_batch_ready`) or the oldest request's deadline; None when stopping."""
        with self._cond:
            while not self._pending:
                if self._stop.is_set():
                    return None
                self._cond.wait()
            while not (self._batch_ready() or self._stop.is_set()):
                remaining = self._pending[0].arrival + self.max_wait_s - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            # Evaluation and training requests use different models: serve the kind of the oldest request.
            kind = self._pending[0].evaluation
            batch, size, rest = [], 0, deque()
            while self._pending:
                r = self._pending.popleft()
                if r.evaluation == kind and (not batch or size + r.size <= self.max_batch):
                    batch.append(r)
                    size += r.size
                else:
                    rest.append(r)
            self._pending = rest
            now = time.monotonic()
            self._stats.batches += 1
            self._stats.slots += size
            self._stats.requests += len(batch)
            self._stats.wait_s += sum(now - r.arrival for r in batch)
            return batch

    def _batching_loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                break
            start = time.monotonic()
            try:
                self._run(batch)
            except BaseException as e:  # delivered to every caller of the batch
                for r in batch:
                    r.error = e
            with self._cond:
                self._stats.forward_s += time.monotonic() - start
            for r in batch:
                r.event.set()
        with self._cond:
            stranded, self._pending = list(self._pending), deque()
        for r in stranded:
            r.error = RuntimeError("inference server closed")
            r.event.set()

    def _group(self, request: _Request) -> _SlotGroup | None:
        """The slot group of a request's actor; a new incarnation replaces the old one (fresh episodes)."""
        key = (request.evaluation, request.actor_id)
        with self._cond:
            if request.incarnation in self._retired.get(request.actor_id, ()):
                return None
            group = self._groups.get(key)
            if group is None or group.incarnation != request.incarnation:
                if group is not None:
                    self._retired.setdefault(request.actor_id, set()).add(group.incarnation)
                agent = self._agent_for(request.evaluation)
                state = tuple(s.to(self.device) for s in agent.initial_state(request.size))
                group = self._groups[key] = _SlotGroup(request.incarnation, state)
            return group

    def _agent_for(self, evaluation: bool) -> torch.nn.Module:
        return self.eval_agent if evaluation and self.eval_agent is not None else self.agent

    def _run(self, batch: list[_Request]) -> None:
        evaluation = batch[0].evaluation
        agent = self._agent_for(evaluation)
        groups = [self._group(r) for r in batch]
        # A retired incarnation still gets an answer (with a throwaway state) but records nothing.
        states = [g.state if g is not None else
                  tuple(s.to(self.device) for s in agent.initial_state(r.size)) for g, r in zip(groups, batch)]
        obs = {key: torch.from_numpy(np.concatenate([r.obs[key] for r in batch]))[None].to(self.device)
               for key in batch[0].obs}
        first = torch.from_numpy(np.concatenate([r.first for r in batch]))[None].to(self.device)
        state = tuple(torch.cat(parts, dim=0) for parts in zip(*states))
        with torch.inference_mode(), (self._weights_lock if agent is self.agent else contextlib.nullcontext()):
            output, new_state = agent(obs, state, first)
            logits = output.logits[0].float()
            if evaluation:
                chosen = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits, dim=-1)
                chosen = torch.multinomial(probs, 1, generator=self._generator)[:, 0]
        chosen = chosen.cpu().numpy().astype(np.int64)
        logits_np = logits.cpu().numpy()
        version = self.policy_version()
        sizes = [r.size for r in batch]
        offsets = np.cumsum([0] + sizes)
        new_states = [tuple(s[offsets[i]:offsets[i + 1]] for s in new_state) for i in range(len(batch))]
        for i, (r, g) in enumerate(zip(batch, groups)):
            lo, hi = offsets[i], offsets[i + 1]
            actions = chosen[lo:hi]
            if not evaluation and g is not None and self._recording.is_set():
                actions = self._record(r, g, states[i], actions, logits_np[lo:hi], version)
            r.actions = actions
            if g is not None:
                g.state = new_states[i]

    def _record(self, r: _Request, g: _SlotGroup, state_before: tuple[torch.Tensor, ...], sampled: np.ndarray,
                logits: np.ndarray, version: int) -> np.ndarray:
        """Choose the executed actions (the oracle's in teacher-forced slots) and append the step to the unroll."""
        starts_unroll = len(g.steps) in (0, self.unroll_length)
        if starts_unroll:
            # The mode of the next unroll governs this step's action (its step 0 / the overlap step).
            teacher_forced = self._rng.random(r.size) < self.p_imitation
        else:
            teacher_forced = g.teacher_forced
        actions = sampled
        if teacher_forced.any():
            actions = np.where(teacher_forced, np.asarray(r.obs["oracle_next_action"], dtype=np.int64), sampled)
        step = Step(observations=r.obs, reward=r.reward, done=r.done, first=r.first, action=actions,
                    behaviour_logits=logits, policy_version=np.full(r.size, version, np.int64))
        if len(g.steps) == self.unroll_length:
            g.steps.append(step)
            r.unrolls.append(Unroll.from_steps(g.steps, g.teacher_forced.copy(), g.initial_state))
        if starts_unroll:
            g.steps = [step]
            g.initial_state = tuple(s.detach().cpu().numpy() for s in state_before)
            g.teacher_forced = teacher_forced
        else:
            g.steps.append(step)
        return actions


def new_incarnation() -> str:
    """A fresh id for an actor process: requests from a new incarnation start fresh state and unrolls."""
    return uuid.uuid4().hex
