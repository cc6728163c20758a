"""Touchdown and map2seq routes (JSON lines, one route per line).

Two record formats on the same graph:

- Touchdown (Chen et al. 2019): ``route_id, navigation_text, route_panoids, start_heading, end_heading`` plus the
  spatial-description-resolution fields (``td_location_text, main_pano, main_static_center, ...``), kept
  unchanged in ``StreetViewRoute.fields``.
- map2seq (Schumann & Riezler 2021): ``id, navigation_text, route_panoids, start_heading`` (plus
  ``instructions_id``).

A record with ``route_id`` is read as Touchdown, otherwise ``id`` is required. Ids are compared as strings
(``6652`` and ``"6652"`` name the same route). Headings are degrees clockwise from north.
Instructions are tokenized like R2R (``valan.text``); the vocabulary is built from the training file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from valan.envs.predictions import finite_number
from valan.envs.streetview.graph import StreetGraph
from valan.errors import InputError
from valan.io import read_jsonl
from valan.text import Vocabulary

SAMPLE_TOUCHDOWN = "streetview/touchdown_sample.jsonl"  # bundled samples (``valan.data.sample_path``)
SAMPLE_MAP2SEQ = "streetview/map2seq_sample.jsonl"
MAIN_FIELDS = ("route_id", "id", "navigation_text", "route_panoids", "start_heading", "end_heading")


@dataclass(frozen=True)
class StreetViewRoute:
    """One navigation episode.

    Attributes:
        id: ``route_id`` (Touchdown) or ``id`` (map2seq), as a string.
        navigation_text: the instruction.
        route: panorama ids from start to goal.
        start_heading: the agent's heading at the start, degrees clockwise from north.
        end_heading: Touchdown's heading at the goal (degrees), ``None`` for map2seq.
        format: ``"touchdown"`` or ``"map2seq"``.
        fields: every other field of the record, unchanged (SDR fields, ``instructions_id``, ...).
    """

    id: str
    navigation_text: str
    route: tuple[str, ...]
    start_heading: float
    end_heading: float | None
    format: str
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def start(self) -> str:
        return self.route[0]

    @property
    def goal(self) -> str:
        return self.route[-1]


def parse_routes(records: Iterable[object], source: str = "", graph: StreetGraph | None = None
                 ) -> list[StreetViewRoute]:
    """Check and convert route records; ``InputError`` naming ``source`` and the route id (or line) on bad input,
    and, when ``graph`` is given, at the first route that does not walk along its links (:func:`route_problems`)."""
    routes: list[StreetViewRoute] = []
    seen: set[str] = set()
    for n, item in enumerate(records, 1):
        if not isinstance(item, dict):
            raise InputError("expected a JSON object", source=source, record=f"record {n}")
        key = "route_id" if "route_id" in item else "id"
        if key not in item:
            raise InputError("missing field 'route_id' (Touchdown) or 'id' (map2seq)", source=source,
                             record=f"record {n}")
        raw_id = item[key]
        if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)):
            raise InputError(f"field {key!r} must be an integer or a string, got {raw_id!r}", source=source,
                             record=f"record {n}")
        route_id = str(raw_id)
        where = f"{key} {route_id}"
        if route_id in seen:
            raise InputError("duplicate route id", source=source, record=where)
        seen.add(route_id)
        for name in ("navigation_text", "route_panoids", "start_heading"):
            if name not in item:
                raise InputError(f"missing field {name!r}", source=source, record=where)
        text, panoids, start_heading = item["navigation_text"], item["route_panoids"], item["start_heading"]
        if not isinstance(text, str):
            raise InputError("field 'navigation_text' must be a string", source=source, record=where)
        if not isinstance(panoids, list) or not panoids or not all(isinstance(p, str) and p for p in panoids):
            raise InputError("field 'route_panoids' must be a non-empty list of panorama ids", source=source,
                             record=where)
        if not finite_number(start_heading):
            raise InputError(f"field 'start_heading' must be a finite number, got {start_heading!r}", source=source,
                             record=where)
        end_heading = item.get("end_heading")
        if end_heading is not None and not finite_number(end_heading):
            raise InputError(f"field 'end_heading' must be a finite number, got {end_heading!r}", source=source,
                             record=where)
        route = StreetViewRoute(
            id=route_id, navigation_text=text, route=tuple(panoids), start_heading=float(start_heading) % 360.0,
            end_heading=None if end_heading is None else float(end_heading) % 360.0,
            format="touchdown" if key == "route_id" else "map2seq",
            fields={k: v for k, v in item.items() if k not in MAIN_FIELDS})
        problems = [] if graph is None else route_problems(graph, route)
        if problems:
            raise InputError(problems[0], source=source, record=where)
        routes.append(route)
    return routes


def load_routes(path: str | os.PathLike, graph: StreetGraph | None = None) -> list[StreetViewRoute]:
    """Routes of a JSON-lines file (Touchdown or map2seq records), checked on ``graph`` when it is given."""
    routes = parse_routes(read_jsonl(path), source=str(path), graph=graph)
    if not routes:
        raise InputError("no routes", source=str(path))
    return routes


def build_vocabulary(routes: Sequence[StreetViewRoute], min_count: int = 5) -> Vocabulary:
    """Vocabulary of the routes' instructions (R2R tokenization), tokens seen at least ``min_count`` times."""
    return Vocabulary.build((r.navigation_text for r in routes), min_count=min_count)


def route_problems(graph: StreetGraph, route: StreetViewRoute, listed: int = 5) -> list[str]:
    """Problems of one route: its panoramas missing from the graph (one line, the first ``listed`` named) and
    each consecutive pair without a link from the first to the second."""
    problems = []
    unknown = [f"{k} {p!r}" for k, p in enumerate(route.route) if p not in graph]
    if unknown:
        more = f", ... ({len(unknown) - listed} more)" if len(unknown) > listed else ""
        problems.append(f"{len(unknown)} of {len(route.route)} panoramas are not in the graph: "
                        f"{', '.join(unknown[:listed])}{more}")
    for k in range(1, len(route.route)):
        a, b = route.route[k - 1], route.route[k]
        if a not in graph or b not in graph:
            continue
        i, j = graph.index[a], graph.index[b]
        if not graph.has_link(i, j):
            reverse = " (only a link back from it)" if graph.has_link(j, i) else ""
            problems.append(f"panoramas {k - 1} -> {k}: no link from {a!r} to {b!r}{reverse}")
    return problems
