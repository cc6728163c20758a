"""Training throughput in one run on the same model and data (default: the bundled R2R sample config):

1. central inference (SEED RL, what ``valan train`` does): N actors step environments, the learner (a Ray
   threaded actor) batches their inference requests and trains on the unrolls it assembles;
2. per-actor local inference (the original VALAN / IMPALA design): every actor holds a model copy (and the
   feature table), pulls the learner's weights every unroll and ships whole unrolls to the learner;
3. the learner's compute bound: in-process, no Ray, no environments: the acting forward pass (at the batch size
   central inference reaches with N actors) plus the learning forward/backward on a batch of unrolls.

(1) and (2) are env steps per second consumed by the learner while training, over a window after a warm-up,
for each actor layout N x K (N actors stepping K environments each; the first layout's figures are the
headline keys, all layouts are under "layouts"); (3) is ``1 / (acting seconds per env step + learning seconds per
env step)``, one torch thread. Synthetic features (no visual information) unless the config names a feature
file. The last line printed is one JSON object.

    .venv/bin/python scripts/bench_throughput.py [--config FILE] [--set KEY=VALUE ...] [--layouts 2x8 8x2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import queue
import tempfile
import time
from typing import Any

import numpy as np
import ray
import torch

from valan.problems.config import TrainConfig
from valan.problems import load_train_config
from valan.distributed.actor import EnvActor
from valan.distributed.inference import InferenceServer, new_incarnation
from valan.distributed.learner import Learner, load_snapshot, weights_snapshot
from valan.distributed.driver import placement
from valan.learning.losses import teacher_forcing_probability
from valan.problems import Problem, get_problem
from valan.learning.step import make_optimizer, train_step
from valan.learning.unroll import Unroll


class LocalInferenceLearner(Learner):
    """The learner of the IMPALA-style variant: serves weights, receives whole unrolls (backpressure when full)."""

    def weights(self) -> tuple[int, dict[str, torch.Tensor]]:
        with self._lock:
            return self.step, weights_snapshot(self.agent, self.eval_agent)

    def put_unrolls(self, blocks: list[Unroll]) -> bool:
        """Queue the blocks (waiting while the queue is full); False once training is over."""
        for block in blocks:
            while not self._finished.is_set():
                try:
                    self.queue.put(block, timeout=0.1)
                    break
                except queue.Full:
                    continue
        return not self._finished.is_set()


class LocalInferenceActor:
    """An actor with its own model copy (and feature table): acts locally, pulls weights every unroll."""

    def __init__(self, actor_id: int, problem: Problem, config: TrainConfig, learner: Any):
        self.learner, self.config = learner, config
        self.num_envs = config.distributed.envs_per_actor
        self.agent = problem.make_agent(config, problem.feature_table(config))
        self.version = 0
        self.unrolls: queue.Queue = queue.Queue()
        self.server = InferenceServer(self.agent, config.learning.unroll_length, self.unrolls, max_batch=self.num_envs,
                                      max_wait_ms=0.0, p_imitation=teacher_forcing_probability(config.learning),
                                      policy_version=lambda: self.version, seed=actor_id)
        self.env = problem.make_env(config, "train", self.num_envs, actor_id, evaluation=False)
        self.incarnation = new_incarnation()

    def run(self) -> int:
        obs, _ = self.env.reset()
        k = self.num_envs
        reward, done, first = np.zeros(k, np.float32), np.zeros(k, bool), np.ones(k, bool)
        steps = 0
        while True:
            if steps % self.config.learning.unroll_length == 0:
                self.version, weights = ray.get(self.learner.weights.remote())
                load_snapshot(self.agent, weights)
            actions = self.server.infer(0, self.incarnation, obs, reward, done, first)
            obs, reward, done, _ = self.env.step(actions)
            first = done
            steps += 1
            blocks = []
            while not self.unrolls.empty():
                blocks.append(self.unrolls.get())
            if blocks and not ray.get(self.learner.put_unrolls.remote(blocks)):
                return steps * k


def _measure(learner: Any, warmup_s: float, window_s: float) -> float:
    """Env steps per second the learner trained on over ``window_s`` after ``warmup_s``."""
    ray.get(learner.start.remote())
    time.sleep(warmup_s)
    start = ray.get(learner.progress.remote())["env_steps"]
    t0 = time.monotonic()
    time.sleep(window_s)
    end = ray.get(learner.progress.remote())["env_steps"]
    return (end - start) / (time.monotonic() - t0)


def measure_ray(variant: str, problem: Problem, config: TrainConfig, warmup_s: float, window_s: float
                ) -> dict[str, float]:
    """Env steps/s of ``variant`` ("threads": central inference, or "local") with the config's actors; plus stats."""
    learner_class = {"threads": Learner, "local": LocalInferenceLearner}[variant]
    dist = config.distributed
    learner_options, actor_cpus = placement(ray.cluster_resources(), dist.num_actors, 0)
    with tempfile.TemporaryDirectory() as out:
        learner = ray.remote(learner_class).options(**learner_options).remote(problem, config, out)
        ray.get(learner.setup.remote())
        if variant == "local":
            actor_class = ray.remote(LocalInferenceActor).options(num_cpus=actor_cpus)
            actors = [actor_class.remote(i, problem, config, learner) for i in range(dist.num_actors)]
        else:
            actor_class = ray.remote(EnvActor).options(num_cpus=actor_cpus)
            actors = [actor_class.remote(i, problem, config, learner, dist.envs_per_actor)
                      for i in range(dist.num_actors)]
        runs = [actor.run.remote() for actor in actors]
        env_steps_per_s = _measure(learner, warmup_s, window_s)
        stats = ray.get(learner.progress.remote())["stats"]
        ray.get(learner.stop.remote())
        ray.wait(runs, num_returns=len(runs), timeout=30)
        for actor in actors:
            ray.kill(actor)
        ray.get(learner.close.remote())
        ray.kill(learner)
    keys = ("mean_batch_size", "mean_wait_ms", "forward_ms", "fill", "policy_lag")
    return {"env_steps_per_s": env_steps_per_s, **{k: stats.get(k, float("nan")) for k in keys}}


