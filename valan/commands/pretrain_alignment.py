"""``valan pretrain-alignment``: pretrain the follower's instruction and visual encoders on CMA and NVS.

Writes the run folder like ``valan train-discriminator`` (the supervised loop's: ``config.yaml``, ``vocab.txt``,
``metrics.jsonl``, ``tensorboard/``, ``checkpoints/``). Warm-start a follower from a checkpoint with
``valan train --init-from CKPT``: its ``instruction_encoder`` and ``visual_encoder`` tensors are copied (the R2R
config's ``agent.embed_dim``, ``agent.hidden_dim``, vocabulary and feature size must match the pretraining run's).
"""

from __future__ import annotations

import argparse

from valan.commands.supervised import add_run_arguments, checkpoints_text, claimed, load_run_config

HELP = "pretrain the follower's instruction and visual encoders on cross-modal alignment (CMA) and next visual scene (NVS)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default=None,
                        help="comma-separated tasks among cma,nvs (default: the config's learning.tasks)")
    add_run_arguments(parser, "alignment.yaml", "run.total_cpu_minutes=15", default_steps=1000)


def run(args: argparse.Namespace) -> int:
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.alignment.config import AlignmentConfig
    from valan.problems.alignment.training import pretrain

    config, out = load_run_config(args, "alignment.yaml", AlignmentConfig, _tasks_override(args.tasks))
    with claimed(args, out):
        result = pretrain(config, out, resume=args.resume)
    for split, scalars in result.metrics.items():
        print(f"{split}: " + "  ".join(f"{name} {value:.3f}" for name, value in scalars.items()))
    print(f"run folder: {out}; {checkpoints_text(out, result.checkpoint)}")
    print(f"warm-start a follower with: valan train --init-from {result.checkpoint}")
    if config.data.features == "synthetic":
        print(SYNTHETIC_NOTE)
    return 0


def _tasks_override(tasks: str | None) -> list[str]:
    """The ``--set`` override that ``--tasks`` stands for; ``InputError`` blaming ``--tasks`` for an unknown task."""
    from valan.errors import InputError
    from valan.problems.alignment.config import TASKS

    if tasks is None:
        return []
    names = [name.strip() for name in tasks.split(",")]
    wrong = [name for name in names if name not in TASKS]
    if wrong:
        raise InputError(f"--tasks: unknown task {wrong[0]!r} (choose among {', '.join(TASKS)})")
    return [f"learning.tasks=[{','.join(names)}]"]
