"""The training driver: places the learner and the actors on the Ray cluster, supervises them, runs evaluations.

``train(problem, config, out_dir)`` expects Ray to be initialised (``valan train`` does it: a local instance
sized to the machine, or ``--ray-address`` to join a cluster). Placement:

- the learner asks for one CPU, plus ``num_gpus=1`` when the cluster has a GPU and the custom resource
  ``learner: 1`` when some node advertises it (``ray start --head --resources='{"learner": 1}'``), so it
  lands on the accelerator node;
- actors (training and evaluation) share the remaining CPUs, fractionally (at most one CPU each), so on a
  cluster they fill the CPU nodes.

Evaluations run on eval actors at step 0 (the untrained policy), every ``run.eval_every_env_steps`` and at the
end; a resumed run whose checkpoint has no complete evaluation in ``eval/metrics.jsonl`` (an interrupt skips the
final one and cuts short the one in flight) evaluates the resumed weights first. When the run's selection split
(``run.select_split``; default: the first eval split whose name contains "unseen", else the first) scores a new
best ``problem.select_metric``, the learner writes the evaluated weights as ``checkpoints/BEST.pt``.

Every process can fail and the run still finishes:

- a training actor: Ray restarts it (``max_restarts``); the driver tells the learner to drop the actor's
  unfinished unrolls and state and starts the new incarnation's loop (a replacement once Ray gives up);
- an eval actor: restarted the same way; the evaluation it was running is retried on the new incarnation (the
  learner still holds the same snapshot), and skipped with a warning after ``EVAL_MAX_TRIES`` tries;
- the learner: restarted from the newest checkpoint (``LEARNER_MAX_RESTARTS`` times at most), the actors go on
  with the new one; the env steps trained since that checkpoint are lost, and the console, the run log and
  TensorBoard (``faults/learner_env_steps_lost``) say how many.

An interrupt (``KeyboardInterrupt``, which :class:`valan.runs.Stopped` is) stops the learner, which writes a
checkpoint of the step it reached, then propagates with that checkpoint's path as ``checkpoint``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from valan.checkpoint import BEST, CheckpointManager
from valan.problems.config import TrainConfig
from valan.distributed.actor import EnvActor
from valan.distributed.evaluation import EvalAggregator, assign_splits
from valan.distributed.learner import Learner
from valan.errors import InputError
from valan.problems import Problem

ACTOR_MAX_RESTARTS = 3  # Ray restarts a failed actor this many times; then the driver replaces it
LEARNER_MAX_RESTARTS = 3  # learner failures a run survives (each restarts it from the newest checkpoint)
EVAL_MAX_TRIES = 3  # tries of one evaluation of one split on failing eval actors before it is skipped
EVAL_ACTOR_ID_BASE = 1_000_000  # eval actors' ids on the inference server, apart from training actors'
POLL_S = 0.5  # seconds between the driver's looks at actors and learner


@dataclasses.dataclass
class TrainResult:
    """What a run did. ``evaluations`` maps ``step -> split -> metrics``."""

    out_dir: Path
    step: int
    env_steps: int
    checkpoint: str
    evaluations: dict[int, dict[str, dict[str, float]]]
    actor_failures: int
    learner_node: str
    actor_nodes: list[str]
    seconds: float
    eval_actor_failures: int = 0
    evaluations_skipped: int = 0  # (split, step) evaluations given up after EVAL_MAX_TRIES failures
    learner_failures: int = 0
    # trained since the checkpoint a restarted learner resumed from, summed; as the driver last saw the learner's
    # counter (polled every POLL_S), so a lower bound by at most one poll's training
    env_steps_lost: int = 0
    best_checkpoint: str | None = None  # checkpoints/BEST.pt when a selection metric exists


def placement(cluster: dict[str, float], num_actors: int, num_eval_actors: int) -> tuple[dict[str, Any], float]:
    """Ray options of the learner and the CPUs of each actor for a cluster with resources ``cluster``."""
    total_cpus = cluster.get("CPU", 1.0)
    learner_cpus = min(1.0, total_cpus / 2)
    learner: dict[str, Any] = {"num_cpus": learner_cpus,
                               "max_concurrency": num_actors + num_eval_actors + 8}
    if cluster.get("GPU", 0) >= 1:
        learner["num_gpus"] = 1
    if cluster.get("learner", 0) >= 1:
        learner["resources"] = {"learner": 1}
    per_actor = (total_cpus - learner_cpus) / max(1, num_actors + num_eval_actors)
    actor_cpus = max(0.01, math.floor(100 * min(1.0, per_actor)) / 100)
    return learner, actor_cpus


def with_absolute_data_root(config: TrainConfig) -> TrainConfig:
    """``config`` with ``data.root`` made absolute against this process's working directory: Ray workers (on
    other nodes, too) resolve data paths from their own working directories."""
    root = config.data.root
    if root is None or Path(os.path.expanduser(root)).is_absolute():
        return config
    absolute = str(Path(os.path.expanduser(root)).resolve())
    return dataclasses.replace(config, data=dataclasses.replace(config.data, root=absolute))


def _unwrap(error: BaseException) -> BaseException:
    """The user-facing error inside a Ray task error (an ``InputError`` raised in the learner, say)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def select_split(config: TrainConfig) -> str | None:
    """The eval split whose ``problem.select_metric`` picks ``BEST.pt`` (``run.select_split``, else the first eval
    split whose name contains "unseen", else the first); ``None`` without eval splits."""
    splits = list(config.data.eval)
    chosen = config.run.select_split
    if chosen is not None:
        if chosen not in splits:
            raise InputError(f"run.select_split: {chosen!r} is not an eval split (data.eval has: "
                             f"{', '.join(splits) or 'none'})")
        return chosen
    return next((split for split in splits if "unseen" in split), splits[0] if splits else None)