def measure_compute_bound(problem: Problem, config: TrainConfig, acting_batch: int, repeats: int
                          ) -> dict[str, float]:
    """Acting and learning seconds per env step, in process, on real observations of the config's data."""
    torch.manual_seed(0)
    T, B = config.learning.unroll_length, config.learning.batch_size
    agent = problem.make_agent(config, problem.feature_table(config))
    optimizer = make_optimizer(agent, config.learning)
    # A batch of B unrolls (and the acting batches) from the environments, with the untrained policy.
    unrolls: queue.Queue = queue.Queue()
    server = InferenceServer(agent, T, unrolls, max_batch=B, max_wait_ms=0.0,
                             p_imitation=teacher_forcing_probability(config.learning))
    env = problem.make_env(config, "train", B, 0, evaluation=False)
    obs, _ = env.reset()
    first = np.ones(B, bool)
    for _ in range(T + 1):
        obs, _, done, _ = env.step(server.infer(0, "bench", obs, None, None, first))
        first = done
    server.close()
    batch = unrolls.get().to_tensors()
    acting_env = problem.make_env(config, "train", acting_batch, 1, evaluation=False)
    acting_obs = {k: torch.from_numpy(v)[None] for k, v in acting_env.reset()[0].items()}
    state = agent.initial_state(acting_batch)
    acting_first = torch.ones(1, acting_batch, dtype=torch.bool)

    def act() -> None:
        with torch.inference_mode():
            agent(acting_obs, state, acting_first)

    def learn() -> None:
        train_step(agent, optimizer, batch, config, 0, loss_fn=problem.loss)

    act(), learn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        act()
    acting_s = (time.perf_counter() - t0) / repeats / acting_batch
    t0 = time.perf_counter()
    for _ in range(repeats):
        learn()
    learning_s = (time.perf_counter() - t0) / repeats / (T * B)
    return {"env_steps_per_s": 1.0 / (acting_s + learning_s), "acting_ms_per_batch": 1000 * acting_s * acting_batch,
            "learning_ms_per_step": 1000 * learning_s * T * B}


