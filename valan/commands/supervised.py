"""Arguments shared by the supervised trainers' commands (``train-discriminator``, ``pretrain-alignment``,
``train-sdr``); not a subcommand itself."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence


DEFAULT_RUN_TIME = "3-10 min on 2 CPU cores"
"""How long the embedded configs' runs take on the bundled sample (stated in the trainers' --help)."""


def add_run_arguments(parser: argparse.ArgumentParser, config_file: str, example: str,
                      default_steps: int | None = None) -> None:
    """``--config`` (default: the embedded ``configs/<config_file>``; with ``default_steps``, its run's optimizer
    steps and duration are stated), ``--set`` (``example``: an override), ``--out``, ``--resume`` and
    ``--overwrite`` (see :func:`claimed`)."""
    length = (f": {default_steps} steps on the bundled sample, {DEFAULT_RUN_TIME}; cap a run with "
              "--set run.total_minutes=M" if default_steps else "")
    parser.add_argument("--config", default=None,
                        help=f"YAML config (default: the embedded configs/{config_file}{length})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help=f"override a config value, e.g. --set {example} (repeatable)")
    parser.add_argument("--out", default=None, help="run folder (default: the config's run.logdir)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    start.add_argument("--overwrite", action="store_true",
                       help="start over in a run folder that holds another run: its files are moved to the sibling "
                            "folder <out>.previous-<UTC time>")


def load_run_config(args: argparse.Namespace, config_file: str, schema: type,
                    overrides: Sequence[str] = ()) -> tuple[Any, Path]:
    """The config (``--config`` or the embedded file, then ``--set`` and ``overrides``) and the run folder."""
    from valan.config import load_config
    from valan.configs import config_path

    config = load_config(args.config or config_path(config_file), [*args.overrides, *overrides], schema=schema)
    return config, Path(args.out or config.run.logdir)


@contextlib.contextmanager
def claimed(args: argparse.Namespace, out: Path) -> Iterator[None]:
    """Hold the run folder ``out`` for the run (:class:`valan.runs.RunFolder`: a lock; a folder holding another
    run only with ``--resume`` or ``--overwrite``), printing what the claim did (old run moved aside, ...).
    SIGINT and SIGTERM stop the run as Ctrl-C does (the loop saves a checkpoint of the step reached first)."""
    from valan.runs import RunFolder, stop_on_signals

    with RunFolder(out, resume=args.resume, overwrite=args.overwrite) as folder, stop_on_signals():
        for note in folder.notes:
            print(note, file=sys.stderr)
        yield


def checkpoints_text(out: Path, checkpoint: Path | None) -> str:
    """Where a supervised run left its checkpoints: the newest (real path, also ``LATEST.pt``) and ``BEST.pt``."""
    from valan.checkpoint import BEST, LATEST

    text = f"latest checkpoint {checkpoint} (also {out / 'checkpoints' / LATEST})"
    best = out / "checkpoints" / BEST
    return text + (f", best {best}" if best.is_file() else "")
