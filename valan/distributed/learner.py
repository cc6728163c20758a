"""The learner: owns the model, the optimizer and the feature table; serves inference; trains on unrolls.

One process (a Ray actor, on the GPU when there is one) runs three things at once:
- the :class:`~valan.distributed.inference.InferenceServer` batching thread, answering actors' requests;
- the trainer thread: takes ``B`` unrolls from the bounded queue, has the trainer
  (:mod:`valan.distributed.trainer`: on CPU a child process sharing the model's parameters, on a GPU this thread)
  run ``valan.learning.step.train_step`` with the problem's loss on them, and bumps the policy version (= learner
  steps);
- control calls from the driver (progress, evaluation snapshots, retiring dead actors, stopping).

Evaluations use a second copy of the model (sharing the feature table) loaded with a snapshot of the weights
taken exactly at the step the evaluation came due, so training goes on while eval actors run.

Checkpoints (``<out>/checkpoints/ckpt-<step>.pt``, atomic, keep the last N, the newest also as ``LATEST.pt``)
hold ``model``, ``optimizer``, ``step``, ``env_steps``, ``config`` and ``problem``; ``resume`` continues from the
newest one with optimizer state and counters. ``BEST.pt`` (:meth:`Learner.save_best`, the driver decides) holds
the evaluation snapshot's weights, exactly those the eval actors ran, with their step and scores (no optimizer). TensorBoard scalars go to ``<out>/tensorboard``; the effective config to ``<out>/config.yaml``.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from valan.checkpoint import CheckpointManager, load_checkpoint
from valan.problems.config import TrainConfig
from valan.config import save_config, to_dict
from valan.distributed.inference import InferenceServer
from valan.errors import InputError
from valan.learning.losses import teacher_forcing_probability
from valan.distributed.trainer import make_trainer
from valan.distributed import transport
from valan.learning.step import compile_agent
from valan.learning.unroll import Unroll
from valan.problems import Problem

LOG_EVERY_S = 5.0  # seconds between TensorBoard scalar writes


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters()) | dict(module.named_buffers())


def weights_snapshot(agent: torch.nn.Module, shared_with: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``agent``'s parameters and buffers, leaving out tensors whose storage ``shared_with``
    already shares (the feature table: one copy of it serves both models)."""
    others = _tensors(shared_with)
    return {name: t.detach().clone() for name, t in _tensors(agent).items() if others[name].data_ptr() != t.data_ptr()}


