"""``valan features convert``: turn a community feature TSV into a compact memory-mapped store (once)."""

from __future__ import annotations

import argparse
import json
import time

HELP = ("convert a community feature TSV (e.g. ResNet-152-imagenet.tsv: scanId, viewpointId, image_w, image_h, "
        "vfov, base64 float32 features) into a memory-mapped store folder for --features")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tsv", required=True, help="input TSV file (tab-separated, no header, 6 columns)")
    parser.add_argument("--out", required=True, help="output store folder (features.npy + index.json), written atomically")
    parser.add_argument("--views", type=int, default=36, help="views per panorama in each row (R2R: 36)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="stored precision (float16 halves the size; reads return float32)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from valan.errors import InputError
    from valan.features.stores import convert_tsv

    if args.views < 1:
        raise InputError(f"--views must be positive, not {args.views}")
    start = time.perf_counter()
    summary = convert_tsv(args.tsv, args.out, views=args.views, dtype=args.dtype, overwrite=args.overwrite,
                          progress=not args.quiet)
    summary.update(out=args.out, seconds=round(time.perf_counter() - start, 3))
    print(json.dumps(summary))
    return 0
