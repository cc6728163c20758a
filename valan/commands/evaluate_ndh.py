"""``valan evaluate ndh``: score NDH predictions with CVDN's metrics (definitions: ``valan.envs.ndh.metrics``).

Predictions: ``[{"inst_idx": 123, "trajectory": [[viewpoint, heading, elevation], ...]}]``, one per instance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from valan.data import sample_path

HELP = ("score NDH (CVDN navigation from dialog history) predictions: goal progress, navigation and oracle error, "
        "success, oracle success, SPL, oracle path success, trajectory length")

# (summary key, table label); distances in metres.
ROWS = (("goal_progress", "goal progress (GP), m"), ("nav_error", "navigation error (NE), m"),
        ("oracle_error", "oracle error, m"), ("success_rate", "success rate (SR)"),
        ("oracle_success_rate", "oracle success rate (OSR)"), ("spl", "SPL"),
        ("oracle_path_success_rate", "oracle path success rate"), ("trajectory_length", "trajectory length (TL), m"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from valan.envs.ndh.dataset import PATH_TYPES

    parser.add_argument("--data", type=Path, default=sample_path("ndh/NDH_sample_val.json"),
                        help="NDH data file with end_panos and paths (here: the bundled format sample, not CVDN)")
    parser.add_argument("--connectivity", type=Path, default=sample_path("connectivity"),
                        help="folder of {scan}_connectivity.json navigation graphs")
    parser.add_argument("--predictions", type=Path, required=True,
                        help='predictions JSON: [{"inst_idx": ..., "trajectory": [[viewpoint, heading, elevation], '
                             '...]}], exactly one per instance of --data')
    parser.add_argument("--path-type", choices=PATH_TYPES, default="planner_path",
                        help="the path whose start and goal the errors are measured against (CVDN's path_type)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (rates in [0, 1], distances in metres) instead of a table")
    parser.add_argument("--per-episode", action="store_true",
                        help="also report every instance's metrics ('episodes' list with --json)")


def run(args: argparse.Namespace) -> int:
    from valan.envs.ndh.dataset import load_ndh
    from valan.envs.ndh.metrics import evaluate_ndh
    from valan.envs.r2r.graph import Connectivity
    from valan.io import read_json

    connectivity = Connectivity(args.connectivity)
    episodes = load_ndh(args.data)
    summary, per_episode = evaluate_ndh(episodes, read_json(args.predictions), connectivity, args.path_type,
                                        predictions_source=str(args.predictions), data_source=str(args.data))
    if args.json:
        print(json.dumps({**summary, "episodes": per_episode} if args.per_episode else summary))
        return 0
    print(f"NDH evaluation of {args.data} ({args.path_type}): {summary['num_episodes']} instances; "
          "success = navigation error < 3.0 m")
    for key, label in ROWS:
        print(f"{label:<30} {summary[key]:>9.3f}")
    if args.per_episode:
        print(f"\n{'inst_idx':>9} {'GP m':>7} {'NE m':>7} {'success':>7} {'SPL':>6} {'TL m':>7}")
        for e in per_episode:
            print(f"{e['inst_idx']:>9} {e['goal_progress']:>7.2f} {e['nav_error']:>7.2f} "
                  f"{'yes' if e['success'] else 'no':>7} {e['spl']:>6.3f} {e['trajectory_length']:>7.2f}")
    return 0
