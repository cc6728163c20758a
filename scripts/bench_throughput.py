"""Training throughput in one run on the same model and data (default: the bundled R2R sample config):

1. central inference (SEED RL, what ``valan train`` does): N actors step environments, the learner (a Ray
   threaded actor) batches their inference requests and assembles unrolls; its trainer
   (``distributed.trainer``, default ``auto``: on CPU a child process sharing the model's parameters) trains on
   them; actors on the learner's node send their requests over its Unix socket (``valan.distributed.transport``).
   ``ray_calls`` is the same with ``distributed.transport=ray``, the requests as Ray actor calls;
2. per-actor local inference (the original VALAN / IMPALA design): every actor holds a model copy (and the
   feature table), pulls the learner's weights every unroll and ships whole unrolls to the learner;
3. central inference with the trainer on a thread of the learner's process ("thread",
   ``distributed.trainer=thread``: valan's design before the trainer process, and what ``auto`` picks on a GPU),
   where training and inference share one interpreter lock;
4. the naive loop: one process, valan's own env, agent, loss and ``train_step``, no Ray: act ``B`` envs for
   ``T`` steps, train on that batch, repeat (one torch thread);
5. the learner's compute bound: in-process, no Ray, no environments: the acting forward pass (at the batch size
   central inference reaches with N actors) plus the learning forward/backward on a batch of unrolls, on one
   core; the all-cores bound is that times the number of cores.

(1)-(4) are env steps per second consumed by the learner while training, over a window after a warm-up, for
each actor layout N x K (N actors stepping K environments each; the first layout's figures are the headline
keys, all layouts are under "layouts"); (5) is ``1 / (acting seconds per env step + learning seconds per env
step)``, one torch thread. Synthetic features (no visual information) unless the config names a feature file.
The last line printed is one JSON object.

``--device cuda``: the learner (and the bound) on the GPU, real-size synthetic features (36 views x 2048, the
visual pathway on), 8-32 actors (layouts 8x8 16x4 32x2 unless given); actors stay on CPU.

    .venv/bin/python scripts/bench_throughput.py [--config configs/r2r.yaml] [--set KEY=VALUE ...] [--layouts 2x8 8x2]
        [--variants central thread local naive] [--device cpu|cuda] [--warmup S] [--window S] [--rounds N]

About three minutes with the defaults (one layout, five variants, one round). ``--rounds N`` measures everything N
times in turn (each round: the bound, the naive loop, the Ray variants, the bound again): rates are medians over
the rounds and every ratio is the median of the rounds' own ratios, so a slow patch of a shared machine moves one
round, not the result; ``per_round`` lists the rates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import queue
import statistics
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

VARIANTS = ("central", "ray_calls", "thread", "local", "naive")


class LocalInferenceLearner(Learner):
    """The learner of the IMPALA-style variant: serves weights, receives whole unrolls (backpressure when full)."""

    def weights(self) -> tuple[int, dict[str, torch.Tensor]]:
        with self._lock, self.trainer.weights_lock:
            return self.step, {k: v.cpu() for k, v in weights_snapshot(self.agent, self.eval_agent).items()}

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
    """Env steps/s of ``variant`` ("central", "ray_calls", "thread" or "local") with the config's actors; plus
    stats."""
    learner_class = LocalInferenceLearner if variant == "local" else Learner
    if variant == "thread":
        config = dataclasses.replace(config, distributed=dataclasses.replace(config.distributed, trainer="thread"))
    if variant == "ray_calls":
        config = dataclasses.replace(config, distributed=dataclasses.replace(config.distributed, transport="ray"))
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
            actors = [actor_class.remote(i, problem, config, dist.envs_per_actor) for i in range(dist.num_actors)]
        runs = [actor.run.remote(learner) if variant != "local" else actor.run.remote() for actor in actors]
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


def unroll_batch(agent: torch.nn.Module, problem: Problem, config: TrainConfig, env: Any) -> Unroll:
    """``B`` unrolls of ``T + 1`` steps from ``env`` (``B`` slots), the untrained policy acting."""
    unrolls: queue.Queue = queue.Queue()
    T, B = config.learning.unroll_length, config.learning.batch_size
    server = InferenceServer(agent, T, unrolls, max_batch=B, max_wait_ms=0.0,
                             p_imitation=teacher_forcing_probability(config.learning),
                             device=next(agent.parameters()).device)
    obs, _ = env.reset()
    first = np.ones(B, bool)
    for _ in range(T + 1):
        obs, _, done, _ = env.step(server.infer(0, "bench", obs, None, None, first))
        first = done
    server.close()
    return unrolls.get()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_compute_bound(problem: Problem, config: TrainConfig, acting_batch: int, repeats: int,
                          device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Acting and learning seconds per env step, in process, on real observations of the config's data."""
    torch.manual_seed(0)
    T, B = config.learning.unroll_length, config.learning.batch_size
    agent = problem.make_agent(config, problem.feature_table(config)).to(device)
    optimizer = make_optimizer(agent, config.learning)
    batch = unroll_batch(agent, problem, config, problem.make_env(config, "train", B, 0, evaluation=False)
                          ).to_tensors(device)
    # Acting as the server does it in steady state: T one-step forward passes replayed from a stretch of episodes
    # already under way (episode starts where they fell), each with the recurrent state the policy had there.
    acting_env = problem.make_env(config, "train", acting_batch, 1, evaluation=False)
    obs, _ = acting_env.reset()
    first = np.ones(acting_batch, bool)
    state = tuple(s.to(device) for s in agent.initial_state(acting_batch))
    replay = []
    with torch.inference_mode():
        for t in range(2 * T):
            step_obs = {k: torch.from_numpy(v)[None].to(device) for k, v in obs.items()}
            step_first = torch.from_numpy(first)[None].to(device)
            output, next_state = agent(step_obs, state, step_first)
            if t >= T:
                replay.append((step_obs, state, step_first))
            state = next_state
            obs, _, done, _ = acting_env.step(output.logits[0].argmax(-1).cpu().numpy())
            first = done

    def act() -> None:
        with torch.inference_mode():
            for step_obs, step_state, step_first in replay:
                agent(step_obs, step_state, step_first)

    def learn() -> None:
        train_step(agent, optimizer, batch, config, 0, loss_fn=problem.loss)

    act(), learn()  # warm-up
    _synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        act()
    _synchronize(device)
    acting_s = (time.perf_counter() - t0) / repeats / (T * acting_batch)
    t0 = time.perf_counter()
    for _ in range(repeats):
        learn()
    _synchronize(device)
    learning_s = (time.perf_counter() - t0) / repeats / (T * B)
    return {"env_steps_per_s": 1.0 / (acting_s + learning_s), "acting_ms_per_batch": 1000 * acting_s * acting_batch,
            "learning_ms_per_step": 1000 * learning_s * T * B}


