"""Street View timings: graph loading, breadth-first distances, and batched environment steps.

Usage: python scripts/bench_streetview.py [--graph DIR] [--data FILE] [--envs 8] [--repeats 3]

Defaults are the bundled sample; point ``--graph``/``--data`` at the full StreetLearn graph and a route file
(e.g. ``../shared/data/streetview/graph`` and ``map2seq_seen_dev.jsonl``) for the real figures. Reports the
median of ``--repeats`` runs. Both action spaces are stepped with the oracle's actions over every route
(evaluation mode), side by side: once with an empty breadth-first-search cache (cold: one search per goal) and
then with the cache filled (warm). The last line printed is one JSON object.
"""

import argparse
import json
import statistics
import time

import numpy as np

from valan.data import sample_path
from valan.envs.streetview.env import BatchedTouchdownEnv
from valan.envs.streetview.graph import read_graph


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def run_oracle(data, graph, action_space: str, envs: int) -> int:
    env = BatchedTouchdownEnv(envs, data=data, graph=graph, action_space=action_space, evaluation=True, max_steps=60)
    obs, _ = env.reset()
    steps = 0
    while not env.finished:
        steps += int(env.active.sum())
        obs, _, _, _ = env.step(obs["oracle_next_action"])
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", default=str(sample_path("streetview/graph")))
    parser.add_argument("--data", default=str(sample_path("streetview/map2seq_sample.jsonl")))
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    load_s, graph = timed(lambda: read_graph(args.graph), args.repeats)
    goals = np.random.default_rng(0).choice(len(graph), size=min(20, len(graph)), replace=False)
    start = time.perf_counter()
    for goal in goals:
        graph.distances_to(int(goal))
    bfs_ms = (time.perf_counter() - start) / len(goals) * 1000
    start = time.perf_counter()
    for goal in goals:
        graph.distances_to(int(goal))
    cached_us = (time.perf_counter() - start) / len(goals) * 1e6
    result = {"graph": args.graph, "panoramas": len(graph), "links": graph.num_links,
              "graph_load_s": round(load_s, 4), "bfs_cold_ms": round(bfs_ms, 3), "bfs_cached_us": round(cached_us, 2)}
    for space in ("discrete", "panoramic"):
        fresh = read_graph(args.graph)  # empty BFS cache: one search per route goal, as in a first pass
        seconds, steps = timed(lambda: run_oracle(args.data, fresh, space, args.envs), 1)
        result[f"{space}_env_steps_per_s_cold"] = round(steps / seconds, 1)
        seconds, steps = timed(lambda: run_oracle(args.data, fresh, space, args.envs), args.repeats)
        result[f"{space}_env_steps_per_s_warm"] = round(steps / seconds, 1)
    result["panoramic_over_discrete_warm"] = round(result["panoramic_env_steps_per_s_warm"]
                                                   / result["discrete_env_steps_per_s_warm"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
