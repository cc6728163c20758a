"""The ``valan`` command line.

Subcommands live in ``valan.commands``; this module only builds the parser and turns bad input
(``InputError``) and OS errors into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from valan.errors import InputError
from valan.io import os_error

# (command words) -> module in valan.commands, or "module:Name" for a class in it that holds the command's HELP,
# add_arguments and run (one module serving several leaves)
COMMANDS: dict[tuple[str, ...], str] = {
    ("train",): "train",
    ("evaluate", "r2r"): "evaluate_r2r",
    ("evaluate", "streetview"): "evaluate_streetview",
    ("evaluate", "sdr"): "evaluate_sdr",
    ("evaluate", "ndh"): "evaluate_ndh",
    ("data", "check", "r2r"): "check_r2r",
    ("data", "check", "streetview"): "check_streetview",
    ("data", "split", "r2r"): "data_split:R2R",
    ("data", "split", "streetview"): "data_split:StreetView",
    ("features", "convert"): "features_convert",
    ("features", "extract"): "features_extract",
    ("train-sdr",): "train_sdr",
    ("train-discriminator",): "train_discriminator",
    ("score",): "score",
    ("filter",): "filter",
    ("pretrain-alignment",): "pretrain_alignment",
    ("train-speaker",): "train_speaker",
    ("speak",): "speak",
    ("augment", "paths"): "augment_paths",
    ("predict",): "predict",
    ("report",): "report",
}

GROUP_HELP = {
    ("evaluate",): "score predictions or a trained agent with the community's metrics",
    ("data",): "validate and split datasets",
    ("data", "check"): "check a dataset against its navigation graph",
    ("data", "split"): "carve an unseen-environment validation split out of training data",
    ("features",): "build and convert visual feature stores",
    ("augment",): "make augmented training data (sampled paths; valan speak writes their instructions)",
}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help only when X says something: not for flags, ``None``, empty
    values or helps that already name their default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        default = action.default
        empty = default is None or default is False or (isinstance(default, (str, list, tuple)) and not default)
        if ("%(default)" in help_text or "default:" in help_text or empty or default is argparse.SUPPRESS
                or action.nargs == 0 or not action.option_strings):
            return action.help
        return help_text + " (default: %(default)s)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("valan")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``, looking the version up only when asked (``importlib.metadata`` costs every command ~20 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``valan`` parser. With ``argv`` (the command line to parse) naming a subcommand, only that one is built
    (and its module imported: ``add_arguments`` may import what the subcommand needs), which is all that parsing
    it needs; with any other ``argv`` (``valan --help``, ``valan data --help``, a typo) or none, every subcommand
    is listed with its help, and only the one ``argv`` names, if any, gets its options."""
    parser = argparse.ArgumentParser(prog="valan", description="Vision-and-language navigation on Ray and PyTorch.")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): parser.add_subparsers(dest="command", metavar="COMMAND")}
    named = [words for words in COMMANDS if argv is not None and tuple(argv[:len(words)]) == words]
    for words, target in COMMANDS.items() if not named else [(named[0], COMMANDS[named[0]])]:
        module_name, _, leaf_name = target.partition(":")
        if importlib.util.find_spec(f"valan.commands.{module_name}") is None:
            continue
        module = importlib.import_module(f"valan.commands.{module_name}")
        if leaf_name:
            module = getattr(module, leaf_name)
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=GROUP_HELP.get(prefix), description=GROUP_HELP.get(prefix))
                groups[prefix] = sub.add_subparsers(dest="_".join(prefix) + "_command", metavar="COMMAND")
                groups[prefix].required = True
        leaf = groups[words[:-1]].add_parser(words[-1], help=module.HELP, description=module.HELP,
                                             formatter_class=DefaultsHelpFormatter)
        if argv is None or tuple(argv[:len(words)]) == words:
            module.add_arguments(leaf)
        leaf.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Bad input (``InputError``) and any OS error left unconverted (a file that cannot be read
    or written) print one line naming the path and return 2; a closed stdout (``valan ... | head``) ends quietly
    with 141, the status of a process that SIGPIPE ended."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here rather than at interpreter exit
        return status
    except BrokenPipeError:
        # Python would report the broken pipe again when it flushes stdout at exit: point stdout at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except InputError as e:
        print(f"valan: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"valan: error: {os_error(e, e.filename or '(no file name)')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGINT/SIGTERM as valan.runs.Stopped
        signum = getattr(stop, "signum", signal.SIGINT)
        checkpoint = getattr(stop, "checkpoint", None)
        saved = f": saved {checkpoint}; continue with --resume" if checkpoint else ""
        print(f"valan: stopped by {signal.Signals(signum).name}{saved}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
