"""Fault injection on the bundled R2R sample: kill a training actor, the eval actor (mid-evaluation) or the learner
during a short ``valan train`` run and measure what the run lost and how long it took to recover. Prints JSON.

    python scripts/measure_faults.py [--checkpoint-every 960] [--kill-at 1440] [--total 2880]

- training actor / eval actor: env steps lost is 0 by construction (the learner drops the dead actor's unfinished
  unrolls, which were never counted); recovery: kill -> the restarted actor answers again (training actor), or
  kill (just after an evaluation began) -> the retried evaluation is recorded (eval actor; it reruns from its
  start on the same snapshot);
- learner: env steps lost = trained since the newest checkpoint (the driver's last view, polled every 0.5 s, so a
  lower bound within one poll); recovery: kill -> the new learner has trained past its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import shutil
import threading
import time
from pathlib import Path


def _named(part: str):
    import ray

    names = [n for n in ray.util.list_named_actors() if part in n]
    return ray.get_actor(names[0]) if names else None


def _progress(part: str) -> dict | None:
    import ray

    learner = _named(part)
    try:
        return ray.get(learner.progress.remote(), timeout=5) if learner is not None else None
    except ray.exceptions.RayError:
        return None


def measure(fault: str, total: int, checkpoint_every: int, kill_at: int) -> dict:
    import ray

    from valan.distributed.driver import train
    from valan.problems import get_problem, load_train_config

    overrides = [f"run.total_env_steps={total}", f"run.checkpoint_every_env_steps={checkpoint_every}",
                 "distributed.num_actors=2", "distributed.envs_per_actor=8", "learning.batch_size=8",
                 "learning.unroll_length=6", "run.eval_every_env_steps=0"]
    if fault != "eval actor":
        overrides.append("data.eval={}")
    else:
        overrides[-1] = f"run.eval_every_env_steps={checkpoint_every}"
    config = load_train_config(None, overrides)
    problem = get_problem(config.problem)
    said: list[tuple[float, str]] = []
    timing: dict[str, float] = {}
    stop = threading.Event()

    def killer() -> None:
        if fault == "eval actor":  # kill it once the periodic evaluation has begun (no longer pending)
            seen_pending = False
            while not stop.is_set():
                progress = _progress("-learner-0")
                seen_pending = seen_pending or bool(progress and progress["eval_pending"])
                if seen_pending and progress and not progress["eval_pending"]:
                    break
                time.sleep(0.02)
            target = _named("-eval-0-")
            timing["kill"] = time.monotonic()
            timing["env_steps_at_kill"] = progress["env_steps"]
            ray.kill(target, no_restart=False)
            lines = Path(out) / "eval" / "metrics.jsonl"
            while not stop.is_set():  # recovered once the retried evaluation is recorded
                if lines.exists() and any(json.loads(line)["step"] > 0 for line in lines.read_text().splitlines()):
                    timing["recovered"] = time.monotonic()
                    return
                time.sleep(0.05)
            return
        while not stop.is_set():
            progress = _progress("-learner-0")
            if progress is not None and progress["env_steps"] >= kill_at:
                break
            time.sleep(0.05)
        if stop.is_set():
            return
        target = _named("-learner-0" if fault == "learner" else "-actor-0-")
        timing["kill"] = time.monotonic()
        timing["env_steps_at_kill"] = progress["env_steps"]
        ray.kill(target, no_restart=fault == "learner")
        if fault == "training actor":
            while not stop.is_set():
                try:
                    ray.get(target.node_id.remote(), timeout=5)
                    break
                except ray.exceptions.RayError:
                    time.sleep(0.05)
            timing["recovered"] = time.monotonic()
        else:  # recovered once the new learner has trained a step past the checkpoint it resumed from
            resumed_from = None
            while not stop.is_set():
                progress = _progress("-learner-1")
                if progress is not None:
                    resumed_from = progress["env_steps"] if resumed_from is None else resumed_from
                    if progress["env_steps"] > resumed_from:
                        timing["recovered"] = time.monotonic()
                        break
                time.sleep(0.05)

    out = tempfile.mkdtemp(prefix="valan-faults-")
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        result = train(problem, config, out, show_progress=False,
                       say=lambda line: said.append((time.monotonic(), line)))
    finally:
        stop.set()
        thread.join()
        shutil.rmtree(out, ignore_errors=True)
    return {"fault": fault, "checkpoint_every_env_steps": checkpoint_every,
            "env_steps_at_kill": timing.get("env_steps_at_kill"),
            "env_steps_lost": result.env_steps_lost, "final_env_steps": result.env_steps,
            "recovery_s": round(timing["recovered"] - timing["kill"], 1) if "recovered" in timing else None,
            "failures": {"actor": result.actor_failures, "eval_actor": result.eval_actor_failures,
                         "learner": result.learner_failures, "evaluations_skipped": result.evaluations_skipped},
            "run_s": round(result.seconds, 1), "said": [line for _, line in said]}


def main() -> None:
    import os

    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=2880, help="env steps of each run")
    parser.add_argument("--checkpoint-every", type=int, default=960, help="env steps between checkpoints")
    parser.add_argument("--kill-at", type=int, default=1440, help="env steps trained before the kill")
    parser.add_argument("--faults", default="training actor,eval actor,learner")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    try:
        results = [measure(fault, args.total, args.checkpoint_every, args.kill_at)
                   for fault in args.faults.split(",")]
    finally:
        ray.shutdown()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
