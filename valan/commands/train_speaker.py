"""``valan train-speaker``: train a speaker (path -> instruction, Fried et al. 2018) with teacher forcing.

Writes the supervised loop's run folder (:mod:`valan.learning.supervised`): ``config.yaml``, ``vocab.txt``,
``metrics.jsonl`` (per evaluation split ``perplexity``, ``nll`` and corpus ``bleu4`` against all references of a
path; ``train``: ``loss``, ``epoch``), ``tensorboard/`` and ``checkpoints/`` (``LATEST.pt``; ``BEST.pt`` with
e.g. ``--set run.select_metric=val_seen/bleu4``).
"""

from __future__ import annotations

import argparse

from valan.commands.supervised import add_run_arguments, checkpoints_text, claimed, load_run_config

HELP = "train a speaker (R2R path -> instruction) with teacher forcing; BLEU-4 and perplexity on validation splits"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, "speaker.yaml", "run.total_minutes=10")


def run(args: argparse.Namespace) -> int:
    from valan.features.stores import SYNTHETIC_NOTE
    from valan.problems.speaker.config import SpeakerConfig
    from valan.problems.speaker.training import train

    config, out = load_run_config(args, "speaker.yaml", SpeakerConfig)
    with claimed(args, out):
        result = train(config, out, resume=args.resume)
    for split, scalars in result.metrics.items():
        print(f"{split}: BLEU-4 {scalars['bleu4']:.3f}  perplexity {scalars['perplexity']:.2f}")
    print(f"run folder: {out}; {checkpoints_text(out, result.checkpoint)}")
    if config.data.features == "synthetic":
        print(SYNTHETIC_NOTE)
    return 0
