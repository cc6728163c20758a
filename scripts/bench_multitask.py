"""Does adding NDH episodes hurt R2R? Single-task R2R vs multitask R2R + NDH training, side by side, one JSON object.

On the bundled sample: ``valan data split r2r`` holds out scans of the R2R sample train split as ``val_unseen``
(the rest trains; ``val_seen`` = the sample's val_seen on the remaining scans), the NDH format sample is rebuilt from
the same split (``scripts/make_ndh_sample.py``: no NDH instance on a held-out scan), then per seed:

- ``r2r``: ``valan train`` on R2R alone for ``--env-steps`` env steps;
- ``multitask_same_total``: R2R + NDH (shares 0.5 / 0.5) for the same total env steps (R2R gets about half);
- ``multitask_same_r2r``: R2R + NDH for twice the env steps (R2R gets about as many as alone).

Each run is evaluated greedily at the end on R2R val_seen and val_unseen (and NDH val). Synthetic features (no
visual information): what is learned comes from language and path geometry. The NDH sample is not real dialog.

    python scripts/bench_multitask.py --out /tmp/bench_multitask [--env-steps 60000] [--seeds 0 1] [--holdout-scans 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
METRICS = ("success_rate", "spl", "ndtw", "nav_error")


def valan(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "valan.cli", *args], check=True, stdout=subprocess.DEVNULL)


def final_metrics(run: Path) -> dict[str, dict[str, float]]:
    lines = [json.loads(line) for line in (run / "eval" / "metrics.jsonl").read_text().splitlines()]
    last = max(line["step"] for line in lines)
    return {line["split"]: line for line in lines if line["step"] == last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--env-steps", type=int, default=60000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--holdout-scans", type=int, default=1)
    args = parser.parse_args()
    split = (args.out / "split").resolve()
    valan("data", "split", "r2r", "--data", str(DATA / "R2R_sample_train.json"), "--out", str(split),
          "--holdout-scans", str(args.holdout_scans), "--seen-eval", str(DATA / "R2R_sample_val_seen.json"))
    subprocess.run([sys.executable, str(Path(__file__).with_name("make_ndh_sample.py")), "--train",
                    str(split / "train.json"), "--val", str(split / "val_seen.json"), "--connectivity",
                    str(DATA / "connectivity"), "--out", str(split / "ndh")], check=True, stdout=subprocess.DEVNULL)
    r2r_eval = {"val_seen": split / "val_seen.json", "val_unseen": split / "dev_unseen.json"}
    results: dict[str, dict] = {}
    for seed in args.seeds:
        common = ["--no-progress", "--set", f"run.seed={seed}", "--set", "run.eval_every_env_steps=0"]
        variants = {
            "r2r": ["--set", f"data.train=[{split / 'train.json'}]",
                    "--set", "data.eval={" + ", ".join(f"{k}: {v}" for k, v in r2r_eval.items()) + "}",
                    "--set", f"run.total_env_steps={args.env_steps}"],
        }
        multitask = ["--config", str(DATA.parent / "configs" / "r2r_ndh.yaml"),
                     "--set", f"tasks.r2r.train=[{split / 'train.json'}]",
                     "--set", f"tasks.ndh.train=[{split / 'ndh' / 'NDH_sample_train.json'}]",
                     "--set", "data.eval={" + ", ".join(f"r2r/{k}: {v}" for k, v in r2r_eval.items())
                     + f", ndh/val: {split / 'ndh' / 'NDH_sample_val.json'}" + "}"]
        variants["multitask_same_total"] = multitask + ["--set", f"run.total_env_steps={args.env_steps}"]
        variants["multitask_same_r2r"] = multitask + ["--set", f"run.total_env_steps={2 * args.env_steps}"]
        for name, options in variants.items():
            run = args.out / f"{name}-seed{seed}"
            started = time.monotonic()
            valan("train", "--out", str(run), *common, *options)
            metrics = final_metrics(run)
            row = {f"{split_name.removeprefix('r2r/')}/{m}": round(values[m], 4)
                   for split_name, values in metrics.items() for m in METRICS if m in values}
            if "ndh/val" in metrics:
                row["ndh_val/goal_progress"] = round(metrics["ndh/val"]["goal_progress"], 4)
            row["minutes"] = round((time.monotonic() - started) / 60, 2)
            results.setdefault(name, {})[f"seed{seed}"] = row
            print(json.dumps({name: {f"seed{seed}": row}}), file=sys.stderr)

    def mean(name: str, key: str) -> float:
        values = [row[key] for row in results[name].values()]
        return sum(values) / len(values)

    summary = {name: {key: round(mean(name, key), 4) for key in next(iter(rows.values())) if key != "minutes"}
               for name, rows in results.items()}
    ratios = {f"{name}/r2r": {key: round(mean(name, key) / mean("r2r", key), 3) for key in summary["r2r"]
                              if mean("r2r", key)} for name in results if name != "r2r"}
    print(json.dumps({"env_steps": args.env_steps, "seeds": args.seeds, "runs": results, "mean": summary,
                      "ratios": ratios, "features": "synthetic (no visual information)"}))


if __name__ == "__main__":
    main()
