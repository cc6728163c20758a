"""Memory and speed of reading R2R-sized features: ``valan features convert`` versus loading the TSV into a dict.

Generates a TSV in the community format (``--rows`` panoramas x 36 views x ``--dim`` float32, random values), then
runs each variant in a fresh child process and reports its peak resident memory above the process's baseline
(Linux ``VmHWM``), its peak Python allocations (tracemalloc) and its time. Variants:

- ``convert``: stream the TSV into a memory-mapped store (the array is on disk; pages are flushed as written);
- ``load_dict``: ``TsvFeatures.load()``, the whole file in an in-memory dict (what community loaders do);
- ``cached_table``: open the converted store and gather the full ``(N, 36, D)`` table (what a learner does).

Usage: ``python scripts/bench_features.py --rows 1000 --dim 2048``. The last line printed is one JSON object.
The real ResNet-152-imagenet.tsv has 10,567 rows of 36 x 2048: its array is 3.1 GB.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time, tracemalloc
from valan.features.stores import CachedFeatures, TsvFeatures, convert_tsv

def hwm_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

variant, tsv, store = sys.argv[1:4]
baseline = hwm_bytes()
tracemalloc.start()
start = time.perf_counter()
if variant == "convert":
    convert_tsv(tsv, store, progress=False)
elif variant == "load_dict":
    data = TsvFeatures(tsv).load()
elif variant == "cached_table":
    features = CachedFeatures(store)
    table = features.table(features.keys())
seconds = time.perf_counter() - start
python_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"rss_peak_above_baseline_bytes": hwm_bytes() - baseline, "python_peak_bytes": python_peak,
                  "seconds": round(seconds, 3)}))
"""


def write_tsv(path: Path, rows: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w") as f:
        for i in range(rows):
            features = rng.standard_normal((36, dim), dtype=np.float32)
            f.write(f"scan{i % 50:02d}\tviewpoint{i:06d}\t640\t480\t60\t{base64.b64encode(features.tobytes()).decode()}\n")


def run_child(variant: str, tsv: Path, store: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, variant, str(tsv), str(store)], check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="panoramas in the generated TSV")
    parser.add_argument("--dim", type=int, default=2048, help="feature size per view (ResNet-152: 2048)")
    parser.add_argument("--workdir", default=None, help="where to write the TSV and store (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tsv, store = Path(tmp) / "features.tsv", Path(tmp) / "store"
        start = time.perf_counter()
        write_tsv(tsv, args.rows, args.dim)
        generate_seconds = time.perf_counter() - start
        array_bytes = args.rows * 36 * args.dim * 4
        results = {variant: run_child(variant, tsv, store) for variant in ("convert", "load_dict", "cached_table")}
        for result in results.values():
            result["rss_peak_over_array"] = round(result["rss_peak_above_baseline_bytes"] / array_bytes, 3)
            result["python_peak_over_array"] = round(result["python_peak_bytes"] / array_bytes, 4)
        summary = {"rows": args.rows, "views": 36, "dim": args.dim, "array_bytes": array_bytes,
                   "tsv_bytes": tsv.stat().st_size, "generate_seconds": round(generate_seconds, 2), **results,
                   "convert_rss_vs_load_dict": round(results["convert"]["rss_peak_above_baseline_bytes"]
                                                     / max(1, results["load_dict"]["rss_peak_above_baseline_bytes"]), 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
