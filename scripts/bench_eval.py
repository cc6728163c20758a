"""Time R2R evaluation against the official evaluation's algorithm: whole processes from the shell, and in process.

1. Shell, paired runs (``--pairs``, interleaved so that machine load hits every variant alike; medians reported):
   ``valan evaluate r2r --predictions F --json`` with the on-disk graph cache warm (``$VALAN_GRAPH_CACHE`` set
   to a fresh folder that one untimed run fills) and with it off, beside the official algorithm in a fresh
   Python process: graphs as the Matterport3D simulator's ``load_nav_graphs``, all-pairs shortest paths by one
   Dijkstra per viewpoint as networkx's ``all_pairs_dijkstra_path_length`` (``reference.r2r_eval``, pure Python)
   and only the official metrics (SR, SPL, NE, OSR, TL). valan also scores steps, nDTW, SDTW and CLS. Also the
   median of ``valan --help``.
2. In process (``--repeats``): ``evaluate_r2r`` against the reference's full metrics (nDTW/SDTW/CLS included) on
   seeded-random and shortest-path predictions, and the largest absolute difference between the two evaluators'
   per-episode and summary metrics.

    .venv/bin/python scripts/bench_eval.py [--data ../shared/data/r2r/R2R_val_seen.json] [--pairs 5]

Prints JSON; the last line is one object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from valan.problems.r2r.baselines import baseline_predictions
from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.graph import CACHE_ENV, Connectivity
from valan.envs.r2r.metrics import SUMMARY_KEYS, evaluate_r2r

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from reference.r2r_eval import ReferenceEvaluation  # noqa: E402  (tests/reference, the independent evaluator)
SHARED = ROOT.parent / "shared" / "data" / "r2r"
VALAN = [str(Path(sys.executable).with_name("valan"))]

# The official evaluation's metrics in a fresh process: argv = data, connectivity, predictions.
OFFICIAL = """
import json, sys
sys.path.insert(0, {tests!r})
from reference.r2r_eval import ERROR_MARGIN, ReferenceEvaluation
reference = ReferenceEvaluation(sys.argv[1], sys.argv[2])
with open(sys.argv[3]) as f:
    predictions = json.load(f)
errors, oracle, lengths, spl = [], [], [], []
for item in predictions:
    gt = reference.gt[item["instr_id"]]
    dist, path = reference.distances[gt["scan"]], [entry[0] for entry in item["trajectory"]]
    goal = gt["path"][-1]
    errors.append(dist[path[-1]][goal])
    oracle.append(min(dist[v][goal] for v in path))
    lengths.append(sum(dist[a][b] for a, b in zip(path[:-1], path[1:])))
    shortest = dist[gt["path"][0]][goal]
    spl.append(shortest / max(lengths[-1], shortest) if errors[-1] < ERROR_MARGIN else 0.0)
n = len(errors)
print(json.dumps({{"success_rate": sum(e < ERROR_MARGIN for e in errors) / n, "spl": sum(spl) / n,
                  "nav_error": sum(errors) / n, "oracle_success_rate": sum(e < ERROR_MARGIN for e in oracle) / n,
                  "trajectory_length": sum(lengths) / n}}))
""".format(tests=str(ROOT / "tests"))


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one whole process, and its stdout."""
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