def measure_naive(problem: Problem, config: TrainConfig, warmup_s: float, window_s: float) -> dict[str, float]:
    """The simplest synchronous loop a user could write with valan's pieces, one process, one torch thread:
    act ``B`` envs for ``T`` steps (one batched forward pass per step), train on the unroll, repeat. Env steps per
    second trained on over ``window_s`` after ``warmup_s``."""
    torch.manual_seed(0)
    B = config.learning.batch_size
    agent = problem.make_agent(config, problem.feature_table(config))
    optimizer = make_optimizer(agent, config.learning)
    unrolls: queue.Queue = queue.Queue()
    server = InferenceServer(agent, config.learning.unroll_length, unrolls, max_batch=B, max_wait_ms=0.0,
                             p_imitation=teacher_forcing_probability(config.learning), policy_version=lambda: step)
    env = problem.make_env(config, "train", B, 0, evaluation=False)
    obs, _ = env.reset()
    reward, done, first = np.zeros(B, np.float32), np.zeros(B, bool), np.ones(B, bool)
    step, env_steps, start_steps, t0 = 0, 0, None, time.monotonic()
    try:
        agent.train()  # as the learner's model, which acts and learns in train mode
        while True:
            obs, reward, done, _ = env.step(server.infer(0, "naive", obs, reward, done, first))
            first = done
            while not unrolls.empty():
                train_step(agent, optimizer, unrolls.get().to_tensors(), config, step, loss_fn=problem.loss)
                step += 1
                env_steps += config.learning.unroll_length * B
            now = time.monotonic()
            if start_steps is None and now - t0 >= warmup_s:
                start_steps, t0 = env_steps, now
            elif start_steps is not None and now - t0 >= window_s:
                return {"env_steps_per_s": (env_steps - start_steps) / (now - t0), "learner_steps": step}
    finally:
        server.close()


