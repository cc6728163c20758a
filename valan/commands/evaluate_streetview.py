"""``valan evaluate streetview``: Touchdown metrics (task completion, SPD, SED) of predictions or a trained agent.

Predictions: ``[{"route_id": ..., "trajectory": [panoid, ...]}]`` (Touchdown) or ``[{"id": ..., "trajectory":
[...]}]`` (map2seq), as ``valan train`` writes them; either key names the route's id. Exactly one prediction per
route of ``--data``; each trajectory starts at the route's start and moves along links. Definitions:
``valan.envs.streetview.metrics``.

``--checkpoint`` runs a trained Touchdown or map2seq agent (``valan train``) greedily on every route of
``--data`` instead (evaluation step limit: the config's ``env.eval_max_steps``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from valan.data import sample_path

HELP = "score Touchdown / map2seq predictions or a trained agent: task completion, SPD (hops), SED"

ROWS = (("task_completion", "task completion (TC)"), ("spd", "shortest-path distance (SPD), hops"),
        ("sed", "success weighted edit distance (SED)"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=sample_path("streetview/touchdown_sample.jsonl"),
                        help="routes in JSON lines, Touchdown or map2seq records (here: the bundled Touchdown sample)")
    parser.add_argument("--graph", type=Path, default=sample_path("streetview/graph"),
                        help="folder with nodes.txt and links.txt (here: the bundled sub-graph)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--predictions", type=Path,
                        help='predictions JSON: [{"route_id" or "id": ..., "trajectory": [panoid, ...]}], one per '
                             'route of --data')
    source.add_argument("--checkpoint", type=Path,
                        help="a checkpoint of `valan train` with problem touchdown or map2seq: run the agent greedily")
    parser.add_argument("--save-predictions", type=Path, metavar="FILE",
                        help="with --checkpoint: also write the agent's predictions (leaderboard format) here")
    parser.add_argument("--plot-dir", type=Path, metavar="DIR",
                        help="write one top-down PNG per route here: the route and the trajectory on the graph")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (task_completion, spd, sed, num_episodes) instead of a table")
    parser.add_argument("--per-episode", action="store_true",
                        help="also report every route's metrics ('episodes' list with --json)")


def run(args: argparse.Namespace) -> int:
    from valan.errors import InputError
    from valan.io import read_json, write_json

    if args.checkpoint is not None:
        from valan.distributed.evaluation import TrainedCheckpoint

        trained = TrainedCheckpoint.load(args.checkpoint)
        if trained.problem.name not in ("touchdown", "map2seq"):
            raise InputError(f"a {trained.problem.name!r} checkpoint, not a Touchdown or map2seq one",
                             source=trained.source)
        _load(args)  # --data is checked on the graph (one line naming the file) before the agent acts on it
        predictions = trained.predictions(args.data, args.graph, progress=True)
        status = score_predictions(args, predictions, source=f"{args.checkpoint} (agent run)")
        if args.save_predictions is not None:
            write_json(args.save_predictions, predictions, indent=None)
        return status
    if args.save_predictions is not None:
        raise InputError("--save-predictions needs --checkpoint (the predictions of --predictions are that file)")
    if args.predictions is None:
        raise InputError("nothing to score: give --predictions FILE or --checkpoint CKPT")
    return score_predictions(args, read_json(args.predictions), source=str(args.predictions))


def score_predictions(args: argparse.Namespace, predictions: object, source: str) -> int:
    """Check and score ``predictions`` on ``args.data`` and ``args.graph``; plot when asked (after every prediction
    is known to be valid); print a table or JSON."""
    from valan.envs.streetview.metrics import evaluate_streetview, parse_predictions

    routes, graph = _load(args)
    summary, per_episode = evaluate_streetview(routes, predictions, graph, predictions_source=source,
                                               data_source=str(args.data))
    if args.plot_dir is not None:
        from tqdm import tqdm

        from valan.problems.streetview.plots import write_route_plot

        trajectories = parse_predictions(predictions, source)
        for route, scored in tqdm(list(zip(routes, per_episode)), desc=f"plots -> {args.plot_dir}", unit="route",
                                  disable=None):
            write_route_plot(args.plot_dir, graph, scored, route.route, trajectories[route.id], route.navigation_text)
    if args.json:
        obj: dict[str, Any] = dict(summary)
        if args.per_episode:
            obj["episodes"] = per_episode
        print(json.dumps(obj))
        return 0
    print(f"Touchdown metrics of {source} on {args.data}: {summary['num_episodes']} routes; "
          "TC = final panorama is the goal or adjacent to it")
    for key, label in ROWS:
        print(f"{label:<40} {summary[key]:>8.3f}")
    if args.per_episode:
        print(f"\n{'id':<12} {'TC':>3} {'SPD':>5} {'SED':>6}")
        for e in per_episode:
            print(f"{e['id']:<12} {int(e['task_completion']):>3d} {e['spd']:>5d} {e['sed']:>6.3f}")
    return 0


def _load(args: argparse.Namespace) -> tuple[list, Any]:
    """The routes of ``--data``, checked on the ``--graph`` they are returned with."""
    from valan.envs.streetview.dataset import load_routes
    from valan.envs.streetview.graph import load_graph

    graph = load_graph(args.graph)
    return load_routes(args.data, graph), graph
