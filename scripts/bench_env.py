"""Benchmark the R2R environment: steps per second in one process, and bytes per observation.

Variants side by side: the gymnasium ``R2REnv`` (one episode, random valid actions, reset on termination) and
``BatchedR2REnv`` with K = 8 and 32 slots (automatic reset), on the bundled sample and, when
``../shared/data/r2r`` exists, on the full R2R train split. Bytes per observation compare the default
index-based observation with ``include_features=True`` and 2048-d features (synthetic features: no visual
information, same size as ResNet-152's).

Prints one JSON line per measurement and, last, one JSON object with everything and the speed-up ratios.

    .venv/bin/python scripts/bench_env.py [--seconds 1.0] [--shared-data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from valan.envs.r2r.env import BatchedR2REnv, R2REnv
from valan.features.stores import SyntheticFeatures


def _random_valid_actions(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Uniform over valid slots (STOP included); valid slots are the leading ``mask.sum()`` ones."""
    return (rng.random(mask.shape[:-1]) * mask.sum(-1)).astype(np.int64)


def bench_single(sources: dict, seconds: float) -> float:
    env = R2REnv(**sources)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            obs, _, terminated, _, _ = env.step(int(_random_valid_actions(rng, obs["candidate_mask"])))
            if terminated:
                obs, _ = env.reset()
        steps += 100
    return steps / (time.perf_counter() - start)


def bench_batched(sources: dict, num_envs: int, seconds: float) -> float:
    env = BatchedR2REnv(num_envs, seed=0, **sources)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            obs, _, _, _ = env.step(_random_valid_actions(rng, obs["candidate_mask"]))
        calls += 20
    return calls * num_envs / (time.perf_counter() - start)


def observation_bytes(include_features: bool) -> int:
    env = R2REnv(include_features=include_features, features=SyntheticFeatures(dim=2048))
    obs, _ = env.reset(seed=0)
    return int(sum(v.nbytes for v in obs.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per variant")
    parser.add_argument("--shared-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()

    datasets = {"sample": {}}
    r2r = Path(args.shared_data) / "r2r"
    if (r2r / "R2R_train.json").is_file():
        datasets["r2r_train"] = {"data": r2r / "R2R_train.json", "connectivity": r2r / "connectivity",
                                 "vocab": r2r / "train_vocab.txt"}
    result: dict = {"steps_per_second": {}, "speedup_vs_single": {}, "construction_seconds": {}}
    for name, sources in datasets.items():
        start = time.perf_counter()
        BatchedR2REnv(1, **sources)
        result["construction_seconds"][name] = round(time.perf_counter() - start, 3)
        rates = {"single": bench_single(sources, args.seconds)}
        for k in (8, 32):
            rates[f"batched_{k}"] = bench_batched(sources, k, args.seconds)
        result["steps_per_second"][name] = {key: round(v) for key, v in rates.items()}
        result["speedup_vs_single"][name] = {key: round(v / rates["single"], 2) for key, v in rates.items()
                                             if key != "single"}
        print(json.dumps({"dataset": name, **result["steps_per_second"][name]}))
    index_bytes, feature_bytes = observation_bytes(False), observation_bytes(True)
    result["bytes_per_observation"] = {"index_based": index_bytes, "with_2048d_features": feature_bytes,
                                       "ratio": round(feature_bytes / index_bytes, 1)}
    result["note"] = "random valid actions incl. STOP, resets included; one process; synthetic features"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
