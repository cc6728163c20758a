"""``valan train-discriminator``: train an instruction-path discriminator on R2R-format data.

Writes to the run folder: ``config.yaml`` (the effective config), ``metrics.jsonl`` (one JSON object per line:
``step``, ``split`` (``train`` or a validation split), ``elapsed_s`` and the scalars - ROC-AUC overall
``auc/all`` and per negative type ``auc/<type>``), TensorBoard scalars under ``tensorboard/``,
``vocab.txt`` and ``checkpoints/ckpt-<step>.pt`` (atomic, the last ``run.keep_last`` kept): the supervised loop's
run folder (:mod:`valan.learning.supervised`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train an instruction-path discriminator (ROC-AUC per negative type on validation splits)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML config (default: the embedded configs/discriminator.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, e.g. --set run.total_minutes=15 (repeatable)")
    parser.add_argument("--out", default=None, help="run folder (default: the config's run.logdir)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")


def run(args: argparse.Namespace) -> int:
    from valan.config import load_config
    from valan.configs import config_path
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.discriminator.config import DiscriminatorConfig
    from valan.problems.discriminator.training import train

    config = load_config(args.config or config_path("discriminator.yaml"), args.overrides, schema=DiscriminatorConfig)
    out = Path(args.out or config.run.logdir)
    result = train(config, out, resume=args.resume)
    for split, scalars in result.metrics.items():
        print(f"{split} ROC-AUC: " + "  ".join(f"{name.split('/', 1)[1]} {value:.3f}" for name, value in scalars.items()
                                              if name.startswith("auc/")))
    print(f"run folder: {out} (latest checkpoint {result.checkpoint})")
    if config.data.features == "synthetic":
        print(SYNTHETIC_NOTE)
    return 0