def load_snapshot(agent: torch.nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Copy a :func:`weights_snapshot` into ``agent`` in place."""
    tensors = _tensors(agent)
    with torch.no_grad():
        for name, value in snapshot.items():
            tensors[name].copy_(value)


class Learner:
    """See the module docstring. ``out_dir`` must be reachable from the learner's node.

    Args:
        problem: the problem (agent factory, feature table).
        config: the run's config.
        out_dir: checkpoints, TensorBoard and the effective config go here.
        resume: continue from the newest checkpoint in ``out_dir`` (``InputError`` when there is none).
        init_from: a checkpoint whose weights (only) initialise the model.
    """

    def __init__(self, problem: Problem, config: TrainConfig, out_dir: str, resume: bool = False,
                 init_from: str | None = None):
        # The work happens in setup(): an exception raised there reaches the caller with its type (an InputError
        # stays an InputError), whereas one raised in a Ray actor's constructor only kills the actor.
        self.problem, self.config = problem, config
        self.out_dir = Path(out_dir)
        self._resume, self._init_from_path = resume, init_from
        self._ready = threading.Event()

    def setup(self) -> dict[str, Any]:
        """Build model, optimizer and feature table, restore or initialise weights, start the inference server;
        returns where the learner runs and the step it starts from."""
        import ray
        from torch.utils.tensorboard import SummaryWriter

        config, problem = self.config, self.problem
        torch.manual_seed(config.run.seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        features = torch.as_tensor(problem.feature_table(config)).to(self.device)
        self.agent = problem.make_agent(config, features).to(self.device)
        compile_agent(self.agent, config.learning.compile)  # learning.compile (opt-in): learning and acting
        self.eval_agent = problem.make_agent(config, features).to(self.device).eval()
        # Before the inference thread starts: a process trainer forks the learner.
        self.trainer = make_trainer(config.distributed.trainer, self.agent, problem, config, self.device)
        self.step = 0
        self.env_steps = 0
        self.checkpoints = CheckpointManager(self.out_dir / "checkpoints", keep_last=config.run.keep_last)
        if self._resume:
            self._restore()
        elif self._init_from_path is not None:
            self._init_from(self._init_from_path)
        save_config(self.out_dir / "config.yaml", config)

        dist, learning = config.distributed, config.learning
        self.unroll_length, self.batch_size = learning.unroll_length, learning.batch_size
        # The queue holds blocks of envs_per_actor unrolls; queue_size counts unrolls.
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, math.ceil(dist.queue_size / dist.envs_per_actor)))
        self.server = InferenceServer(self.agent, self.unroll_length, self.queue, max_batch=dist.max_batch,
                                      max_wait_ms=dist.max_wait_ms, p_imitation=teacher_forcing_probability(config.learning),
                                      device=self.device, policy_version=lambda: self.step, seed=config.run.seed,
                                      weights_lock=self.trainer.weights_lock)
        self.node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        self.socket_server = (transport.InferenceSocketServer(self._infer_any)
                              if dist.transport == "auto" and self.node_id is not None and transport.AVAILABLE else None)
        self._socket_requests_at_log = 0
        self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        self._leftover: Unroll | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._last_stats: dict[str, float] = {}  # of the latest learner step
        self._rates: dict[str, float] = {}  # throughput and inference batching over the latest logging period
        # (step, env_steps, weights) of the latest evaluation that came due and has not started yet.
        self._pending_eval: tuple[int, int, dict[str, torch.Tensor]] | None = None
        self._evaluated_up_to = self.env_steps
        self._checkpointed_up_to = self.env_steps
        self._evaluating = (self.step, self.env_steps)  # (step, env_steps) of the evaluation snapshot
        self._ready.set()
        return {"device": str(self.device), "step": self.step, "env_steps": self.env_steps, "node_id": self.node_id,
                "parameters": sum(p.numel() for p in self.agent.parameters())}

    # -------------------------------------------------------------------------------- called by actors
    def infer(self, actor_id: int, incarnation: str, obs: dict[str, np.ndarray], reward: np.ndarray,
              done: np.ndarray, first: np.ndarray) -> np.ndarray | None:
        """Actions for a training actor's slots, or ``None`` once training is over (the actor then stops)."""
        self._ready.wait()
        if self._finished.is_set():
            return None
        return self.server.infer(actor_id, incarnation, obs, reward, done, first)

    def infer_eval(self, actor_id: int, incarnation: str, obs: dict[str, np.ndarray],
                   first: np.ndarray) -> np.ndarray:
        """Greedy actions of the evaluation snapshot (see :meth:`begin_evaluation`)."""
        self._ready.wait()
        return self.server.infer(actor_id, incarnation, obs, None, None, first, evaluation=True)

    def inference_address(self) -> dict[str, Any] | None:
        """Where actors on this node send inference requests instead of calling :meth:`infer` through Ray
        (``{"node_id", "path", "token"}``, see :mod:`valan.distributed.transport`); ``None`` with
        ``distributed.transport: ray``."""
        self._ready.wait()
        if self.socket_server is None:
            return None
        return {"node_id": self.node_id, "path": self.socket_server.path, "token": self.socket_server.token}

    def _infer_any(self, actor_id: int, incarnation: str, obs: dict[str, np.ndarray], reward: np.ndarray,
                   done: np.ndarray, first: np.ndarray, evaluation: bool) -> np.ndarray | None:
        if evaluation:
            return self.infer_eval(actor_id, incarnation, obs, first)
        return self.infer(actor_id, incarnation, obs, reward, done, first)

    # -------------------------------------------------------------------------------- called by the driver
    def start(self) -> None:
        """Start the trainer thread."""
        self._thread = threading.Thread(target=self._train_loop, name="trainer", daemon=True)
        self._thread.start()

    def progress(self) -> dict[str, Any]:
        """Counters (also the inference requests answered over the socket so far), the latest training statistics,
        whether an evaluation is due, whether training finished."""
        self._ready.wait()
        with self._lock:
            return {"step": self.step, "env_steps": self.env_steps, "finished": self._finished.is_set(),
                    "error": self._error, "stats": {**self._last_stats, **self._rates},
                    "eval_pending": self._pending_eval is not None,
                    "socket_requests": 0 if self.socket_server is None else self.socket_server.requests}

    def begin_evaluation(self, current: bool = False) -> tuple[int, int]:
        """Make the weights of the pending evaluation (or, with ``current``, the weights now) the evaluation
        policy of :meth:`infer_eval`; returns their ``(step, env_steps)``."""
        with self._lock:
            if current or self._pending_eval is None:
                with self.trainer.weights_lock:  # a process trainer may be updating them right now
                    weights = weights_snapshot(self.agent, self.eval_agent)
                step, env_steps = self.step, self.env_steps
            else:
                step, env_steps, weights = self._pending_eval
            self._pending_eval = None
            load_snapshot(self.eval_agent, weights)
            self.server.set_eval_agent(self.eval_agent)
            self._evaluating = (step, env_steps)
            return step, env_steps

    def save_best(self, split: str, metric: str, value: float) -> str:
        """Write the evaluation snapshot (the weights of the latest :meth:`begin_evaluation`) as ``BEST.pt``,
        recording its ``value`` of ``metric`` on ``split``; returns the path."""
        step, env_steps = self._evaluating
        # No optimizer state: it has moved on since the snapshot (and only the trainer thread talks to the trainer).
        state = {**self._state(optimizer=False), "model": self.eval_agent.state_dict(), "step": step,
                 "env_steps": env_steps}
        return str(self.checkpoints.save_best(state, split, metric, value))

    def retire_actor(self, actor_id: int) -> None:
        """An actor died: forget its state and drop its unfinished unrolls."""
        self.server.retire(actor_id)

    def stop(self) -> dict[str, Any]:
        """Stop training (if still running), write the final checkpoint, and report the counters."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._finished.set()
        self.server.stop_unrolls()
        path = self.checkpoints.path(self.step)
        if not path.exists() and self._error is None:  # after an error the trainer may be gone
            self._save_checkpoint()
        self.writer.flush()
        return {"step": self.step, "env_steps": self.env_steps, "checkpoint": str(path), "error": self._error}

    def close(self) -> None:
        if self.socket_server is not None:
            self.socket_server.close()
        self.server.close()
        self.trainer.close()
        self.writer.close()

    # -------------------------------------------------------------------------------- training
    def _next_batch(self) -> Unroll | None:
        """``B`` unrolls from the queue (blocks of ``K`` are split across batches); None when stopping."""
        blocks, size = [], 0
        if self._leftover is not None:
            blocks.append(self._leftover)
            size += self._leftover.batch_size
            self._leftover = None
        while size < self.batch_size:
            try:
                block = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return None
                continue
            blocks.append(block)
            size += block.batch_size
        batch = Unroll.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        if size > self.batch_size:
            batch, self._leftover = batch.split(self.batch_size)
        return batch

    def _budget_reached(self, started: float) -> bool:
        run = self.config.run
        if self.env_steps >= run.total_env_steps:
            return True
        return run.total_minutes > 0 and time.monotonic() - started >= 60.0 * run.total_minutes

    def _train_loop(self) -> None:
        """Train until stopped or out of budget. The next batch is assembled while the trainer runs the update in
        flight; the counters, checkpoints and evaluation snapshots of an update are handled once it finished and
        before the next one is submitted, so they see the weights of exactly ``self.step`` updates."""
        started = last_log = time.monotonic()
        steps_at_log, env_steps_at_log = self.step, self.env_steps
        in_flight: float | None = None  # the policy lag of the submitted update, until it finished
        try:
            while True:
                running = not self._stop.is_set() and not self._budget_reached(started)
                batch = self._next_batch() if running else None
                if in_flight is not None:
                    stats = self.trainer.result()
                    with self._lock:
                        self.step += 1
                        self.env_steps += self.unroll_length * self.batch_size
                        self._last_stats = {**stats, "policy_lag": in_flight}
                        self._on_step_boundaries()
                    in_flight = None
                    now = time.monotonic()
                    if now - last_log >= LOG_EVERY_S:
                        self._log(now - last_log, self.step - steps_at_log, self.env_steps - env_steps_at_log)
                        last_log, steps_at_log, env_steps_at_log = now, self.step, self.env_steps
                if batch is None or self._stop.is_set() or self._budget_reached(started):
                    break  # a batch fetched while the last update ran is dropped: the budget is spent
                lag = float(np.mean(self.step - batch.policy_version[:-1]))
                self.trainer.submit(batch, self.step)
                in_flight = lag
        except BaseException as e:  # reported to the driver through progress()
            self._error = f"{type(e).__name__}: {e}"
            raise
        finally:
            self._finished.set()
            self.server.stop_unrolls()

    def _on_step_boundaries(self) -> None:
        """Checkpoint and schedule evaluations when the env-step counter crosses their periods."""
        run = self.config.run
        if run.checkpoint_every_env_steps > 0 and (
                self.env_steps // run.checkpoint_every_env_steps > self._checkpointed_up_to // run.checkpoint_every_env_steps):
            self._save_checkpoint()
            self._checkpointed_up_to = self.env_steps
        if run.eval_every_env_steps > 0 and (
                self.env_steps // run.eval_every_env_steps > self._evaluated_up_to // run.eval_every_env_steps):
            self._pending_eval = (self.step, self.env_steps, weights_snapshot(self.agent, self.eval_agent))
            self._evaluated_up_to = self.env_steps

    def _log(self, seconds: float, steps: int, env_steps: int) -> None:
        inference = self.server.pop_stats()
        socket_requests = 0 if self.socket_server is None else self.socket_server.requests
        scalars = {f"learner/{k}": v for k, v in self._last_stats.items()}
        scalars.update({
            "throughput/env_steps_per_s": env_steps / seconds,
            "throughput/learner_steps_per_s": steps / seconds,
            "inference/mean_batch_size": inference.mean_batch_size,
            "inference/mean_wait_ms": inference.mean_wait_ms,
            "inference/forward_ms": 1000.0 * inference.forward_s / max(1, inference.batches),
            "queue/fill": self.queue.qsize() / self.queue.maxsize,
            # the share of inference requests that came over the learner's socket rather than as Ray calls
            "inference/socket_share": (socket_requests - self._socket_requests_at_log) / max(1, inference.requests),
        })
        self._socket_requests_at_log = socket_requests
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, self.env_steps)
        with self._lock:
            self._rates = {k.split("/", 1)[1]: v for k, v in scalars.items() if not k.startswith("learner/")}

    # -------------------------------------------------------------------------------- checkpoints
    def _state(self, optimizer: bool = True) -> dict[str, Any]:
        state = {"model": self.agent.state_dict(), "step": self.step, "env_steps": self.env_steps,
                 "config": to_dict(self.config), "problem": self.problem.name,
                 "vocab": self.problem.vocabulary(self.config).tokens}  # so acting needs no training files
        if optimizer:
            state["optimizer"] = self.trainer.optimizer_state()
        return state

    def _save_checkpoint(self) -> Path:
        return self.checkpoints.save(self.step, self._state())

    def _restore(self) -> None:
        path = self.checkpoints.latest()
        if path is None:
            raise InputError("no checkpoint to resume from", source=str(self.checkpoints.directory))
        state = load_checkpoint(path, map_location=self.device)
        self.agent.load_state_dict(state["model"])
        self.trainer.load_optimizer_state(state["optimizer"])
        self.step, self.env_steps = int(state["step"]), int(state["env_steps"])

    def _init_from(self, path: str) -> None:
        state = load_checkpoint(path, map_location=self.device)
        self.problem.init_from(self.agent, state, source=path)
