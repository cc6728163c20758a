"""Where the learner's updates run: on a thread of the learner's process, or in a child process of its own.

The learner (``valan.distributed.learner``) hands every batch of unrolls to a trainer, which owns the optimizer and
runs :func:`valan.learning.step.train_step` on the learner's model. ``distributed.trainer`` chooses:

- ``thread`` (:class:`ThreadTrainer`): the update runs on the learner's trainer thread, in the process that also
  serves inference. On a GPU this is what SEED RL does: the kernels run outside the interpreter lock.
- ``process`` (:class:`ProcessTrainer`): the update runs in a child process (forked from the learner) that shares
  the model's parameters through shared memory and updates them in place. On CPU, a forward/backward of a model
  this size is thousands of small ops whose Python dispatch holds the interpreter lock, so a trainer thread and
  the inference thread of one process together get about one core; in two processes they get two.
  Adam's in-place update holds :attr:`ProcessTrainer.weights_lock`, which the inference server also holds around
  each forward pass of the training model, so acting always sees the weights of one whole learner step.
- ``auto`` (default): ``process`` when the learner runs on CPU, ``thread`` on a GPU (CUDA does not survive a fork,
  and there the thread costs nothing).

Both expose the same calls, made by the learner's trainer thread only: :meth:`submit` (start an update) and
:meth:`result` (wait for it, return its statistics), at most one update in flight; :meth:`train` (both at once);
:meth:`optimizer_state`, :meth:`load_optimizer_state` and :meth:`close`, with no update in flight. With no update
in flight the model's weights do not change, so the learner takes checkpoints and evaluation snapshots there.
The learner assembles the next batch while an update is in flight, so a process trainer does not wait for it
(the thread trainer runs the update inside :meth:`result`, so there the two alternate as before).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import multiprocessing.connection
from typing import Any, ContextManager, NoReturn

import torch

from valan.errors import InputError
from valan.learning.step import make_optimizer, train_step
from valan.learning.unroll import Unroll


def _to_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), weights_only=True)


class ThreadTrainer:
    """The update in the calling thread. ``problem.loss`` is the loss; ``device`` where batches go;
    ``weights_lock`` is held while the optimizer changes the parameters (none needed in one thread)."""

    def __init__(self, agent: torch.nn.Module, problem: Any, config: Any, device: torch.device,
                 weights_lock: ContextManager[Any] | None = None):
        self.agent, self.problem, self.config, self.device = agent, problem, config, device
        self.optimizer = make_optimizer(agent, config.learning)
        self.weights_lock: ContextManager[Any] = weights_lock if weights_lock is not None else contextlib.nullcontext()
        self._submitted: tuple[Unroll, int] | None = None

    def train(self, batch: Unroll, step: int) -> dict[str, float]:
        """One learner update on ``batch`` (``step`` = learner steps so far); its statistics."""
        self.agent.train()
        return train_step(self.agent, self.optimizer, batch.to_tensors(self.device), self.config, step,
                          loss_fn=self.problem.loss, weights_lock=self.weights_lock)

    def submit(self, batch: Unroll, step: int) -> None:
        """Start the update on ``batch``; here it runs in :meth:`result`."""
        self._submitted = (batch, step)

    def result(self) -> dict[str, float]:
        """Run the submitted update; its statistics."""
        (batch, step), self._submitted = self._submitted, None
        return self.train(batch, step)

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def close(self) -> None:
        pass


def _serve(conn: multiprocessing.connection.Connection, trainer: ThreadTrainer) -> None:
    """The child process: run ``trainer``'s calls for the learner until it says stop or goes away. One torch thread: an
    OpenMP thread pool the parent used does not survive the fork (using it would hang), and the design gives the
    trainer one core (a Ray learner runs with one thread, too)."""
    torch.set_num_threads(1)
    while True:
        try:
            request, *args = conn.recv()
        except (EOFError, OSError):  # the learner is gone
            return
        if request == "stop":
            return
        try:
            if request == "train":
                result: Any = trainer.train(*args)
            elif request == "optimizer_state":
                result = _to_bytes(trainer.optimizer_state())
            elif request == "load_optimizer_state":
                result = trainer.load_optimizer_state(_from_bytes(args[0]))
            else:
                raise ValueError(f"unknown trainer request {request!r}")
            conn.send(("ok", result))
        except Exception as e:  # reported to the learner, which raises it on its trainer thread
            conn.send(("error", f"{type(e).__name__}: {e}"))


class ProcessTrainer:
    """The update in a forked child process sharing ``agent``'s parameters (see the module docstring).

    ``agent`` must live on CPU. Its parameters move to shared memory; buffers (the feature table, which may be
    gigabytes) are not copied: the fork shares their pages, and neither process writes them. The optimizer lives in
    the child: :meth:`optimizer_state` and :meth:`load_optimizer_state` carry its state across (as bytes).
    """

    def __init__(self, agent: torch.nn.Module, problem: Any, config: Any):
        if any(p.device.type != "cpu" for p in agent.parameters()):
            raise ValueError("ProcessTrainer needs a model on CPU (distributed.trainer=thread on a GPU)")
        # fork, not spawn: the child inherits the model (compiled or not), the problem and the config as they are,
        # and the learner (a Ray worker run as a script) has no importable main module for spawn to re-run.
        context = multiprocessing.get_context("fork")
        for parameter in agent.parameters():
            parameter.share_memory_()
        self.weights_lock = context.Lock()
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, name="valan-trainer", daemon=True,
                                        args=(child_conn, ThreadTrainer(agent, problem, config, torch.device("cpu"),
                                                                        self.weights_lock)))
        self._process.start()
        child_conn.close()

    def _send(self, request: str, *args: Any) -> None:
        try:
            self._conn.send((request, *args))
        except (OSError, BrokenPipeError):
            self._died()

    def _receive(self) -> Any:
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            self._died()
        if kind == "error":
            raise RuntimeError(f"in the trainer process: {payload}")
        return payload

    def _died(self) -> NoReturn:
        self._process.join(timeout=1)
        raise RuntimeError(f"the trainer process died (exit code {self._process.exitcode})") from None

    def _call(self, request: str, *args: Any) -> Any:
        self._send(request, *args)
        return self._receive()

    def submit(self, batch: Unroll, step: int) -> None:
        """Send ``batch`` to the child, which starts the update at once (``step`` = learner steps so far)."""
        self._send("train", batch, step)

    def result(self) -> dict[str, float]:
        """Wait for the submitted update; its statistics."""
        return self._receive()

    def train(self, batch: Unroll, step: int) -> dict[str, float]:
        """One learner update on ``batch`` in the child (``step`` = learner steps so far); its statistics."""
        return self._call("train", batch, step)

    def optimizer_state(self) -> dict[str, Any]:
        return _from_bytes(self._call("optimizer_state"))

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self._call("load_optimizer_state", _to_bytes(state))

    def close(self) -> None:
        """Stop the child (it finishes the update it is running first)."""
        if self._process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(("stop",))
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn.close()


def make_trainer(kind: str, agent: torch.nn.Module, problem: Any, config: Any,
                 device: torch.device) -> ThreadTrainer | ProcessTrainer:
    """The trainer ``distributed.trainer`` (``auto``, ``thread`` or ``process``) names, for a model on ``device``."""
    if kind == "auto":
        kind = "process" if device.type == "cpu" else "thread"
    if kind == "process":
        if device.type != "cpu":
            raise InputError(f"distributed.trainer=process needs the learner on CPU, but it runs on {device.type}: "
                             f"set distributed.trainer to auto or thread")
        return ProcessTrainer(agent, problem, config)
    if kind == "thread":
        return ThreadTrainer(agent, problem, config, device)
    raise ValueError(f"unknown trainer {kind!r} (auto, thread or process)")
