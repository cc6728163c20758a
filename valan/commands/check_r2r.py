"""``valan data check r2r``: validate an R2R-format dataset against the Matterport3D navigation graphs."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from valan.envs.r2r.graph import Connectivity
from valan.io import read_json

HELP = ("check an R2R dataset: scans exist, every path viewpoint is in its scan's graph, consecutive path "
        "viewpoints are adjacent, start headings are finite numbers; lists every problem by path_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="R2R-format JSON file (list of paths)")
    parser.add_argument("--connectivity", required=True, help="folder of {scan}_connectivity.json files")


def _record_problems(record: Any, position: int, connectivity: Connectivity, seen: set[Any]) -> list[str]:
    """Problems of one path record, each a line starting with the record's path_id."""
    if not isinstance(record, dict):
        return [f"record {position}: expected a JSON object"]
    where = f"path_id {record['path_id']}" if "path_id" in record else f"record {position}"
    problems = [f"{where}: missing field {key!r}"
                for key in ("path_id", "scan", "path", "heading", "instructions") if key not in record]
    if "path_id" in record:
        if record["path_id"] in seen:
            problems.append(f"{where}: duplicate path_id")
        seen.add(record["path_id"])
    heading = record.get("heading", 0.0)
    if isinstance(heading, bool) or not isinstance(heading, (int, float)) or not math.isfinite(heading):
        problems.append(f"{where}: heading must be a finite number, got {heading!r}")
    instructions = record.get("instructions", [])
    if not isinstance(instructions, list) or not all(isinstance(s, str) for s in instructions):
        problems.append(f"{where}: instructions must be a list of strings")
    path, scan = record.get("path"), record.get("scan")
    if "path" in record and (not isinstance(path, list) or not path or not all(isinstance(v, str) for v in path)):
        problems.append(f"{where}: path must be a non-empty list of viewpoint ids")
        path = None
    if scan is None or path is None:
        return problems
    if not isinstance(scan, str) or scan not in connectivity:
        return problems + [f"{where}: unknown scan {scan!r} (no connectivity file)"]
    graph = connectivity.graph(scan)
    missing = [vp for vp in path if vp not in graph]
    problems += [f"{where}: viewpoint {vp} (path position {path.index(vp)}) is not in scan {scan}" for vp in missing]
    problems += [f"{where}: path positions {i} and {i + 1} ({a} -> {b}) are not adjacent in scan {scan}"
                 for i, (a, b) in enumerate(zip(path, path[1:])) if a in graph and b in graph
                 and not graph.adjacent(a, b)]
    return problems


def check_r2r(records: Any, connectivity: Connectivity) -> tuple[list[str], dict[str, int]]:
    """Every problem of an R2R-format record list (one line each) and counts of paths, instructions, scans."""
    if not isinstance(records, list):
        return ["expected a JSON list of paths"], {}
    seen: set[Any] = set()
    problems = [p for n, record in enumerate(records) for p in _record_problems(record, n, connectivity, seen)]
    dicts = [r for r in records if isinstance(r, dict)]
    counts = {"paths": len(records),
              "instructions": sum(len(r["instructions"]) for r in dicts if isinstance(r.get("instructions"), list)),
              "scans": len({r["scan"] for r in dicts if isinstance(r.get("scan"), str)})}
    return problems, counts


def run(args: argparse.Namespace) -> int:
    connectivity = Connectivity(args.connectivity)
    problems, counts = check_r2r(read_json(args.data), connectivity)
    for line in problems:
        print(f"{args.data}: {line}")
    if problems:
        print(f"valan: error: {len(problems)} problem(s) in {args.data}", file=sys.stderr)
        return 2
    print(f"OK: {args.data}: {counts['paths']} paths, {counts['instructions']} instructions, "
          f"{counts['scans']} scans")
    return 0
