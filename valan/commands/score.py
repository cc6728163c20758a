"""``valan score``: score instruction-path pairs with a trained discriminator.

Writes JSON lines ``{"instr_id", "path_id", "score"}`` (the logit; higher = the instruction describes the path),
one per instruction-path pair, in input order. Every record is checked (scan and viewpoints known, consecutive
viewpoints adjacent, instruction not empty) before anything is scored; the output is written atomically.
"""

from __future__ import annotations

import argparse
import sys

HELP = "score instruction-path pairs with a trained discriminator (JSON lines of logits)"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared with ``valan filter``."""
    parser.add_argument("--checkpoint", required=True, help="a valan train-discriminator checkpoint")
    parser.add_argument("--connectivity", default=None,
                        help="folder of {scan}_connectivity.json (default: the training run's)")
    parser.add_argument("--features", default=None,
                        help="feature store: synthetic, a .tsv file or a store folder (default: the training run's)")
    parser.add_argument("--batch-size", type=int, default=512, help="pairs per forward pass")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="R2R-format file: every instruction of every path is scored")
    source.add_argument("--pairs", help="explicit pairs: a JSON list (or .jsonl) of "
                                        "{instr_id?, scan, path, instruction, heading?} records")
    parser.add_argument("--output", required=True, help="JSON-lines file to write")


def run(args: argparse.Namespace) -> int:
    import json

    from valan.problems.discriminator.pairs import read_explicit_pairs, read_r2r_pairs
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.discriminator.training import open_for_scoring, score_pairs
    from valan.io import atomic_write

    loaded, connectivity, encoder = open_for_scoring(args.checkpoint, args.connectivity, args.features)
    if args.data is not None:
        _, records = read_r2r_pairs(args.data, connectivity)
    else:
        records = read_explicit_pairs(args.pairs, connectivity)
    pairs = [r.pair for r in records]
    scores = score_pairs(loaded.model, encoder, pairs, args.batch_size,
                         progress=sys.stderr.isatty())  # a bar only for a person watching
    with atomic_write(args.output) as f:
        for pair, score in zip(pairs, scores):
            f.write(json.dumps({"instr_id": pair.instr_id, "path_id": pair.path_id, "score": float(score)}) + "\n")
    print(f"scored {len(pairs)} instruction-path pairs -> {args.output}")
    if encoder.features.synthetic:
        print(SYNTHETIC_NOTE)
    return 0