def _evaluated_at(out_dir: str | Path, step: int, splits: list[str]) -> bool:
    """Whether ``<out_dir>/eval/metrics.jsonl`` holds every split's evaluation at learner step ``step``."""
    done = {line.get("split") for line in EvalAggregator.read_history(out_dir) if line.get("step") == step}
    return set(splits) <= done


def _node_of(actor) -> str:
    """The node an actor runs on; "unavailable" for one that died and is not back (a late failure)."""
    import ray

    try:
        return ray.get(actor.node_id.remote(), timeout=30)
    except ray.exceptions.RayError:
        return "unavailable"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Supervisor:
    """Keeps the training actors' loops running through actor and learner failures.

    A failed ``run`` call means the actor process died: the learner drops its state and unfinished unrolls, and
    once Ray has restarted the actor (probed with a cheap call) its new incarnation's loop starts. An actor that
    Ray will not restart any more (``max_restarts`` used up) is replaced by a new one. A ``run`` that returns
    ``None`` lost its learner: it starts again on the learner the driver restarted (:meth:`replace_learner`).
    """

    def __init__(self, make_actor, num_actors: int, learner):
        import ray

        self._ray = ray
        self.make_actor, self.learner, self.generation = make_actor, learner, 0
        self.actors = [make_actor(i) for i in range(num_actors)]
        self.failures = [0] * num_actors
        self.runs: dict[Any, tuple[int, int]] = {}  # run call -> (actor, generation of the learner it serves)
        self.probes: dict[Any, int] = {}
        self.waiting: set[int] = set()  # actors whose learner died before the driver replaced it
        for i in range(num_actors):
            self._run(i)

    def _run(self, i: int) -> None:
        self.runs[self.actors[i].run.remote(self.learner)] = (i, self.generation)

    def replace_learner(self, learner) -> None:
        """Point every actor at ``learner`` (the old one died)."""
        self.learner = learner
        self.generation += 1
        for i in sorted(self.waiting):
            self._run(i)
        self.waiting.clear()

    def poll(self, timeout: float) -> None:
        ray = self._ray
        pending = list(self.runs) + list(self.probes)
        if not pending:
            time.sleep(timeout)
            return
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=timeout)
        for ref in ready:
            if ref in self.runs:
                i, generation = self.runs.pop(ref)
                try:
                    env_steps = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    self.failures[i] += 1
                    self.learner.retire_actor.remote(i)
                    self._recover(i, e)
                    continue
                if env_steps is None:  # its learner died (a number: the learner said training is over)
                    if generation < self.generation:
                        self._run(i)
                    else:
                        self.waiting.add(i)
            else:
                i = self.probes.pop(ref)
                try:
                    ray.get(ref)
                    self._run(i)
                except ray.exceptions.RayActorError as e:
                    self._recover(i, e)

    def _recover(self, i: int, error: BaseException) -> None:
        if isinstance(error, self._ray.exceptions.ActorDiedError):  # Ray will not restart it: start a new one
            self.actors[i] = self.make_actor(i)
        self.probes[self.actors[i].node_id.remote()] = i

    def wait_finished(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.runs and time.monotonic() < deadline:
            self.poll(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def kill(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)


class _Evaluations:
    """Runs evaluations on the eval actors through their failures: a split whose eval actor died is retried on
    its next incarnation once that answers (the learner still holds the same snapshot), and skipped after
    ``EVAL_MAX_TRIES`` tries."""

    def __init__(self, make_eval_actor, assignment: list[list[str]], aggregator: EvalAggregator, say):
        import ray

        self._ray = ray
        self.make_eval_actor, self.assignment, self.aggregator, self.say = make_eval_actor, assignment, aggregator, say
        self.actors = [make_eval_actor(i) for i in range(len(assignment))]
        # call -> (is a probe of a restarted actor, actor, split, step, env steps, try)
        self.inflight: dict[Any, tuple[bool, int, str, int, int, int]] = {}
        self.results: dict[int, dict[str, dict[str, float]]] = {}  # step -> split -> metrics
        self.failures = self.skipped = 0

    def start(self, learner, current: bool) -> None:
        """Snapshot the learner's weights (the pending evaluation's, or with ``current`` those now) and evaluate
        every split on them."""
        step, env_steps = self._ray.get(learner.begin_evaluation.remote(current))
        for i, splits in enumerate(self.assignment):
            for split in splits:
                self._submit(learner, False, i, split, step, env_steps, 1)

    def _submit(self, learner, probe: bool, i: int, split: str, step: int, env_steps: int, attempt: int) -> None:
        call = self.actors[i].node_id.remote() if probe else self.actors[i].evaluate.remote(split, learner)
        self.inflight[call] = (probe, i, split, step, env_steps, attempt)

    def collect(self, learner, timeout: float | None) -> list[tuple[str, dict[str, float]]]:
        """Record the evaluations that finished (waiting up to ``timeout`` seconds, ``None``: for all); returns
        their ``(split, metrics)``."""
        ray = self._ray
        recorded: list[tuple[str, dict[str, float]]] = []
        while self.inflight:
            ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=timeout)
            for ref in ready:
                probe, i, split, step, env_steps, attempt = self.inflight.pop(ref)
                try:
                    episodes = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    if isinstance(e, ray.exceptions.ActorDiedError):  # Ray will not restart it: start a new one
                        self.actors[i] = self.make_eval_actor(i)
                    if probe:  # not back yet: ask again
                        self._submit(learner, True, i, split, step, env_steps, attempt)
                        continue
                    self.failures += 1
                    learner.retire_actor.remote(EVAL_ACTOR_ID_BASE + i)
                    if attempt < EVAL_MAX_TRIES:
                        self.say(f"eval actor {i} failed evaluating {split} at step {step}; retrying on its next "
                                 f"incarnation (try {attempt + 1} of {EVAL_MAX_TRIES})")
                        self._submit(learner, True, i, split, step, env_steps, attempt + 1)
                    else:
                        self.skipped += 1
                        self.say(f"warning: skipped the evaluation of {split} at step {step}: its eval actor failed "
                                 f"{attempt} times")
                    continue
                if probe:  # the actor is back: run the evaluation again
                    self._submit(learner, False, i, split, step, env_steps, attempt)
                elif episodes is not None:  # None: the learner died, and the snapshot with it
                    metrics = self.aggregator.record(split, step, env_steps, episodes)
                    self.results.setdefault(step, {})[split] = metrics
                    recorded.append((split, metrics))
            if timeout is not None:
                break
        return recorded

    def kill(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)


def train(problem: Problem, config: TrainConfig, out_dir: str | Path, resume: bool = False,
          init_from: str | None = None, show_progress: bool = True,
          say: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``problem``'s agent with ``config`` on the current Ray cluster; see the module docstring.

    The caller owns ``out_dir`` (``valan train`` claims it with :class:`valan.runs.RunFolder`). ``say`` tells the
    user about faults and recoveries (default: a line on stderr).
    """
    import ray
    from tqdm import tqdm

    started = time.monotonic()
    out_dir = Path(out_dir).resolve()  # the learner's working directory may differ from ours
    config = with_absolute_data_root(config)
    checkpoints = CheckpointManager(out_dir / "checkpoints")
    if resume and checkpoints.latest() is None:
        raise InputError("no checkpoint to resume from", source=str(checkpoints.directory))
    say = say or (lambda line: tqdm.write(line, file=sys.stderr))
    dist = config.distributed
    eval_splits = list(config.data.eval)
    best_split = select_split(config) if problem.select_metric else None
    assignment = assign_splits(eval_splits, dist.num_eval_actors) if eval_splits else []
    learner_options, actor_cpus = placement(ray.cluster_resources(), dist.num_actors, len(assignment))
    run_id = uuid.uuid4().hex[:8]  # names the run's Ray actors: valan-<run_id>-learner-<n>, -actor-<i>, -eval-<i>
    actor_class = ray.remote(EnvActor)

    def start_learner(generation: int, resume_now: bool):
        handle = ray.remote(Learner).options(name=f"valan-{run_id}-learner-{generation}", **learner_options).remote(
            problem, config, str(out_dir), resume_now, None if resume_now else init_from)
        return handle, handle.setup.remote()

    def set_up(setup_call) -> dict[str, Any]:
        try:
            return ray.get(setup_call)
        except ray.exceptions.RayError as e:
            raise _unwrap(e) from None

    def start_actor(name: str, actor_id: int, num_envs: int):
        return actor_class.options(name=f"valan-{run_id}-{name}-{uuid.uuid4().hex[:4]}", num_cpus=actor_cpus,
                                   max_restarts=ACTOR_MAX_RESTARTS).remote(actor_id, problem, config, num_envs)

    # Actors start up while the learner sets up; their requests wait for it, then for the trainer (backpressure).
    # An eval actor steps a whole inference batch of episodes at a time (nothing else is waiting on it).
    learner, setup = start_learner(0, resume)
    aggregator = EvalAggregator(problem, config, out_dir)
    evals = _Evaluations(lambda i: start_actor(f"eval-{i}", EVAL_ACTOR_ID_BASE + i,
                                               max(dist.envs_per_actor, dist.max_batch)),
                         assignment, aggregator, say)
    supervisor = _Supervisor(lambda i: start_actor(f"actor-{i}", i, dist.envs_per_actor), dist.num_actors, learner)
    best = checkpoints.best_value() if resume else None
    best_path: str | None = None
    learner_failures = env_steps_lost = env_steps_seen = 0

    def keep_best(recorded: list[tuple[str, dict[str, float]]]) -> None:
        nonlocal best, best_path
        for split, metrics in recorded:
            value = metrics.get(problem.select_metric)
            if split == best_split and value is not None and (best is None or value > best):
                best_path, best = ray.get(learner.save_best.remote(split, problem.select_metric, value)), value

    bar = None
    try:
        info = first_info = set_up(setup)
        if assignment and not _evaluated_at(out_dir, info["step"], eval_splits):
            # The untrained policy, for comparison; or, on resume, the weights a stop left without their
            # evaluation (a signal skips the final one and cuts short the one in flight).
            evals.start(learner, current=True)
            keep_best(evals.collect(learner, timeout=None))
        ray.get(learner.start.remote())
        bar = tqdm(total=config.run.total_env_steps, initial=info["env_steps"], unit="env step",
                   disable=not show_progress, dynamic_ncols=True)
        while True:
            try:
                supervisor.poll(POLL_S)
                keep_best(evals.collect(learner, timeout=0))
                progress = ray.get(learner.progress.remote())
                if progress["eval_pending"] and assignment and not evals.inflight:
                    evals.start(learner, current=False)
            except ray.exceptions.RayActorError as e:  # the learner died: restart it from the newest checkpoint
                learner_failures += 1
                if learner_failures > LEARNER_MAX_RESTARTS:
                    raise RuntimeError(f"the learner failed {learner_failures} times; giving up "
                                       f"(last: {_first_line(e)})") from None
                ray.kill(learner, no_restart=True)
                newest = checkpoints.latest()
                learner, setup = start_learner(learner_failures, resume_now=newest is not None)
                info = set_up(setup)
                lost = max(0, env_steps_seen - info["env_steps"])
                env_steps_lost += lost
                evals.inflight.clear()  # their snapshot died with the learner; the new one evaluates again
                ray.get(learner.start.remote())
                supervisor.replace_learner(learner)
                aggregator.writer.add_scalar("faults/learner_env_steps_lost", lost, info["env_steps"])
                aggregator.writer.flush()
                say(f"the learner failed ({_first_line(e)}); restarted it from {newest or 'scratch'} "
                    f"(env step {info['env_steps']}): {lost} env steps lost (at least: trained since that "
                    f"checkpoint as last seen) (restart {learner_failures} of at most {LEARNER_MAX_RESTARTS})")
                env_steps_seen = info["env_steps"]
                bar.n = info["env_steps"]
                bar.refresh()
                continue
            if progress["error"]:
                raise RuntimeError(f"learner failed: {progress['error']}")
            env_steps_seen = progress["env_steps"]
            bar.update(progress["env_steps"] - bar.n)
            bar.set_postfix(_postfix(progress, evals.results, problem.metric_names), refresh=False)
            if progress["finished"]:
                break
        summary = ray.get(learner.stop.remote())
        supervisor.wait_finished(timeout=30.0)
        keep_best(evals.collect(learner, timeout=None))
        if assignment and not _evaluated_at(out_dir, summary["step"], eval_splits):
            evals.start(learner, current=True)
            keep_best(evals.collect(learner, timeout=None))
        actor_nodes = [_node_of(actor) for actor in supervisor.actors]
    except KeyboardInterrupt as stop:  # save where training got to, then let the caller report it
        stop.checkpoint = None
        with contextlib.suppress(ray.exceptions.RayError, NameError):
            stop.checkpoint = ray.get(learner.stop.remote(), timeout=120)["checkpoint"] if bar is not None else None
        raise
    finally:
        if bar is not None:
            bar.close()
        supervisor.kill()
        evals.kill()
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(learner.close.remote(), timeout=30)
        ray.kill(learner, no_restart=True)
        aggregator.close()
    if summary["error"]:
        raise RuntimeError(f"learner failed: {summary['error']}")
    if best_path is None and (checkpoints.directory / BEST).is_file():
        best_path = str(checkpoints.directory / BEST)
    return TrainResult(out_dir=out_dir, step=summary["step"], env_steps=summary["env_steps"],
                       checkpoint=summary["checkpoint"], evaluations=evals.results,
                       actor_failures=sum(supervisor.failures), learner_node=first_info["node_id"],
                       actor_nodes=actor_nodes, seconds=time.monotonic() - started,
                       eval_actor_failures=evals.failures, evaluations_skipped=evals.skipped,
                       learner_failures=learner_failures, env_steps_lost=env_steps_lost, best_checkpoint=best_path)


def _postfix(progress: dict[str, Any], evaluations: dict[int, dict[str, dict[str, float]]],
             metric_names: tuple[str, ...]) -> dict[str, str]:
    stats = progress["stats"]
    out = {"step": str(progress["step"])}
    if "loss" in stats:
        out["loss"] = f"{stats['loss']:.3f}"
    if "env_steps_per_s" in stats:
        out["env/s"] = f"{stats['env_steps_per_s']:.0f}"
    if evaluations and metric_names:
        split, metrics = next(iter(evaluations[max(evaluations)].items()))
        name = metric_names[0]
        if name in metrics:
            out[f"{split} {name}"] = f"{metrics[name]:.3f}"
    return out


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """``InputError`` naming ``address`` (``host:port``; ``None`` and ``auto`` pass) when nothing accepts
    connections there: Ray itself would retry for minutes."""
    import socket

    if not address or address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address}: expected 'auto' or host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise InputError(f"--ray-address {address}: no Ray cluster answers there ({e.strerror or e})") from None


# Run by ray_session's guard process: every second it records the processes descending from the driver (pid argv[1]),
# with their start times; when its stdin closes without "done" (the driver was killed) it SIGKILLs those still
# alive. Ray's own helpers (dashboard and runtime-env agents) outlive a SIGKILL-ed driver otherwise.
_ORPHAN_GUARD = r"""
import os, signal, sys, threading
driver, seen, ended = int(sys.argv[1]), {}, threading.Event()
def scan():
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    return children
def started(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
def watch():
    while not ended.wait(1.0):
        children, todo = scan(), [driver]
        while todo:
            for pid, start in children.get(todo.pop(), []):
                if pid != os.getpid():
                    seen[pid] = start
                    todo.append(pid)
threading.Thread(target=watch, daemon=True).start()
clean = sys.stdin.read() == "done"
ended.set()
if not clean:
    for pid, start in seen.items():
        if started(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
"""


@contextlib.contextmanager
def _orphan_guard():
    """While the block runs, a guard process kills this process's descendants (the local Ray instance) should this
    process die without leaving the block (SIGKILL, say); Linux only (it reads /proc), else a no-op."""
    import subprocess

    if not os.path.isdir("/proc/self"):
        yield
        return
    guard = subprocess.Popen([sys.executable, "-c", _ORPHAN_GUARD, str(os.getpid())], stdin=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        yield
    finally:
        guard.communicate("done")


@contextlib.contextmanager
def ray_session(address: str | None = None, verbose: bool = False):
    """Ray for one run, shut down afterwards however the run ends (no Ray process left behind in local mode).

    ``address=None`` starts a local instance sized to this machine, always a new one (``address="local"``), even
    where a cluster runs or a stale cluster-address file is left, and makes sure it dies with this process even
    when that is SIGKILL-ed (:func:`_orphan_guard`); ``"auto"`` or ``host:port`` joins a cluster
    (``InputError`` naming the address when none answers). ``verbose``: workers' output reaches the console.
    """
    import logging

    import ray

    check_ray_address(address)
    with contextlib.ExitStack() as stack:
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=verbose)
            else:
                stack.enter_context(_orphan_guard())  # a local instance dies with this process, however it dies
                ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=verbose)
        except ConnectionError as e:
            raise InputError(f"--ray-address {address}: cannot connect to a Ray cluster ({_first_line(e)})") from None
        try:
            yield
        finally:
            ray.shutdown()


def check_start(problem: Problem, config: TrainConfig, out_dir: str | Path, resume: bool = False,
                init_from: str | Path | None = None) -> str | None:
    """Before anything starts: the checkpoint a run resumes from (the newest in ``out_dir``) or initialises from
    (``init_from``: a file, or a run folder meaning its ``checkpoints/LATEST.pt``) is readable, of this problem
    and fits its agent; ``run.select_split`` names an eval split. Returns ``init_from`` resolved to a file.
    ``InputError`` (one line naming the file) otherwise."""
    from valan.checkpoint import load_checkpoint, resolve_checkpoint

    if problem.select_metric:
        select_split(config)
    if resume:
        path = CheckpointManager(Path(out_dir) / "checkpoints").latest()
        if path is None:
            raise InputError("no checkpoint to resume from", source=str(Path(out_dir) / "checkpoints"))
    elif init_from is not None:
        path = resolve_checkpoint(init_from)
    else:
        return None
    state = load_checkpoint(path)
    if resume:
        if state.get("problem") != problem.name:
            raise InputError(f"a {state.get('problem')!r} checkpoint cannot resume a {problem.name!r} run",
                             source=str(path))
        missing = [key for key in ("model", "optimizer", "step", "env_steps") if key not in state]
        if missing:
            raise InputError(f"not a valan train checkpoint to resume from (no {', '.join(missing)})",
                             source=str(path))
    problem.init_from(problem.make_agent(config), state, source=str(path))  # the weights fit this agent
    return None if resume else str(path)
