"""``valan speak``: write a trained speaker's instructions for the paths of an R2R-format file.

The output is the input's records with ``instructions`` replaced by one generated instruction per path and
``source: "speaker"`` added (every other field kept), written atomically; paths are checked on the graphs first.
Decoding is greedy by default, ``--sample`` draws from the speaker's distribution (seeded by ``--seed``),
``--beam K`` runs a K-wide beam search.
"""

from __future__ import annotations

import argparse

HELP = "write a trained speaker's instructions for R2R-format paths (greedy, --sample or --beam K)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a valan train-speaker checkpoint")
    parser.add_argument("--data", required=True,
                        help="R2R-format file of paths (instructions may be empty, e.g. valan augment paths output)")
    parser.add_argument("--output", required=True, help="R2R-format file to write")
    decoding = parser.add_mutually_exclusive_group()
    decoding.add_argument("--sample", action="store_true", help="sample words instead of taking the most likely")
    decoding.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of --sample")
    parser.add_argument("--connectivity", default=None,
                        help="folder of {scan}_connectivity.json (default: the training run's)")
    parser.add_argument("--features", default=None,
                        help="feature store: synthetic, a .tsv file or a store folder (default: the training run's)")
    parser.add_argument("--batch-size", type=int, default=256, help="paths per forward pass")


def run(args: argparse.Namespace) -> int:
    from valan.errors import InputError
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.io import write_json
    from valan.problems.speaker.training import speak

    if args.beam < 1 or args.batch_size < 1:
        raise InputError(f"--beam and --batch-size must be at least 1, got {args.beam} and {args.batch_size}")
    records, synthetic = speak(args.checkpoint, args.data, args.connectivity, args.features, beam=args.beam,
                               sample=args.sample, seed=args.seed, batch_size=args.batch_size)
    write_json(args.output, records)
    print(f"wrote {len(records)} speaker instructions -> {args.output}")
    if synthetic:
        print(SYNTHETIC_NOTE)
    return 0
