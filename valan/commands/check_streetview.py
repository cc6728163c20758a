"""``valan data check streetview``: check Touchdown / map2seq routes against the StreetLearn graph.

Every route panorama must exist in ``nodes.txt`` and each consecutive pair must be joined by a link from the
first to the second in ``links.txt`` (the direction the agent moves). All problems are listed, one line each
naming the file and the route id; the exit status is 2 if there is any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from valan.data import sample_path

HELP = "check that every route panorama exists and consecutive route panoramas are linked"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=sample_path("streetview/touchdown_sample.jsonl"),
                        help="routes in JSON lines, Touchdown or map2seq records (here: the bundled Touchdown sample)")
    parser.add_argument("--graph", type=Path, default=sample_path("streetview/graph"),
                        help="folder with nodes.txt and links.txt (here: the bundled sub-graph)")


def run(args: argparse.Namespace) -> int:
    from valan.envs.streetview.dataset import load_routes, route_problems
    from valan.envs.streetview.graph import load_graph

    graph = load_graph(args.graph)
    routes = load_routes(args.data)
    bad_routes = 0
    count = 0
    for route in routes:
        problems = route_problems(graph, route)
        bad_routes += bool(problems)
        count += len(problems)
        for problem in problems:
            print(f"{args.data}: route {route.id}: {problem}")
    if count:
        print(f"valan: error: {count} problems in {bad_routes} of {len(routes)} routes of {args.data}", file=sys.stderr)
        return 2
    print(f"{args.data}: {len(routes)} routes OK on {args.graph} ({len(graph)} panoramas, {graph.num_links} links)")
    return 0
