"""``valan train-sdr``: train LingUNet on Touchdown spatial description resolution.

Writes the supervised loop's run folder (:mod:`valan.learning.supervised`): ``config.yaml`` (the effective
config), ``vocab.txt``, ``metrics.jsonl`` (one JSON object per line: ``step``, ``split`` (train/eval) and the
scalars), TensorBoard scalars under ``tensorboard/``, and ``checkpoints/ckpt-<step>.pt`` (atomic, the last
``run.keep_last`` kept; evaluation and checkpoints every ``run.eval_every_steps`` and at the end).
"""

from __future__ import annotations

import argparse

from valan.commands.supervised import add_run_arguments, checkpoints_text, claimed, load_run_config

HELP = "train LingUNet for Touchdown spatial description resolution (SDR)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, "sdr.yaml", "run.total_steps=1000", default_steps=200)
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, ...")


def run(args: argparse.Namespace) -> int:
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.sdr.config import SDRConfig
    from valan.problems.sdr.training import resolve_device, train

    config, out = load_run_config(args, "sdr.yaml", SDRConfig)
    with claimed(args, out):
        result = train(config, out, resolve_device(args.device), resume=args.resume)
    if "eval" in result.metrics:
        print(f"step {result.step}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in result.metrics["eval"].items()))
    print(f"run folder: {out}; {checkpoints_text(out, result.checkpoint)}")
    if config.features.source == "synthetic":
        print(SYNTHETIC_NOTE)
    return 0
