"""``valan pretrain-alignment``: pretrain the follower's instruction and visual encoders on CMA and NVS.

Writes the run folder like ``valan train-discriminator`` (the supervised loop's: ``config.yaml``, ``vocab.txt``,
``metrics.jsonl``, ``tensorboard/``, ``checkpoints/``). Warm-start a follower from a checkpoint with
``valan train --init-from CKPT``: its ``instruction_encoder`` and ``visual_encoder`` tensors are copied (the R2R
config's ``agent.embed_dim``, ``agent.hidden_dim``, vocabulary and feature size must match the pretraining run's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "pretrain the follower's instruction and visual encoders on cross-modal alignment (CMA) and next visual scene (NVS)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default=None,
                        help="comma-separated tasks among cma,nvs (default: the config's learning.tasks)")
    parser.add_argument("--config", default=None, help="YAML config (default: the embedded configs/alignment.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, e.g. --set run.total_cpu_minutes=15 (repeatable)")
    parser.add_argument("--out", default=None, help="run folder (default: the config's run.logdir)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")


def run(args: argparse.Namespace) -> int:
    from valan.config import load_config
    from valan.configs import config_path
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.alignment.config import AlignmentConfig
    from valan.problems.alignment.training import pretrain

    overrides = list(args.overrides)
    if args.tasks is not None:
        overrides.append(f"learning.tasks=[{args.tasks}]")
    config = load_config(args.config or config_path("alignment.yaml"), overrides, schema=AlignmentConfig)
    out = Path(args.out or config.run.logdir)
    result = pretrain(config, out, resume=args.resume)
    for split, scalars in result.metrics.items():
        print(f"{split}: " + "  ".join(f"{name} {value:.3f}" for name, value in scalars.items()))
    print(f"run folder: {out}; warm-start a follower with: valan train --init-from {result.checkpoint}")
    if config.data.features == "synthetic":
        print(SYNTHETIC_NOTE)
    return 0
