"""``valan evaluate sdr``: score a trained LingUNet on Touchdown SDR data (Chen et al. 2019 metrics).

acc@40/80/120: fraction of examples whose predicted cell lies less than 40/80/120 pixels from the bear's cell;
mean_distance: pixels. Pixels are those of the 3712 x 800 panorama the Touchdown and VALAN SDR code use
(see ``valan.problems.sdr.metrics``).
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "score a trained SDR model (LingUNet): accuracy within 40/80/120 pixels and mean distance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by valan train-sdr")
    parser.add_argument("--data", required=True, help="Touchdown JSON lines with td_location_text and *_static_center")
    parser.add_argument("--features", default=None,
                        help="a folder of {panoid}.npy feature maps (layout from the checkpoint's config); "
                             "None: the checkpoint's feature maps")
    parser.add_argument("--panoramas", default=None,
                        help="comma-separated subset of main,pre,post; None: the checkpoint's data.panoramas")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per forward pass")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--predictions", default=None, help="also write per-example predictions to this JSON file")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from valan.errors import InputError
    from valan.io import write_json
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.sdr.data import SDRDataset, load_sdr
    from valan.problems.sdr.metrics import METRIC_NAMES
    from valan.problems.sdr.training import evaluate_model, load_sdr_model, open_feature_maps, resolve_device

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    config, vocab, model, state = load_sdr_model(args.checkpoint, device)
    panoramas = args.panoramas.split(",") if args.panoramas else config.data.panoramas
    examples, skipped = load_sdr(args.data, panoramas)
    features_config = config.features
    if args.features is not None:
        features_config = dataclasses.replace(features_config, source="npy", path=args.features)
    feature_maps = open_feature_maps(features_config)
    if feature_maps.channels != state["in_channels"]:
        raise InputError(f"feature maps have {feature_maps.channels} channels; the model was trained on "
                         f"{state['in_channels']}", source=str(features_config.path or "synthetic"))
    dataset = SDRDataset(examples, vocab, feature_maps, config.data.max_text_length, config.target.sigma_px,
                         config.target.panorama_width_px, config.target.panorama_height_px)
    summary, per_example = evaluate_model(model, dataset, args.batch_size, device)
    summary["skipped_not_visible"] = skipped
    summary["synthetic_features"] = feature_maps.synthetic
    if args.predictions:
        write_json(Path(args.predictions), per_example)
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(map(len, METRIC_NAMES))
        for name in METRIC_NAMES:
            value = summary[name]
            print(f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}")
        print(f"({skipped} examples skipped: target not visible; distances in pixels of a "
              f"{config.target.panorama_width_px:g} x {config.target.panorama_height_px:g} panorama)")
    if feature_maps.synthetic:
        print(SYNTHETIC_NOTE, file=sys.stderr if args.json else sys.stdout)  # stdout stays one JSON object
    return 0
