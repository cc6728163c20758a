"""``valan filter``: keep the augmented instruction-path pairs a discriminator scores highest.

Reads an R2R-format file, scores every instruction with its path, and writes an R2R-format file with the records
that keep at least one instruction: all original fields preserved, ``instructions`` reduced to the kept ones (in
their original order) and a ``score`` field added - the list of the kept instructions' scores, aligned with
``instructions``. ``--keep-top F`` keeps ``round(F * N)`` of the N pairs (highest scores first; equal scores in
file order); ``--threshold T`` keeps pairs scoring at least ``T``; ``--keep-random F`` keeps ``round(F * N)``
pairs drawn at random (seeded by ``--seed``; the control that shows whether the scores, not the smaller size,
matter). Bad input stops before anything is written.
"""

from __future__ import annotations

import argparse
import math
import sys

from valan.commands.score import add_common_arguments

HELP = "keep the instruction-path pairs of an R2R-format file that a discriminator scores highest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--data", required=True, help="R2R-format file (e.g. speaker-augmented paths)")
    keep = parser.add_mutually_exclusive_group(required=True)
    keep.add_argument("--keep-top", type=float, metavar="FRACTION", help="fraction of pairs to keep, in (0, 1]")
    keep.add_argument("--threshold", type=float, metavar="T", help="keep pairs with score >= T (logit)")
    keep.add_argument("--keep-random", type=float, metavar="FRACTION",
                      help="fraction of pairs to keep at random, in (0, 1] (a control for --keep-top)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of --keep-random")
    parser.add_argument("--output", required=True, help="R2R-format file to write")


def kept_indices(scores, keep_top: float | None = None, threshold: float | None = None,
                 keep_random: float | None = None, seed: int = 0) -> list[int]:
    """Indices of the kept pairs, ascending: the ``round(keep_top * N)`` best (ties in index order), those with
    ``score >= threshold``, or ``round(keep_random * N)`` drawn without replacement (seeded)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    if keep_random is not None:
        count = math.floor(keep_random * len(scores) + 0.5)
        return sorted(np.random.default_rng(seed).choice(len(scores), count, replace=False).tolist())
    if keep_top is not None:
        count = math.floor(keep_top * len(scores) + 0.5)
        order = np.argsort(-scores, kind="stable")
        return sorted(order[:count].tolist())
    return np.flatnonzero(scores >= threshold).tolist()


def run(args: argparse.Namespace) -> int:
    from valan.problems.discriminator.pairs import read_r2r_pairs
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.discriminator.training import open_for_scoring, score_pairs
    from valan.errors import InputError
    from valan.io import write_json

    for flag, value in (("--keep-top", args.keep_top), ("--keep-random", args.keep_random)):
        if value is not None and not 0.0 < value <= 1.0:
            raise InputError(f"{flag} must be in (0, 1], got {value}")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise InputError(f"--threshold must be a finite number, got {args.threshold}")
    loaded, connectivity, encoder = open_for_scoring(args.checkpoint, args.connectivity, args.features)
    records, scored = read_r2r_pairs(args.data, connectivity)
    scores = score_pairs(loaded.model, encoder, [s.pair for s in scored], args.batch_size,
                         progress=sys.stderr.isatty())  # a bar only for a person watching
    kept: dict[int, list[int]] = {}
    for i in kept_indices(scores, args.keep_top, args.threshold, args.keep_random, args.seed):
        kept.setdefault(scored[i].record, []).append(i)
    output = []
    for n, record in enumerate(records):
        if n in kept:
            output.append({**record, "instructions": [scored[i].pair.instruction for i in kept[n]],
                           "score": [float(scores[i]) for i in kept[n]]})
    write_json(args.output, output)
    count = sum(len(v) for v in kept.values())
    share = count / len(scored) if scored else 0.0
    print(f"kept {count} of {len(scored)} instruction-path pairs ({share:.1%}) in {len(output)} of {len(records)} "
          f"paths -> {args.output}")
    if encoder.features.synthetic:
        print(SYNTHETIC_NOTE)
    return 0
