"""``valan train-sdr``: train LingUNet on Touchdown spatial description resolution.

Writes the supervised loop's run folder (:mod:`valan.learning.supervised`): ``config.yaml`` (the effective
config), ``vocab.txt``, ``metrics.jsonl`` (one JSON object per line: ``step``, ``split`` (train/eval) and the
scalars), TensorBoard scalars under ``tensorboard/``, and ``checkpoints/ckpt-<step>.pt`` (atomic, the last
``run.keep_last`` kept; evaluation and checkpoints every ``run.eval_every_steps`` and at the end).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train LingUNet for Touchdown spatial description resolution (SDR)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML config; None: the embedded configs/sdr.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, e.g. --set run.total_steps=1000 (repeatable)")
    parser.add_argument("--out", default=None, help="run folder; None: the config's run.logdir")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")


def run(args: argparse.Namespace) -> int:
    from valan.config import load_config
    from valan.configs import config_path
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.sdr.config import SDRConfig
    from valan.problems.sdr.training import resolve_device, train

    config = load_config(args.config or config_path("sdr.yaml"), args.overrides, schema=SDRConfig)
    out = Path(args.out or config.run.logdir)
    result = train(config, out, resolve_device(args.device), resume=args.resume)
    if "eval" in result.metrics:
        print(f"step {result.step}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in result.metrics["eval"].items()))
    print(f"run folder: {out} (latest checkpoint {result.checkpoint})")
    if config.features.source == "synthetic":
        print(SYNTHETIC_NOTE)
    return 0