def parse_layout(text: str) -> tuple[int, int]:
    """``"NxK"`` -> (N actors, K environments per actor)."""
    try:
        n, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"layout {text!r} must look like 8x2 (actors x envs per actor)") from None
    return n, k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="training config (default: the bundled sample's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--layouts", type=parse_layout, nargs="+", default=[(2, 8), (8, 2)], metavar="NxK",
                        help="actors x environments per actor; the first one is the headline (default: 2x8, the "
                             "training default, then 8x2, VALAN/IMPALA-like many small actors)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before each measurement window")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per variant")
    parser.add_argument("--repeats", type=int, default=20, help="compute bound: timed repetitions")
    args = parser.parse_args()

    base = load_train_config(args.config, args.overrides)
    base.data.eval = {}
    base.run.total_env_steps = 10 ** 12
    base.run.checkpoint_every_env_steps = 0
    base.run.eval_every_env_steps = 0
    problem = get_problem(base.problem)

    def layout_config(n: int, k: int) -> TrainConfig:
        return dataclasses.replace(base, distributed=dataclasses.replace(base.distributed, num_actors=n,
                                                                          envs_per_actor=k))

    def acting_batch(n: int, k: int) -> int:
        return min(base.distributed.max_batch, n * k)

    # The bound, with one torch thread as in the Ray learner (Ray gives its one-CPU actor one OpenMP thread; it runs
    # inference and training in two such threads), measured before and after the Ray variants (the mean of the
    # two), since other load on the machine changes over the run.
    torch.set_num_threads(1)
    batches = sorted({acting_batch(n, k) for n, k in args.layouts})

    def bounds_now() -> dict[int, float]:
        out = {}
        for batch in batches:
            bound = measure_compute_bound(problem, base, batch, args.repeats)
            print(json.dumps({"compute_bound": {"acting_batch": batch, **bound}}), flush=True)
            out[batch] = bound["env_steps_per_s"]
        return out

    before = bounds_now()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    results: dict[tuple[int, int], dict[str, dict[str, float]]] = {}
    try:
        for n, k in args.layouts:
            for variant in ("threads", "local"):
                measured = measure_ray(variant, problem, layout_config(n, k), args.warmup, args.window)
                results.setdefault((n, k), {})[variant] = measured
                print(json.dumps({"layout": f"{n}x{k}", variant: measured}), flush=True)
    finally:
        ray.shutdown()
    after = bounds_now()

    def summarize(n: int, k: int) -> dict[str, Any]:
        r = results[(n, k)]
        central, local = r["threads"]["env_steps_per_s"], r["local"]["env_steps_per_s"]
        batch = acting_batch(n, k)
        bound = (before[batch] + after[batch]) / 2
        return {"central_env_steps_per_s": round(central, 1), "local_env_steps_per_s": round(local, 1),
                "compute_bound_env_steps_per_s": round(bound, 1),
                "compute_bound_before_after": [round(before[batch], 1), round(after[batch], 1)],
                "central_over_local": round(central / local, 3), "central_over_compute_bound": round(central / bound, 3),
                "central_mean_inference_batch": round(r["threads"]["mean_batch_size"], 2),
                "central_policy_lag": round(r["threads"]["policy_lag"], 2),
                "local_policy_lag": round(r["local"]["policy_lag"], 2),
                "num_actors": n, "envs_per_actor": k}

    agent = problem.make_agent(base, problem.feature_table(base))
    summary = {**summarize(*args.layouts[0]),
               "layouts": {f"{n}x{k}": summarize(n, k) for n, k in args.layouts},
               "unroll_length": base.learning.unroll_length, "batch_size": base.learning.batch_size,
               "model_parameters": sum(p.numel() for p in agent.parameters()),
               "features": base.data.features, "feature_dim": base.data.synthetic_dim, "cpus": os.cpu_count()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
