"""``valan report RUN_DIR``: a self-contained HTML page about a run folder (``valan.problems.report``): its config,
learning curves, the latest metrics per split and the evaluated episodes, failures first, with pictures."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("write a self-contained HTML report of a run folder: config, learning curves, latest metrics per split and "
        "the evaluated episodes (failures first) with their pictures")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run folder of valan train or a supervised trainer (holds config.yaml)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="the HTML file (default: RUN_DIR/report.html)")
    parser.add_argument("--thumbnails", type=int, default=50,
                        help="pictures per evaluation split, failures first")


def run(args: argparse.Namespace) -> int:
    from valan.problems.report import write_report

    path = write_report(args.run_dir, args.output, thumbnails=args.thumbnails)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser")
    return 0
