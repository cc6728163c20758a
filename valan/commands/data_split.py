"""``valan data split r2r | streetview``: carve an unseen-environment validation split out of training data.

R2R splits by scan (:mod:`valan.envs.r2r.split`), Street View by region (:mod:`valan.envs.streetview.split`).
Each writes its parts in the input's own format and a ``manifest.json`` (what went where, counts, seed) into
``--out``; every file is written atomically, and only after all input has been read and checked.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _counts_r2r(name: str, records: list[dict]) -> dict:
    from valan.envs.r2r.split import instruction_count

    return {"file": name, "paths": len(records), "instructions": instruction_count(records),
            "scans": len({r["scan"] for r in records})}


class R2R:
    HELP = ("split an R2R training file by scan into train.json and dev_unseen.json (held-out scans), plus "
            "manifest.json; --seen-eval also writes a seen split without the held-out scans")

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        from valan.envs.r2r.split import DEFAULT_FRACTION

        parser.add_argument("--data", required=True, help="R2R-format training file (e.g. R2R_train.json)")
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument("--holdout-scans", type=int, default=None,
                            help=f"scans to hold out (default: enough for {DEFAULT_FRACTION:.0%}% of the instructions)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the scan order")
        parser.add_argument("--seen-eval", default=None,
                            help="an R2R file (e.g. R2R_val_seen.json) to write as val_seen.json without the "
                                 "held-out scans")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from valan.envs.r2r.dataset import parse_r2r
        from valan.envs.r2r.split import split_by_scan
        from valan.errors import InputError
        from valan.io import read_json, write_json

        records = read_json(args.data)
        parse_r2r(records, source=args.data)  # one line naming the record at the first bad field
        seen = None
        if args.seen_eval:
            seen = read_json(args.seen_eval)
            parse_r2r(seen, source=args.seen_eval)
        try:
            split = split_by_scan(records, holdout_scans=args.holdout_scans, seed=args.seed)
        except ValueError as e:
            raise InputError(str(e), source=args.data) from None
        parts = {"train": split.train, "dev_unseen": split.held_out}
        if seen is not None:
            parts["val_seen"] = split.restrict_to_train_scans(seen)
        out = Path(args.out)
        manifest = {"source": str(args.data), "seed": args.seed, "held_out_scans": list(split.held_out_scans),
                    "parts": {name: _counts_r2r(f"{name}.json", recs) for name, recs in parts.items()}}
        if seen is not None:
            manifest["seen_source"] = str(args.seen_eval)
        for name, recs in parts.items():
            write_json(out / f"{name}.json", recs, indent=None)
        write_json(out / "manifest.json", manifest)
        for name, counts in manifest["parts"].items():
            print(f"{out / counts['file']}: {counts['paths']} paths, {counts['instructions']} instructions, "
                  f"{counts['scans']} scans")
        print(f"held out: {', '.join(split.held_out_scans)}")
        return 0


class StreetView:
    HELP = ("split Street View routes by region: routes touching the graph's unseen_area_bbox.txt polygon go to "
            "dev_unseen.jsonl, the others to train.jsonl (a --seen-fraction of them to dev_seen.jsonl), plus "
            "manifest.json")

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        from valan.envs.streetview.split import UNSEEN_AREA_FILE

        parser.add_argument("--data", required=True, nargs="+", help="Touchdown / map2seq JSON-lines files")
        parser.add_argument("--graph", required=True, help=f"graph folder (nodes.txt, {UNSEEN_AREA_FILE})")
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument("--area", default=None, help=f"polygon file (default: GRAPH/{UNSEEN_AREA_FILE})")
        parser.add_argument("--seen-fraction", type=float, default=0.05,
                            help="share of the routes outside the area held out as dev_seen")
        parser.add_argument("--seed", type=int, default=0, help="seed of the seen hold-out")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from valan.envs.streetview.dataset import parse_routes
        from valan.envs.streetview.graph import load_graph
        from valan.envs.streetview.split import UNSEEN_AREA_FILE, read_unseen_area, split_by_area
        from valan.errors import InputError
        from valan.io import atomic_write, read_jsonl, write_json

        if not 0.0 <= args.seen_fraction < 1.0:
            raise InputError(f"--seen-fraction must be in [0, 1), got {args.seen_fraction}")
        records, routes = [], []
        for name in args.data:
            file_records = read_jsonl(name)
            routes += parse_routes(file_records, source=name)
            records += file_records
        graph = load_graph(args.graph)
        polygon = read_unseen_area(args.area or Path(args.graph) / UNSEEN_AREA_FILE)
        split = split_by_area(routes, graph, polygon, seen_fraction=args.seen_fraction, seed=args.seed)
        parts = {"train": split.train, "dev_seen": split.seen, "dev_unseen": split.unseen}
        out = Path(args.out)
        manifest = {"sources": [str(n) for n in args.data], "area": str(args.area or Path(args.graph) / UNSEEN_AREA_FILE),
                    "seed": args.seed, "seen_fraction": args.seen_fraction,
                    "parts": {name: {"file": f"{name}.jsonl", "routes": len(rows)} for name, rows in parts.items()}}
        for name, rows in parts.items():
            with atomic_write(out / f"{name}.jsonl") as f:
                f.writelines(json.dumps(records[i]) + "\n" for i in rows)
        write_json(out / "manifest.json", manifest)
        for name, counts in manifest["parts"].items():
            print(f"{out / counts['file']}: {counts['routes']} routes")
        return 0
