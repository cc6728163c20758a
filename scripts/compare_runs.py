"""Side-by-side table of `valan train` runs: each run's evaluation at its last evaluated env step (or at a given
one), per split, from ``<run>/eval/metrics.jsonl``.

    .venv/bin/python scripts/compare_runs.py RUN_DIR... [--metrics success_rate spl ndtw] [--env-steps N]
        [--splits dev_unseen val_seen]

Prints a Markdown table (one row per run: env steps, then ``metric`` per split as ``a / b / c``) and, last, one
JSON line with every figure. A run whose metrics file is missing or holds no evaluation at that step is an error
naming the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def fail(message: str) -> None:
    print(f"compare_runs: {message}", file=sys.stderr)
    raise SystemExit(2)


def evaluation(run: Path, env_steps: int | None) -> tuple[int, dict[str, dict[str, float]]]:
    """``(env steps, {split: metrics})`` of the run's last evaluation (or the one at ``env_steps``)."""
    path = run / "eval" / "metrics.jsonl"
    if not path.is_file():
        fail(f"{path}: no such file (not a valan train run folder?)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = sorted({row["env_steps"] for row in rows if row["env_steps"] > 0})
    if not steps or (env_steps is not None and env_steps not in steps):
        wanted = "trained evaluation" if env_steps is None else f"evaluation at {env_steps} env steps"
        fail(f"{path}: no {wanted} (evaluated at: {steps})")
    at = env_steps if env_steps is not None else steps[-1]
    return at, {row["split"]: row for row in rows if row["env_steps"] == at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--metrics", nargs="+", default=["success_rate", "spl", "ndtw"])
    parser.add_argument("--splits", nargs="+", help="default: every split of the first run")
    parser.add_argument("--env-steps", type=int, help="compare at this evaluated env step (default: each run's last)")
    args = parser.parse_args()
    results = {str(run): evaluation(run, args.env_steps) for run in args.runs}
    splits = args.splits or sorted(next(iter(results.values()))[1])
    for run, (_, by_split) in results.items():
        missing = [split for split in splits if split not in by_split]
        if missing:
            fail(f"{run}: split {missing[0]!r} was not evaluated")
    header = ["run", "env steps"] + [f"{split} {' / '.join(args.metrics)}" for split in splits]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    table = {}
    for run, (steps, by_split) in results.items():
        cells, table[run] = [], {"env_steps": steps}
        for split in splits:
            values = [by_split[split][metric] for metric in args.metrics]
            table[run][split] = dict(zip(args.metrics, values))
            cells.append(" / ".join(f"{v:.3f}" for v in values))
        print(f"| {Path(run).name} | {steps:,} | " + " | ".join(cells) + " |")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
