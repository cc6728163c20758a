"""Where an R2R follower's episodes fail: the first step, path length, stopping, and the words of the instructions.

    .venv/bin/python scripts/r2r_errors.py --data SPLIT.json --predictions PRED.json --connectivity DIR
        [--train TRAIN.json ...] [--vocab VOCAB.txt]

``PRED.json`` is leaderboard format (``valan predict r2r``); it is scored with valan's R2R evaluator, so bad input
is the evaluator's one-line error (exit status 2, nothing written). Prints one JSON object:

- ``success_rate``, ``oracle_success_rate``: as ``valan evaluate r2r``; their difference is what stopping at the
  best visited point would add.
- ``first_step_accuracy``: share of episodes whose first move goes to the reference path's second viewpoint, and
  ``success_rate_after_first_step`` with ``right`` / ``wrong`` the success rate of each group.
- ``by_hops``: episodes and success rate per reference path length in hops.
- ``failures``: how the failed episodes ended, as shares of all episodes: ``passed_goal`` came within the success
  radius (3 m) of the goal and stopped elsewhere (the oracle-success gap), ``stopped_short`` never came near and
  travelled less than the shortest path's length (metres), ``went_long`` never came near and travelled at least
  that far.
- with ``--train``: ``tokens`` of the split's instructions, and the share of them seen fewer than 1, 5 and 50 times
  in those training files; with ``--vocab`` as well, the share outside that vocabulary (read as ``<UNK>``).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from typing import Any, Sequence

from valan.envs.r2r.dataset import R2REpisode, load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.envs.r2r.metrics import evaluate_r2r, parse_predictions
from valan.errors import InputError
from valan.io import read_json
from valan.text import Vocabulary, tokenize

RARE_COUNTS = (1, 5, 50)  # training occurrences below which a word counts as rare


def first_move(trajectory: Sequence[str]) -> str | None:
    """The first viewpoint the trajectory moves to (``None`` if it never leaves its start)."""
    return next((v for v in trajectory[1:] if v != trajectory[0]), None)


def breakdown(episodes: Sequence[R2REpisode], predictions: object, connectivity: Connectivity,
              source: str = "") -> dict[str, Any]:
    summary, scores = evaluate_r2r(episodes, predictions, connectivity, predictions_source=source)
    trajectories = parse_predictions(predictions, source)
    right = [first_move(trajectories[ep.instr_id]) == ep.path[1] for ep in episodes]
    groups: dict[str, list[bool]] = {"right": [], "wrong": []}
    hops: dict[int, list[bool]] = collections.defaultdict(list)
    failures = collections.Counter()
    for ep, ok, score in zip(episodes, right, scores):
        groups["right" if ok else "wrong"].append(score["success"])
        hops[len(ep.path) - 1].append(score["success"])
        if score["success"]:
            continue
        if score["oracle_success"]:
            failures["passed_goal"] += 1
        elif score["trajectory_length"] < score["shortest_path_length"]:
            failures["stopped_short"] += 1
        else:
            failures["went_long"] += 1
    rate = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"episodes": len(episodes), "success_rate": summary["success_rate"],
            "oracle_success_rate": summary["oracle_success_rate"], "first_step_accuracy": rate(right),
            "success_rate_after_first_step": {k: rate(v) for k, v in groups.items()},
            "by_hops": {str(h): {"episodes": len(v), "success_rate": rate(v)} for h, v in sorted(hops.items())},
            "failures": {k: failures[k] / len(episodes) for k in ("passed_goal", "stopped_short", "went_long")}}


def word_shares(episodes: Sequence[R2REpisode], training: Sequence[R2REpisode],
                vocabulary: Vocabulary | None) -> dict[str, Any]:
    """How rare the split's instruction words are in the training instructions (and in the vocabulary)."""
    counts = collections.Counter(t for ep in training for t in tokenize(ep.instruction))
    tokens = [t for ep in episodes for t in tokenize(ep.instruction)]
    shares: dict[str, Any] = {"tokens": len(tokens)}
    for n in RARE_COUNTS:
        shares[f"seen_under_{n}_times"] = sum(counts[t] < n for t in tokens) / len(tokens)
    if vocabulary is not None:
        shares["out_of_vocabulary"] = sum(t not in vocabulary.index for t in tokens) / len(tokens)
    return shares


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the R2R-format split the predictions are for")
    parser.add_argument("--predictions", required=True, help="leaderboard-format predictions (valan predict r2r)")
    parser.add_argument("--connectivity", required=True, help="folder of {scan}_connectivity.json")
    parser.add_argument("--train", nargs="+", default=[], help="R2R-format training files, for the word shares")
    parser.add_argument("--vocab", help="the agent's vocabulary file (with --train)")
    args = parser.parse_args(argv)
    try:
        if args.vocab and not args.train:
            raise InputError("--vocab needs --train")
        connectivity = Connectivity(args.connectivity)
        episodes = load_r2r(args.data, connectivity)
        result = breakdown(episodes, read_json(args.predictions), connectivity, source=args.predictions)
        if args.train:
            training = [ep for path in args.train for ep in load_r2r(path)]
            result["words"] = word_shares(episodes, training, Vocabulary.load(args.vocab) if args.vocab else None)
    except InputError as e:
        print(f"r2r_errors: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
