"""``valan train-discriminator``: train an instruction-path discriminator on R2R-format data.

Writes to the run folder: ``config.yaml`` (the effective config), ``metrics.jsonl`` (one JSON object per line:
``step``, ``split`` (``train`` or a validation split), ``elapsed_s`` and the scalars - ROC-AUC overall
``auc/all`` and per negative type ``auc/<type>``), TensorBoard scalars under ``tensorboard/``,
``vocab.txt`` and ``checkpoints/ckpt-<step>.pt`` (atomic, the last ``run.keep_last`` kept): the supervised loop's
run folder (:mod:`valan.learning.supervised`).
"""

from __future__ import annotations

import argparse

from valan.commands.supervised import add_run_arguments, checkpoints_text, claimed, load_run_config

HELP = "train an instruction-path discriminator (ROC-AUC per negative type on validation splits)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, "discriminator.yaml", "run.total_minutes=15", default_steps=2000)


def run(args: argparse.Namespace) -> int:
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.discriminator.config import DiscriminatorConfig
    from valan.problems.discriminator.training import train

    config, out = load_run_config(args, "discriminator.yaml", DiscriminatorConfig)
    with claimed(args, out):
        result = train(config, out, resume=args.resume)
    for split, scalars in result.metrics.items():
        print(f"{split} ROC-AUC: " + "  ".join(f"{name.split('/', 1)[1]} {value:.3f}" for name, value in scalars.items()
                                              if name.startswith("auc/")))
    print(f"run folder: {out}; {checkpoints_text(out, result.checkpoint)}")
    if config.data.features == "synthetic":
        print(SYNTHETIC_NOTE)
    return 0
