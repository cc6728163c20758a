"""R2R episodes: one per instruction, ``instr_id = f"{path_id}_{i}"``."""

from __future__ import annotations

import os
from typing import NamedTuple

from valan.envs.predictions import finite_number
from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError
from valan.io import read_json


class R2REpisode(NamedTuple):
    """One instruction-following episode (immutable; a named tuple rather than a dataclass, so that scoring from
    the shell does not import ``dataclasses`` and ``inspect``, ~9 ms of a ~0.15 s ``valan evaluate``).

    Attributes:
        instr_id: ``"{path_id}_{instruction index}"``.
        path_id: the path's id in the data file.
        scan: Matterport3D scan id.
        path: reference viewpoints from start to goal; only the start for splits without references (test).
        heading: start heading, radians clockwise from +y.
        instruction: the natural-language instruction.
        distance: the data file's path length in metres, when given.
    """

    instr_id: str
    path_id: int
    scan: str
    path: tuple[str, ...]
    heading: float
    instruction: str
    distance: float | None = None

    @property
    def start(self) -> str:
        return self.path[0]

    @property
    def goal(self) -> str:
        return self.path[-1]

    @property
    def has_reference(self) -> bool:
        """Whether the episode carries a reference path to score against (test splits give only the start)."""
        return len(self.path) > 1


REQUIRED_FIELDS = ("scan", "path_id", "path", "heading", "instructions")


def _is_path(value: object) -> bool:
    """Whether ``value`` is a non-empty list of viewpoint ids."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def record_problems(record: object, position: int) -> tuple[str, list[str]]:
    """Where a path record is (``path_id N`` or ``record N``) and every problem of its fields, one line each."""
    if not isinstance(record, dict):
        return f"record {position}", ["expected a JSON object"]
    where = f"path_id {record['path_id']}" if "path_id" in record else f"record {position}"
    problems = [f"missing field {key!r}" for key in REQUIRED_FIELDS if key not in record]
    heading = record.get("heading", 0.0)
    if not _is_path(record.get("path", ["?"])):
        problems.append("field 'path' must be a non-empty list of viewpoint ids")
    if not finite_number(heading):
        problems.append(f"field 'heading' must be a finite number, got {heading!r}")
    instructions = record.get("instructions", [])
    if not isinstance(instructions, list) or not all(isinstance(s, str) for s in instructions):
        problems.append("field 'instructions' must be a list of strings")
    return where, problems


def graph_problems(record: dict, connectivity: Connectivity) -> list[str]:
    """Problems of a record's path on the navigation graphs (:func:`path_problems`; none when the record has no
    scan or no well-formed path)."""
    scan, path = record.get("scan"), record.get("path")
    if "scan" not in record or not _is_path(path):
        return []
    return path_problems(scan, path, connectivity)


def path_problems(scan: object, path: list[str], connectivity: Connectivity) -> list[str]:
    """Problems of a path of viewpoint ids on a scan's graph, one line each: unknown scan, viewpoints missing from
    the scan, consecutive viewpoints that are not adjacent (not an edge of the scan's connectivity)."""
    if not isinstance(scan, str) or scan not in connectivity:
        return [f"unknown scan {scan!r} (no {scan}_connectivity.json in {connectivity.directory})"]
    graph = connectivity.graph(scan)
    problems = [f"unknown viewpoint {vp!r} (path position {k}) in scan {scan}"
                for k, vp in enumerate(path) if vp not in graph]
    problems += [f"path positions {i} and {i + 1} ({a} -> {b}) are not adjacent in scan {scan}"
                 for i, (a, b) in enumerate(zip(path, path[1:]))
                 if a in graph and b in graph and not graph.adjacent(a, b)]
    return problems


def check_r2r(records: object, connectivity: Connectivity) -> tuple[list[str], dict[str, int]]:
    """Every problem of an R2R-format record list, one line each starting with the record's place (``valan data
    check r2r``: fields, duplicate path ids, the paths on the graphs), and counts of paths, instructions, scans."""
    if not isinstance(records, list):
        return ["expected a JSON list of paths"], {}
    seen: set[object] = set()
    problems = []
    for n, record in enumerate(records):
        where, found = record_problems(record, n)
        if isinstance(record, dict) and "path_id" in record:
            if record["path_id"] in seen:
                found.append("duplicate path_id")
            seen.add(record["path_id"])
        if isinstance(record, dict):
            found += graph_problems(record, connectivity)
        problems += [f"{where}: {problem}" for problem in found]
    dicts = [r for r in records if isinstance(r, dict)]
    counts = {"paths": len(records),
              "instructions": sum(len(r["instructions"]) for r in dicts if isinstance(r.get("instructions"), list)),
              "scans": len({r["scan"] for r in dicts if isinstance(r.get("scan"), str)})}
    return problems, counts


def parse_r2r(records: object, source: str = "", connectivity: Connectivity | None = None) -> list[R2REpisode]:
    """Turn the records of an R2R-format JSON list into episodes; ``InputError`` at the first bad field and, when
    ``connectivity`` is given, at the first path that is not a walk on its scan's graph (:func:`graph_problems`)."""
    if not isinstance(records, list):
        raise InputError("expected a JSON list of paths", source=source)
    episodes = []
    for n, item in enumerate(records):
        where, problems = record_problems(item, n)
        if not problems and connectivity is not None:
            problems = graph_problems(item, connectivity)
        if problems:
            raise InputError(problems[0], source=source, record=where)
        for i, instruction in enumerate(item["instructions"]):
            episodes.append(R2REpisode(
                instr_id=f"{item['path_id']}_{i}", path_id=item["path_id"], scan=str(item["scan"]),
                path=tuple(item["path"]), heading=float(item["heading"]), instruction=instruction,
                distance=float(item["distance"]) if isinstance(item.get("distance"), (int, float)) else None))
    return episodes


def load_r2r(path: str | os.PathLike, connectivity: Connectivity | None = None) -> list[R2REpisode]:
    """Load an R2R-format file into episodes, checking every path on ``connectivity`` when it is given."""
    return parse_r2r(read_json(path), source=str(path), connectivity=connectivity)