def parse_layout(text: str) -> tuple[int, int]:
    """``"NxK"`` -> (N actors, K environments per actor)."""
    try:
        n, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"layout {text!r} must look like 8x2 (actors x envs per actor)") from None
    return n, k


def bench_config(config_path: str | None, overrides: list[str], device: str) -> TrainConfig:
    """The training config, without evaluations or checkpoints, with real-size features on ``cuda``."""
    if device == "cuda":
        overrides = ["data.synthetic_dim=2048", "agent.visual=features", *overrides]
    base = load_train_config(config_path, overrides)
    base.data.eval = {}
    base.run.total_env_steps = 10 ** 12
    base.run.total_minutes = 0.0
    base.run.checkpoint_every_env_steps = 0
    base.run.eval_every_env_steps = 0
    return base


def run_benchmark(base: TrainConfig, layouts: list[tuple[int, int]], variants: tuple[str, ...], warmup_s: float,
                  window_s: float, repeats: int, device: str = "cpu", log=print, rounds: int = 1) -> dict[str, Any]:
    """Every variant in one run, ``rounds`` times over; returns the summary (see the module docstring)."""
    problem = get_problem(base.problem)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def layout_config(n: int, k: int) -> TrainConfig:
        return dataclasses.replace(base, distributed=dataclasses.replace(base.distributed, num_actors=n,
                                                                          envs_per_actor=k))

    def acting_batch(n: int, k: int) -> int:
        return min(base.distributed.max_batch, n * k)

    # The bound, with one torch thread as in the Ray learner (Ray gives its one-CPU actor one OpenMP thread; it runs
    # inference and training in two such threads), measured before and after each round's other variants (a
    # round's bound is the mean of the two), since other load on the machine changes over the run. The naive loop
    # runs between the two as well. Each round starts its own Ray instance, so the naive loop runs without one.
    torch.set_num_threads(1)
    batches = sorted({acting_batch(n, k) for n, k in layouts})

    def bounds_now() -> dict[int, float]:
        out = {}
        for batch in batches:
            bound = measure_compute_bound(problem, base, batch, repeats, torch.device(device))
            log(json.dumps({"compute_bound": {"acting_batch": batch, **bound}}))
            out[batch] = bound["env_steps_per_s"]
        return out

    bounds = [bounds_now()]  # rounds + 1: before the first round and after each
    naive_runs: list[dict[str, float]] = []
    ray_variants = [v for v in variants if v != "naive"]
    # results[layout][variant]: one measurement per round
    results: dict[tuple[int, int], dict[str, list[dict[str, float]]]] = {
        layout: {v: [] for v in ray_variants} for layout in layouts}
    for _ in range(rounds):
        if "naive" in variants:
            naive_runs.append(measure_naive(problem, base, warmup_s, window_s))
            log(json.dumps({"naive": naive_runs[-1]}))
        if ray_variants:
            ray.init(address="local", num_cpus=cores, num_gpus=torch.cuda.device_count() if device == "cuda" else 0,
                     include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            try:
                for n, k in layouts:
                    for variant in ray_variants:
                        measured = measure_ray(variant, problem, layout_config(n, k), warmup_s, window_s)
                        results[(n, k)][variant].append(measured)
                        log(json.dumps({"layout": f"{n}x{k}", variant: measured}))
            finally:
                ray.shutdown()
        bounds.append(bounds_now())

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    naive_rates = [run["env_steps_per_s"] for run in naive_runs]

    def summarize(n: int, k: int) -> dict[str, Any]:
        """Rates: medians over the rounds; ratios: medians of each round's own ratio (its variants and bounds
        measured minutes apart, not the whole run's)."""
        r = results[(n, k)]
        batch = acting_batch(n, k)
        round_bounds = [(before[batch] + after[batch]) / 2 for before, after in zip(bounds, bounds[1:])]
        rates = {v: [m["env_steps_per_s"] for m in r.get(v, [])] for v in ("central", "local", "thread", "ray_calls")}
        rates["naive"] = naive_rates
        rates["all_cores_bound"] = [bound * cores for bound in round_bounds]

        def ratio(a: str, b: str) -> float | None:
            return median([x / y for x, y in zip(rates[a], rates[b])]) if rates[a] and rates[b] else None

        def rate(variant: str) -> float | None:
            value = median(rates[variant])
            return round(value, 1) if value is not None else None

        out = {"central_env_steps_per_s": rate("central"), "local_env_steps_per_s": rate("local"),
               "thread_env_steps_per_s": rate("thread"), "ray_calls_env_steps_per_s": rate("ray_calls"),
               "naive_env_steps_per_s": rate("naive"),
               "compute_bound_env_steps_per_s": round(statistics.median(round_bounds), 1),
               "compute_bound_before_after": [round(b[batch], 1) for b in bounds],
               "all_cores_bound_env_steps_per_s": rate("all_cores_bound"),
               "central_over_local": ratio("central", "local"), "central_over_naive": ratio("central", "naive"),
               "thread_over_naive": ratio("thread", "naive"), "central_over_thread": ratio("central", "thread"),
               "central_over_ray_calls": ratio("central", "ray_calls"),
               "ray_calls_over_naive": ratio("ray_calls", "naive"),
               "central_over_all_cores_bound": ratio("central", "all_cores_bound"),
               "thread_over_all_cores_bound": ratio("thread", "all_cores_bound"),
               "num_actors": n, "envs_per_actor": k}
        if rounds > 1:
            out["per_round"] = {key: [round(v, 1) for v in values] for key, values in rates.items() if values}
        for variant in ("central", "ray_calls", "thread", "local"):
            if r.get(variant):
                out[f"{variant}_policy_lag"] = median([m["policy_lag"] for m in r[variant]])
        if r.get("central"):
            out["central_mean_inference_batch"] = median([m["mean_batch_size"] for m in r["central"]])
        return out

    agent = problem.make_agent(base, problem.feature_table(base))
    return {**summarize(*layouts[0]),
            "layouts": {f"{n}x{k}": summarize(n, k) for n, k in layouts},
            "rounds": rounds, "naive_learner_steps": naive_runs[0]["learner_steps"] if naive_runs else None,
            "unroll_length": base.learning.unroll_length, "batch_size": base.learning.batch_size,
            "model_parameters": sum(p.numel() for p in agent.parameters()), "agent_visual": base.agent.visual,
            "features": base.data.features, "feature_dim": base.data.synthetic_dim, "device": device, "cpus": cores,
            "load_average": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="training config (default: the bundled sample's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--layouts", type=parse_layout, nargs="+", default=None, metavar="NxK",
                        help="actors x environments per actor; the first one is the headline (default: the "
                             "config's own distributed.num_actors x envs_per_actor, 2x8 for the sample and 2x16 for "
                             "configs/r2r.yaml; add 8x2 for VALAN/IMPALA-like many small actors; cuda: 8x8 16x4 32x2)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds before each measurement window")
    parser.add_argument("--window", type=float, default=12.0, help="seconds measured per variant")
    parser.add_argument("--repeats", type=int, default=20, help="compute bound: timed repetitions")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every variant this many times, in turn (medians; ratios per round)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device visible to torch")
    base = bench_config(args.config, args.overrides, args.device)
    layouts = args.layouts or ([(8, 8), (16, 4), (32, 2)] if args.device == "cuda" else
                               [(base.distributed.num_actors, base.distributed.envs_per_actor)])
    summary = run_benchmark(base, layouts, tuple(args.variants), args.warmup, args.window, args.repeats, args.device,
                            log=lambda line: print(line, flush=True), rounds=args.rounds)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
