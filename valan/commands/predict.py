"""``valan predict TASK``: a trained agent's leaderboard-format predictions on any split, test splits included.

The agent (a ``valan train`` checkpoint) acts greedily on every episode of ``--data``, exactly as
``valan evaluate --checkpoint`` runs it, but nothing is scored, so episodes need no reference path. The
checkpoint carries its config and vocabulary: acting needs only the checkpoint, the navigation graph and the
split file. Several checkpoints act as one ensemble (the mean of their log-probabilities at every step;
``valan.agents.ensemble``): same problem, vocabulary and env config. ``TASK`` is ``r2r``, ``streetview`` (Touchdown and map2seq checkpoints) or the name of any
registered problem (``valan.problems.PROBLEMS``); it must match the checkpoint.

Output (written atomically): R2R ``[{"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}]``,
Touchdown ``[{"route_id": ..., "trajectory": [panoid, ...]}]``, map2seq the same keyed by ``id``; sorted by id.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a trained agent's leaderboard-format predictions for any split (test splits too: nothing is scored)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", metavar="TASK",
                        help="r2r, streetview (Touchdown / map2seq) or another registered problem; must match the "
                             "checkpoint's problem")
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True, metavar="CKPT",
                        help="a checkpoint written by valan train; several act as one ensemble (mean of their "
                             "log-probabilities; same problem, vocabulary and env config)")
    parser.add_argument("--data", type=Path, required=True,
                        help="the split to predict: an R2R-format JSON file, or Touchdown/map2seq JSON lines")
    parser.add_argument("--graph", "--connectivity", dest="graph", type=Path, metavar="DIR",
                        help="the navigation graph: R2R's folder of {scan}_connectivity.json (--connectivity) or the "
                             "Street View folder with nodes.txt and links.txt (--graph); default: the one in the "
                             "checkpoint's config")
    parser.add_argument("--output", type=Path, required=True, metavar="FILE", help="predictions JSON to write")
    parser.add_argument("--num-envs", type=int, default=16, help="episodes stepped together")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from valan.distributed.evaluation import TrainedCheckpoint
    from valan.io import write_json

    trained, *others = [TrainedCheckpoint.load(path, task=args.task) for path in args.checkpoint]
    predictions = trained.predictions(args.data, args.graph, num_envs=args.num_envs, progress=not args.no_progress,
                                      ensemble_with=others)
    write_json(args.output, predictions, indent=None)
    agent = " + ".join(str(path) for path in args.checkpoint)
    print(f"wrote {len(predictions)} {trained.problem.name} predictions of {agent} on {args.data} to {args.output}")
    return 0
