"""``valan score``: score instruction-path pairs with a trained discriminator.

Writes JSON lines ``{"instr_id", "path_id", "source", "score"}`` (the logit; higher = the instruction describes
the path), one per instruction-path pair, in input order (``--data`` files one after the other); ``source`` is
the record's ``source`` field (``"speaker"`` for ``valan speak`` output), ``"human"`` where it has none.
``--histogram PNG`` draws the scores per source and prints the ROC-AUC of human over speaker instructions
(:mod:`valan.problems.discriminator.histogram`): score a held-out file and its ``valan speak`` version together.
Every record is checked (scan and viewpoints known, consecutive viewpoints adjacent, instruction not empty) before
anything is scored; the output is written atomically.
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
    source.add_argument("--data", nargs="+", metavar="FILE",
                        help="R2R-format file(s): every instruction of every path is scored")
    source.add_argument("--pairs", help="explicit pairs: a JSON list (or .jsonl) of "
                                        "{instr_id?, scan, path, instruction, heading?} records")
    parser.add_argument("--output", required=True, help="JSON-lines file to write")
    parser.add_argument("--histogram", metavar="PNG",
                        help="also draw the scores per instruction source (human, speaker) and print the ROC-AUC of "
                             "human over speaker instructions (with --data)")


def run(args: argparse.Namespace) -> int:
    import json

    from valan.problems.discriminator.pairs import read_explicit_pairs, read_r2r_pairs
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.discriminator.training import open_for_scoring, score_pairs
    from valan.errors import InputError
    from valan.io import atomic_write
    from valan.problems.discriminator.histogram import HUMAN, write_histogram

    if args.histogram is not None and args.data is None:
        raise InputError("--histogram needs --data (R2R-format files whose records may name their source)")
    loaded, connectivity, encoder = open_for_scoring(args.checkpoint, args.connectivity, args.features)
    if args.data is not None:
        pairs, sources = [], []
        for name in args.data:
            file_records, scored = read_r2r_pairs(name, connectivity)
            pairs += [s.pair for s in scored]
            sources += [str(file_records[s.record].get("source", HUMAN)) for s in scored]
    else:
        pairs = [r.pair for r in read_explicit_pairs(args.pairs, connectivity)]
        sources = [HUMAN] * len(pairs)
    scores = score_pairs(loaded.model, encoder, pairs, args.batch_size,
                         progress=sys.stderr.isatty())  # a bar only for a person watching
    with atomic_write(args.output) as f:
        for pair, source, score in zip(pairs, sources, scores):
            f.write(json.dumps({"instr_id": pair.instr_id, "path_id": pair.path_id, "source": source,
                                "score": float(score)}) + "\n")
    print(f"scored {len(pairs)} instruction-path pairs -> {args.output}")
    if args.histogram is not None:
        groups: dict[str, list[float]] = {}
        for source, score in zip(sources, scores.tolist()):
            groups.setdefault(source, []).append(score)
        auc = write_histogram(args.histogram, groups)
        counts = ", ".join(f"{name} {len(values)}" for name, values in groups.items())
        print(f"histogram ({counts}) -> {args.histogram}"
              + ("" if auc is None else f"; ROC-AUC human vs speaker {auc:.3f}"))
    if encoder.features.synthetic:
        print(SYNTHETIC_NOTE)
    return 0
