"""R2R episodes: one per instruction, ``instr_id = f"{path_id}_{i}"``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from valan.errors import InputError
from valan.io import read_json


@dataclass(frozen=True)
class R2REpisode:
    """One instruction-following episode.

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


def parse_r2r(records: object, source: str = "") -> list[R2REpisode]:
    """Turn the records of an R2R-format JSON list into episodes, checking each field's type."""
    if not isinstance(records, list):
        raise InputError("expected a JSON list of paths", source=source)
    episodes = []
    for n, item in enumerate(records):
        where = f"path_id {item.get('path_id')}" if isinstance(item, dict) and "path_id" in item else f"record {n}"
        if not isinstance(item, dict):
            raise InputError("expected a JSON object", source=source, record=f"record {n}")
        for key in ("scan", "path_id", "path", "heading", "instructions"):
            if key not in item:
                raise InputError(f"missing field {key!r}", source=source, record=where)
        path, heading, instructions = item["path"], item["heading"], item["instructions"]
        if not isinstance(path, list) or not path or not all(isinstance(v, str) for v in path):
            raise InputError("field 'path' must be a non-empty list of viewpoint ids", source=source, record=where)
        if isinstance(heading, bool) or not isinstance(heading, (int, float)) or not math.isfinite(heading):
            raise InputError(f"field 'heading' must be a finite number, got {heading!r}", source=source, record=where)
        if not isinstance(instructions, list) or not all(isinstance(s, str) for s in instructions):
            raise InputError("field 'instructions' must be a list of strings", source=source, record=where)
        for i, instruction in enumerate(instructions):
            episodes.append(R2REpisode(
                instr_id=f"{item['path_id']}_{i}", path_id=item["path_id"], scan=str(item["scan"]), path=tuple(path),
                heading=float(heading), instruction=instruction,
                distance=float(item["distance"]) if isinstance(item.get("distance"), (int, float)) else None))
    return episodes


def load_r2r(path: str | os.PathLike) -> list[R2REpisode]:
    """Load an R2R-format file into episodes."""
    return parse_r2r(read_json(path), source=str(path))
