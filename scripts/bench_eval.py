"""Time ``valan.envs.r2r.metrics.evaluate_r2r`` on a full split beside the official evaluation's algorithm.

For each agent (seeded random policy, shortest-path oracle), both evaluators start from the files: valan loads the
data and the scans' graphs (SciPy Dijkstra) and scores every metric; the reference
(``reference.r2r_eval``: pure-Python graphs, one heapq Dijkstra per viewpoint as networkx's
``all_pairs_dijkstra_path_length`` in the Matterport3D simulator's ``tasks/R2R/eval.py``, plus nDTW/SDTW/CLS as their
reference code) does the same. Reports the best of ``--repeats`` wall times, the speed ratio, and the largest
absolute difference between the two evaluators' per-episode and summary metrics.

    .venv/bin/python scripts/bench_eval.py [--data ../shared/data/r2r/R2R_val_seen.json] [--repeats 3]

Prints JSON; the last line is one object with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from valan.problems.r2r.baselines import baseline_predictions
from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.envs.r2r.metrics import SUMMARY_KEYS, evaluate_r2r
from reference.r2r_eval import ReferenceEvaluation

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "r2r"


def time_valan(data: Path, connectivity: Path, predictions: list) -> tuple[float, float, tuple]:
    """Seconds for everything, seconds for data + graph loading alone, and the result."""
    start = time.perf_counter()
    episodes = load_r2r(data)
    graphs = Connectivity(connectivity)  # a fresh instance: nothing cached
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    episodes = load_r2r(args.data)
    graphs = Connectivity(args.connectivity)
    report: dict = {"data": str(args.data), "episodes": len(episodes), "scans": len({e.scan for e in episodes}),
                    "repeats": args.repeats, "python": platform.python_version(), "agents": {}}
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
            "valan_s": round(valan_s, 4),
            "valan_loading_s": round(min(r[1] for r in valan_runs), 4),
            "official_algorithm_s": round(reference_s, 4),
            "speedup": round(reference_s / valan_s, 2),
            "max_abs_diff_per_episode": per_episode_diff,
            "max_abs_diff_summary": summary_diff,
            "summary": summary,
        }
        report["agents"][agent] = row
        print(json.dumps({"agent": agent, **{k: v for k, v in row.items() if k != "summary"}}), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