def shell_pairs(data: Path, connectivity: Path, predictions: Path, pairs: int) -> dict:
    """Median wall seconds of each variant over ``pairs`` interleaved rounds, the ratios, and the metrics agreement."""
    evaluate = VALAN + ["evaluate", "r2r", "--data", str(data), "--connectivity", str(connectivity),
                        "--predictions", str(predictions), "--json"]
    # Python as installed runs it: compiled modules cached in __pycache__ (a PYTHONDONTWRITEBYTECODE in the caller's
    # environment would make every timed process compile its modules again, the official script's and valan's).
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        warm_env = {**base, CACHE_ENV: cache}
        variants = {
            "valan_warm_cache": (evaluate, warm_env),
            "valan_no_cache": (evaluate, {**base, CACHE_ENV: "off"}),
            "official_algorithm": ([sys.executable, "-c", OFFICIAL, str(data), str(connectivity), str(predictions)],
                                   base),
            "valan_help": (VALAN + ["--help"], base),
        }
        for argv, env in variants.values():  # untimed: fills the graph cache and the bytecode caches
            _run(argv, env)
        times: dict[str, list[float]] = {name: [] for name in variants}
        outputs: dict[str, str] = {}
        for _ in range(pairs):
            for name, (argv, env) in variants.items():
                seconds, outputs[name] = _run(argv, env)
                times[name].append(seconds)
    valan, official = json.loads(outputs["valan_warm_cache"]), json.loads(outputs["official_algorithm"])
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        **{f"{name}_s": round(s, 4) for name, s in median.items()},
        "runs_s": {name: [round(s, 4) for s in t] for name, t in times.items()},
        "speedup_warm_cache": round(median["official_algorithm"] / median["valan_warm_cache"], 2),
        "speedup_no_cache": round(median["official_algorithm"] / median["valan_no_cache"], 2),
        "max_abs_diff_official_metrics": max(abs(valan[k] - official[k]) for k in official),
        "valan_metrics": sorted(valan),
    }


def time_valan(data: Path, connectivity: Path, predictions: list) -> tuple[float, float, tuple]:
    """Seconds for everything, seconds for data + graph loading alone, and the result."""
    start = time.perf_counter()
    episodes = load_r2r(data)
    graphs = Connectivity(connectivity, cache=False)  # a fresh instance: nothing cached
    for scan in sorted({e.scan for e in episodes}):
        graphs.graph(scan)
    loaded = time.perf_counter()
    result = evaluate_r2r(episodes, predictions, graphs, predictions_source="bench", data_source=str(data))
    return time.perf_counter() - start, loaded - start, result


def time_reference(data: Path, connectivity: Path, predictions: list) -> tuple[float, tuple]:
    start = time.perf_counter()
    result = ReferenceEvaluation(data, connectivity).score(predictions)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "R2R_val_seen.json")
    parser.add_argument("--connectivity", type=Path, default=SHARED / "connectivity")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved shell rounds (medians reported)")
    parser.add_argument("--repeats", type=int, default=1, help="in-process runs per evaluator (best reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    episodes = load_r2r(args.data)
    graphs = Connectivity(args.connectivity)
    report: dict = {"data": str(args.data), "episodes": len(episodes), "scans": len({e.scan for e in episodes}),
                    "pairs": args.pairs, "repeats": args.repeats, "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_average": os.getloadavg()[0], "agents": {}}
    for agent in ("random", "shortest"):
        predictions = baseline_predictions(agent, episodes, graphs, seed=args.seed)
        valan_runs = [time_valan(args.data, args.connectivity, predictions) for _ in range(args.repeats)]
        reference_runs = [time_reference(args.data, args.connectivity, predictions) for _ in range(args.repeats)]
        summary, per_episode = valan_runs[0][2]
        expected_summary, expected = reference_runs[0][1]
        per_episode_diff = max(abs(float(e[k]) - expected[e["instr_id"]][k])
                               for e in per_episode for k in expected[e["instr_id"]])
        summary_diff = max(abs(summary[k] - expected_summary[k]) for k in SUMMARY_KEYS)
        valan_s = min(r[0] for r in valan_runs)
        reference_s = min(r[0] for r in reference_runs)
        row = {
            "in_process_valan_s": round(valan_s, 4),
            "in_process_valan_loading_s": round(min(r[1] for r in valan_runs), 4),
            "in_process_reference_s": round(reference_s, 4),
            "in_process_speedup": round(reference_s / valan_s, 2),
            "max_abs_diff_per_episode": per_episode_diff,
            "max_abs_diff_summary": summary_diff,
            "summary": summary,
        }
        if agent == "random":
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "predictions.json"
                path.write_text(json.dumps(predictions))
                row["shell"] = shell_pairs(args.data, args.connectivity, path, args.pairs)
        report["agents"][agent] = row
        print(json.dumps({"agent": agent, **{k: v for k, v in row.items() if k != "summary"}}), flush=True)
    report["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
