"""Learner step time of the R2R and Touchdown followers, eager vs ``torch.compile`` (``learning.compile``).

One learner step = ``train_step`` on a batch of ``B`` unrolls of ``T`` steps (``B x T`` env steps): forward over the
unroll, the problem's loss, backward, clipping, Adam. Batches come from the config's environments with the
untrained policy (``--batches`` different ones, cycled, so instruction lengths vary as in training). Each mode
builds the same seeded model; each first runs every batch twice (for the compiled one: compilation and the
recompiles for new shapes, reported as ``compiled_warmup_s``, and minutes on a busy 2-core machine), then their
steps alternate, so machine load hits both alike (medians reported); then the Adam step alone, fused (valan's)
against torch's per-parameter loop. One torch thread (as the learner's). Synthetic features (no visual
information) unless the config names a feature store; ``agent.visual`` as the config resolves it (``--set
agent.visual=features`` for the visual pathway).

    .venv/bin/python scripts/bench_learner_step.py [--configs configs/r2r_sample.yaml configs/touchdown.yaml]
        [--set KEY=VALUE ...] [--repeats 20] [--no-compile]

Prints one JSON line per measurement; the last line is one object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import bench_config, unroll_batch  # noqa: E402  (the sibling benchmark's helpers)

from valan.learning.step import compile_agent, make_optimizer, train_step  # noqa: E402
from valan.problems import get_problem  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def measure(config, batches: int, repeats: int, compile: bool = True) -> dict:
    """Milliseconds per learner step, eager and compiled, timed in alternation (a step of one, then of the other,
    ``repeats`` times: machine load hits both alike); medians, plus the compiled model's warm-up seconds."""
    problem = get_problem(config.problem)
    B, T = config.learning.batch_size, config.learning.unroll_length
    models = {}
    for mode in ("eager", "compiled") if compile else ("eager",):
        torch.manual_seed(0)
        agent = problem.make_agent(config, problem.feature_table(config))
        models[mode] = (agent, make_optimizer(agent, config.learning))
    agent = models["eager"][0]
    data = [unroll_batch(agent, problem, config, problem.make_env(config, "train", B, seed, evaluation=False)
                         ).to_tensors() for seed in range(batches)]
    out: dict = {"parameters": sum(p.numel() for p in agent.parameters()), "env_steps_per_step": T * B}
    if compile and not compile_agent(models["compiled"][0], enabled=True):
        del models["compiled"]
    for mode, (agent, optimizer) in models.items():
        agent.train()
        start = time.perf_counter()
        for batch in data + data:  # compilation and the recompiles for new shapes happen here
            train_step(agent, optimizer, batch, config, 0, loss_fn=problem.loss)
        out[f"{mode}_warmup_s"] = round(time.perf_counter() - start, 2)
    times: dict[str, list[float]] = {mode: [] for mode in models}
    for i in range(repeats):
        for mode, (agent, optimizer) in models.items():
            start = time.perf_counter()
            train_step(agent, optimizer, data[i % batches], config, 0, loss_fn=problem.loss)
            times[mode].append(1000 * (time.perf_counter() - start))
    for mode, ms in times.items():
        out[f"{mode}_ms_per_step"] = round(statistics.median(ms), 2)
        out[f"{mode}_us_per_env_step"] = round(1000 * statistics.median(ms) / (T * B), 1)
    if "compiled" in times:
        out["compiled_speedup"] = round(out["eager_ms_per_step"] / out["compiled_ms_per_step"], 3)
    out.update(measure_adam(models["eager"][0], config, repeats))
    return out


def measure_adam(agent: torch.nn.Module, config, repeats: int) -> dict:
    """Milliseconds per Adam step on ``agent``'s parameters (gradients left by its last learner step): the fused
    kernel ``make_optimizer`` builds against torch's per-parameter loop, alternating, medians."""
    optimizers = {"fused": make_optimizer(agent, config.learning),
                  "per_parameter": torch.optim.Adam(agent.parameters(), lr=config.learning.lr, foreach=False)}
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    with torch.no_grad():
        saved = [p.detach().clone() for p in agent.parameters()]
        for _ in range(repeats):
            for name, optimizer in optimizers.items():
                start = time.perf_counter()
                optimizer.step()
                times[name].append(1000 * (time.perf_counter() - start))
        for p, value in zip(agent.parameters(), saved):
            p.copy_(value)
    return {f"adam_{name}_ms": round(statistics.median(ms), 3) for name, ms in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=[str(ROOT / "configs" / "r2r_sample.yaml"),
                                                         str(ROOT / "configs" / "touchdown.yaml")])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batches", type=int, default=3, help="different batches, cycled")
    parser.add_argument("--repeats", type=int, default=20, help="timed learner steps per mode")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report: dict = {"torch": torch.__version__, "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
                    "configs": {}}
    for path in args.configs:
        config = bench_config(path, args.overrides, "cpu")
        config.resolve_visual()
        row = {"problem": config.problem, "batch_size": config.learning.batch_size,
               "unroll_length": config.learning.unroll_length, "agent_visual": config.agent.visual,
               **measure(config, args.batches, args.repeats, compile=not args.no_compile)}
        print(json.dumps({"config": Path(path).name, **row}), flush=True)
        report["configs"][Path(path).name] = row
    report["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
