"""``valan data check r2r``: validate an R2R-format dataset against the Matterport3D navigation graphs."""

from __future__ import annotations

import argparse
import sys

HELP = ("check an R2R dataset: scans exist, every path viewpoint is in its scan's graph, consecutive path "
        "viewpoints are adjacent, start headings are finite numbers; lists every problem by path_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="R2R-format JSON file (list of paths)")
    parser.add_argument("--connectivity", required=True, help="folder of {scan}_connectivity.json files")


def run(args: argparse.Namespace) -> int:
    from valan.envs.r2r.dataset import check_r2r
    from valan.envs.r2r.graph import Connectivity
    from valan.io import read_json

    connectivity = Connectivity(args.connectivity)
    problems, counts = check_r2r(read_json(args.data), connectivity)
    for line in problems:
        print(f"{args.data}: {line}")
    if problems:
        print(f"valan: error: {len(problems)} problem(s) in {args.data}", file=sys.stderr)
        return 2
    print(f"OK: {args.data}: {counts['paths']} paths, {counts['instructions']} instructions, "
          f"{counts['scans']} scans")
    return 0
