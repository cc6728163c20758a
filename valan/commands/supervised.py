"""Arguments shared by the supervised trainers' commands (``train-discriminator``, ``pretrain-alignment``,
``train-sdr``); not a subcommand itself."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence


def add_run_arguments(parser: argparse.ArgumentParser, config_file: str, example: str) -> None:
    """``--config`` (default: the embedded ``configs/<config_file>``), ``--set`` (``example``: an override),
    ``--out`` and ``--resume``."""
    parser.add_argument("--config", default=None,
                        help=f"YAML config (default: the embedded configs/{config_file})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help=f"override a config value, e.g. --set {example} (repeatable)")
    parser.add_argument("--out", default=None, help="run folder (default: the config's run.logdir)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's latest checkpoint")


def load_run_config(args: argparse.Namespace, config_file: str, schema: type,
                    overrides: Sequence[str] = ()) -> tuple[Any, Path]:
    """The config (``--config`` or the embedded file, then ``--set`` and ``overrides``) and the run folder."""
    from valan.config import load_config
    from valan.configs import config_path

    config = load_config(args.config or config_path(config_file), [*args.overrides, *overrides], schema=schema)
    return config, Path(args.out or config.run.logdir)
