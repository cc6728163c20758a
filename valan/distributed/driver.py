"""The training driver: places the learner and the actors on the Ray cluster, supervises them, runs evaluations.

``train(problem, config, out_dir)`` expects Ray to be initialised (``valan train`` does it: a local instance
sized to the machine, or ``--ray-address`` to join a cluster). Placement:

- the learner asks for one CPU, plus ``num_gpus=1`` when the cluster has a GPU and the custom resource
  ``learner: 1`` when some node advertises it (``ray start --head --resources='{"learner": 1}'``), so it
  lands on the accelerator node;
- actors (training and evaluation) share the remaining CPUs, fractionally (at most one CPU each), so on a
  cluster they fill the CPU nodes.

Actors restart on failure (Ray ``max_restarts``); the driver notices the failed ``run`` call, tells the learner
to drop the actor's unfinished unrolls and state, and starts the new incarnation's loop. Evaluations run on
eval actors at step 0 (the untrained policy), every ``run.eval_every_env_steps`` and at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

from valan.checkpoint import CheckpointManager
from valan.problems.config import TrainConfig
from valan.distributed.actor import EnvActor
from valan.distributed.evaluation import EvalAggregator, assign_splits
from valan.distributed.learner import Learner
from valan.errors import InputError
from valan.problems import Problem

ACTOR_MAX_RESTARTS = 3  # Ray restarts a failed actor this many times; then the driver replaces it
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


class _Supervisor:
    """Keeps the training actors' loops running through actor failures.

    A failed ``run`` call means the actor process died: the learner drops its state and unfinished unrolls, and
    once Ray has restarted the actor (probed with a cheap call) its new incarnation's loop starts. An actor that
    Ray will not restart any more (``max_restarts`` used up) is replaced by a new one.
    """

    def __init__(self, make_actor, num_actors: int, learner):
        import ray

        self._ray = ray
        self.make_actor, self.learner = make_actor, learner
        self.actors = [make_actor(i) for i in range(num_actors)]
        self.failures = [0] * num_actors
        self.runs = {actor.run.remote(): i for i, actor in enumerate(self.actors)}
        self.probes: dict[Any, int] = {}

    def poll(self, timeout: float) -> None:
        ray = self._ray
        pending = list(self.runs) + list(self.probes)
        if not pending:
            time.sleep(timeout)
            return
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=timeout)
        for ref in ready:
            if ref in self.runs:
                i = self.runs.pop(ref)
                try:
                    ray.get(ref)  # returned: the learner said training is over
                except ray.exceptions.RayActorError as e:
                    self.failures[i] += 1
                    self.learner.retire_actor.remote(i)
                    self._recover(i, e)
            else:
                i = self.probes.pop(ref)
                try:
                    ray.get(ref)
                    self.runs[self.actors[i].run.remote()] = i
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


def train(problem: Problem, config: TrainConfig, out_dir: str | Path, resume: bool = False,
          init_from: str | None = None, show_progress: bool = True) -> TrainResult:
    """Train ``problem``'s agent with ``config`` on the current Ray cluster; see the module docstring."""
    import ray
    from tqdm import tqdm

    started = time.monotonic()
    out_dir = Path(out_dir).resolve()  # the learner's working directory may differ from ours
    config = with_absolute_data_root(config)
    if resume and CheckpointManager(out_dir / "checkpoints").latest() is None:
        raise InputError("no checkpoint to resume from", source=str(out_dir / "checkpoints"))
    dist = config.distributed
    eval_splits = list(config.data.eval)
    assignment = assign_splits(eval_splits, dist.num_eval_actors) if eval_splits else []
    learner_options, actor_cpus = placement(ray.cluster_resources(), dist.num_actors, len(assignment))
    run_id = uuid.uuid4().hex[:8]  # names the run's Ray actors: valan-<run_id>-learner, -actor-<i>, -eval-<i>
    learner = ray.remote(Learner).options(name=f"valan-{run_id}-learner", **learner_options).remote(
        problem, config, str(out_dir), resume, init_from)
    setup = learner.setup.remote()
    actor_class = ray.remote(EnvActor)

    def start_actor(name: str, actor_id: int, num_envs: int):
        return actor_class.options(name=f"valan-{run_id}-{name}", num_cpus=actor_cpus,
                                   max_restarts=ACTOR_MAX_RESTARTS).remote(actor_id, problem, config, learner, num_envs)

    def make_actor(i: int):
        return start_actor(f"actor-{i}-{uuid.uuid4().hex[:4]}", i, dist.envs_per_actor)

    # Actors start up while the learner sets up; their requests wait for it, then for the trainer (backpressure).
    # An eval actor steps a whole inference batch of episodes at a time (nothing else is waiting on it).
    eval_actors = [start_actor(f"eval-{i}", EVAL_ACTOR_ID_BASE + i, max(dist.envs_per_actor, dist.max_batch))
                   for i in range(len(assignment))]
    supervisor = _Supervisor(make_actor, dist.num_actors, learner)
    aggregator = EvalAggregator(problem, config, out_dir)
    evaluations: dict[int, dict[str, dict[str, float]]] = {}
    inflight: dict[Any, tuple[str, int, int]] = {}

    def start_evaluation(current: bool) -> None:
        step, env_steps = ray.get(learner.begin_evaluation.remote(current))
        for actor, splits in zip(eval_actors, assignment):
            for split in splits:
                inflight[actor.evaluate.remote(split)] = (split, step, env_steps)

    def collect_evaluations(timeout: float | None) -> None:
        if not inflight:
            return
        ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=timeout)
        for ref in ready:
            split, step, env_steps = inflight.pop(ref)
            metrics = aggregator.record(split, step, env_steps, ray.get(ref))
            evaluations.setdefault(step, {})[split] = metrics

    bar = None
    try:
        try:
            info = ray.get(setup)
        except ray.exceptions.RayError as e:
            raise _unwrap(e) from None
        if assignment and info["step"] == 0:
            start_evaluation(current=True)  # the untrained policy, for comparison
            collect_evaluations(timeout=None)
        ray.get(learner.start.remote())
        bar = tqdm(total=config.run.total_env_steps, initial=info["env_steps"], unit="env step",
                   disable=not show_progress, dynamic_ncols=True)
        while True:
            supervisor.poll(POLL_S)
            collect_evaluations(timeout=0)
            progress = ray.get(learner.progress.remote())
            if progress["error"]:
                raise RuntimeError(f"learner failed: {progress['error']}")
            bar.update(progress["env_steps"] - bar.n)
            bar.set_postfix(_postfix(progress, evaluations, problem.metric_names), refresh=False)
            if progress["finished"]:
                break
            if progress["eval_pending"] and assignment and not inflight:
                start_evaluation(current=False)
        summary = ray.get(learner.stop.remote())
        supervisor.wait_finished(timeout=30.0)
        collect_evaluations(timeout=None)
        if assignment and summary["step"] not in evaluations:
            start_evaluation(current=True)
            collect_evaluations(timeout=None)
        actor_nodes = ray.get([actor.node_id.remote() for actor in supervisor.actors])
    finally:
        if bar is not None:
            bar.close()
        supervisor.kill()
        for actor in eval_actors:
            ray.kill(actor, no_restart=True)
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(learner.close.remote(), timeout=30)
        ray.kill(learner, no_restart=True)
        aggregator.close()
    if summary["error"]:
        raise RuntimeError(f"learner failed: {summary['error']}")
    return TrainResult(out_dir=out_dir, step=summary["step"], env_steps=summary["env_steps"],
                       checkpoint=summary["checkpoint"], evaluations=evaluations,
                       actor_failures=sum(supervisor.failures), learner_node=info["node_id"],
                       actor_nodes=actor_nodes, seconds=time.monotonic() - started)


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
