"""``valan features extract``: run a user's CNN over panorama images and write a cached feature store."""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

HELP = ("extract panorama features with a CNN saved by torch.export (or, legacy, TorchScript): R2R per-view images "
        "(DIR/{scan}/{viewpoint}_{view}.jpg, view = 12 * elevation_level + heading_step) or equirectangular "
        "panoramas (DIR/{panoid}.jpg) cut into perspective crops; writes the store that --features reads")


def _degrees(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers in degrees separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one angle")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from valan.features import DEFAULT_FOV_DEG, DEFAULT_HEADINGS_DEG, DEFAULT_PITCHES_DEG

    def joined(values: tuple[float, ...]) -> str:
        return ",".join(f"{v:g}" for v in values)

    parser.add_argument("--images", required=True, help="image folder (layout given by --layout)")
    parser.add_argument("--model", required=True,
                        help="CNN archive saved by torch.export.save (recommended; torch.jit is deprecated) or "
                             "torch.jit.save; maps (N, 3, size, size) float32 to (N, D)")
    parser.add_argument("--out", required=True, help="output store folder (features.npy + index.json), written atomically")
    parser.add_argument("--layout", choices=("r2r", "equirect"), default="r2r",
                        help="r2r: DIR/{scan}/{viewpoint}_{view}.jpg with 36 views per viewpoint; "
                             "equirect: DIR/{panoid}.jpg equirectangular panoramas cut into perspective crops")
    parser.add_argument("--group", default="streetview", help="equirect: group name of the panoramas (the graph name)")
    parser.add_argument("--views", type=int, default=36, help="r2r: views per viewpoint")
    parser.add_argument("--headings", type=_degrees, default=joined(DEFAULT_HEADINGS_DEG),
                        help="equirect: crop headings, degrees clockwise from the panorama's centre column "
                             "(comma-separated)")
    parser.add_argument("--pitches", type=_degrees, default=joined(DEFAULT_PITCHES_DEG),
                        help="equirect: crop pitches, degrees up (comma-separated; write --pitches=-30,0 when the "
                             "first is negative); view index = pitch_index * len(headings) + heading_index")
    parser.add_argument("--fov", type=float, default=DEFAULT_FOV_DEG, help="equirect: crop field of view, degrees")
    parser.add_argument("--interpolation", choices=("bilinear", "nearest"), default="bilinear",
                        help="equirect: how crops sample the panorama")
    parser.add_argument("--size", type=int, default=224,
                        help="model input size in pixels (square); r2r images are resized to it, 0 keeps their size")
    parser.add_argument("--normalize", choices=("imagenet", "none"), default="imagenet",
                        help="input normalisation: imagenet mean/std on [0, 1] pixels, or none ([0, 1] pixels)")
    parser.add_argument("--batch-size", type=int, default=72,
                        help="images per forward pass (rounded down to whole panoramas, at least one)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the CNN runs: cpu, or cuda (the first GPU; an error when none is available)")
    parser.add_argument("--workers", type=int, default=2, help="threads that read and crop images ahead of the model")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored precision")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from valan.errors import InputError
    from valan.features.extraction import (equirect_views, extract_features, list_equirect_images, list_r2r_images,
                                  load_model, r2r_views)

    for name in ("views", "batch_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be positive, not {getattr(args, name)}")
    if args.size < (0 if args.layout == "r2r" else 1):
        raise InputError(f"--size must be positive, not {args.size}")
    if not 0 < args.fov < 180:
        raise InputError(f"--fov must be between 0 and 180 degrees, not {args.fov:g}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")

    metadata = {"made_by": "valan features extract", "source": str(Path(args.images).resolve()),
                "layout": args.layout, "model": str(Path(args.model).resolve()),
                "size": args.size, "normalize": args.normalize}
    if args.layout == "r2r":
        nodes = list_r2r_images(args.images, views=args.views)
        views = args.views
        load_views = partial(r2r_views, size=args.size)
        metadata["view_order"] = "12 * elevation_level + heading_step (R2R)"
    else:
        nodes = list_equirect_images(args.images, group=args.group)
        views = len(args.headings) * len(args.pitches)
        load_views = partial(equirect_views, headings_deg=args.headings, pitches_deg=args.pitches, fov_deg=args.fov,
                             size=args.size, interpolation=args.interpolation)
        metadata.update(headings_deg=args.headings, pitches_deg=args.pitches, fov_deg=args.fov,
                        interpolation=args.interpolation, view_order="pitch_index * len(headings) + heading_index")
    model = load_model(args.model, args.device)
    start = time.perf_counter()
    summary = extract_features(nodes, load_views, model, args.out, views=views, batch_size=args.batch_size,
                               normalize=args.normalize == "imagenet", device=args.device, dtype=args.dtype,
                               workers=args.workers, metadata=metadata, overwrite=args.overwrite,
                               progress=not args.quiet, model_name=args.model)
    summary.update(out=args.out, seconds=round(time.perf_counter() - start, 3))
    print(json.dumps(summary))
    return 0
