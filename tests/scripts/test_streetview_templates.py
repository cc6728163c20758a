"""scripts/streetview_templates.py on a toy street grid: each template instruction says what its route does (the
lights passed before every turn, the side of the turn), routes stay in their area, the human-agreement count
reads ordinals correctly, and bad input exits 2 without writing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from valan.envs.streetview.dataset import StreetViewRoute, load_routes
from valan.envs.streetview.graph import StreetGraph, load_graph
from valan.envs.streetview.navigation import signed_rotation

from helpers.scripts import load_script

BLOCK = 4  # panoramas from one intersection to the next
SIZE = 6 * BLOCK + 1  # lattice points per side: 7 x 7 intersections
ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3}


@pytest.fixture(scope="module")
def templates():
    return load_script("streetview_templates")


def grid_lines() -> tuple[list[str], list[str]]:
    """nodes.txt and links.txt lines of a Manhattan-like grid: streets every BLOCK lattice points, both ways."""
    on_street = [(x, y) for y in range(SIZE) for x in range(SIZE) if x % BLOCK == 0 or y % BLOCK == 0]
    names = {p: f"p{p[0]}_{p[1]}" for p in on_street}
    nodes = [f"{names[x, y]},0,{40.7 + y * 1e-4:.6f},{-74.0 + x * 1e-4:.6f}" for x, y in on_street]
    links = []
    for (x, y), name in names.items():
        for dx, dy, heading in ((0, 1, 0), (1, 0, 90), (0, -1, 180), (-1, 0, 270)):
            if (x + dx, y + dy) in names:
                links.append(f"{name},{heading},{names[x + dx, y + dy]}")
    return nodes, links


def write_grid(folder: Path) -> Path:
    nodes, links = grid_lines()
    folder.mkdir()
    (folder / "nodes.txt").write_text("\n".join(nodes) + "\n")
    (folder / "links.txt").write_text("\n".join(links) + "\n")
    # the unseen area: the western third of the grid (longitude < -74 + 8e-4), as (lng, lat) corners
    west, east, south, north = -74.0005, -73.99915, 40.6995, 40.7030
    (folder / "unseen_area_bbox.txt").write_text(
        f"bounding_box = [[{west}, {south}], [{east}, {south}], [{east}, {north}], [{west}, {north}]]\n")
    return folder


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, StreetGraph]:
    folder = write_grid(tmp_path_factory.mktemp("grid") / "graph")
    return folder, load_graph(folder)


def route_headings(graph: StreetGraph, nodes: list[int]) -> list[float]:
    out = []
    for a, b in zip(nodes, nodes[1:]):
        headings, targets = graph.links(a)
        assert b in targets.tolist(), "consecutive route panoramas are linked"
        out.append(float(headings[targets.tolist().index(b)]))
    return out


def said(text: str) -> list[tuple[int, int]]:
    """(lights to count, side: -1 left / +1 right) of each turn an instruction names."""
    turns, pending = [], None
    for sentence in re.split(r"(?<=\.) ", text):
        past = re.search(r"past (?:the )?(next|\d)", sentence)
        if past is not None:  # "Go past the next light." may stand before the turn's own sentence
            pending = 2 if past.group(1) == "next" else int(past.group(1)) + 1
        side = re.search(r"turn (left|right)", sentence, re.IGNORECASE)
        if side is None:
            continue
        count, pending = pending or 1, None
        ordinal = re.search(r"at the (\w+) (?:one|light|intersection)", sentence, re.IGNORECASE)
        if ordinal is not None and ordinal.group(1) in ORDINAL:
            assert ORDINAL[ordinal.group(1)] == count, text
        turns.append((count, -1 if side.group(1).lower() == "left" else 1))
    return turns


def done(graph: StreetGraph, cluster: np.ndarray, nodes: list[int]) -> list[tuple[int, int]]:
    """(lights entered since the last turn, side) of each turn the route makes."""
    headings = route_headings(graph, nodes)
    turns, entered, last = [], 0, cluster[nodes[0]]
    for i in range(1, len(nodes)):
        here = cluster[nodes[i]]
        if here != -1 and here != last:
            entered += 1
        last = here
        if i < len(headings):
            rotation = signed_rotation(headings[i - 1], headings[i])
            if abs(rotation) > 45:
                turns.append((entered, -1 if rotation < 0 else 1))
                entered = 0
    return turns


def test_every_instruction_names_the_turns_its_route_takes(templates, grid):
    _, graph = grid
    cluster = templates.light_clusters(graph)
    allowed = np.ones(len(graph), bool)
    records = templates.template_records(graph, allowed, 60, seed=3)
    for r in records:
        nodes = [graph.node(p) for p in r["route_panoids"]]
        assert len(set(nodes)) == len(nodes) and 15 <= len(nodes) <= 48
        assert said(r["navigation_text"]) == done(graph, cluster, nodes), r["navigation_text"]
        assert r["start_heading"] == route_headings(graph, nodes)[0]
    stops = [r["navigation_text"].rsplit(". ", 1)[-1] for r in records]
    assert any("next" in s for s in stops) and any("after" in s or "further" in s for s in stops)
    assert {len(said(r["navigation_text"])) for r in records} == {1, 2, 3}


def test_light_clusters_are_the_intersections(templates, grid):
    _, graph = grid
    cluster = templates.light_clusters(graph)
    for panoid, c in zip(graph.panoids, cluster):
        x, y = (int(v) for v in panoid[1:].split("_"))
        crossing = x % BLOCK == 0 and y % BLOCK == 0
        corner = x in (0, SIZE - 1) and y in (0, SIZE - 1)
        assert (c != -1) == (crossing and not corner), panoid
    assert len(set(cluster[cluster != -1].tolist())) == 7 * 7 - 4


@pytest.mark.parametrize("area", ["outside", "inside"])
def test_routes_stay_on_their_side_of_the_unseen_area(templates, grid, tmp_path, area):
    folder, graph = grid
    out = tmp_path / "routes.jsonl"
    assert templates.main(["routes", "--graph", str(folder), "--out", str(out), "--count", "20",
                           "--area", area]) == 0
    inside = templates.area_mask(graph, folder, "inside")
    routes = load_routes(out, graph=graph)  # checks that every route walks along links
    assert len(routes) == 20
    for r in routes:
        assert all(inside[graph.node(p)] == (area == "inside") for p in r.route), r.id


def test_agreement_compares_the_first_ordinal_light_with_the_clusters_entered(templates, grid):
    _, graph = grid
    # north along x=4 from y=1 through the lights at y=4 and y=8, then right (east) at y=8
    path = [f"p4_{y}" for y in range(1, 9)] + ["p5_8", "p6_8"]

    def route(text: str) -> StreetViewRoute:
        return StreetViewRoute(id=text, navigation_text=text, route=tuple(path), start_heading=0.0,
                               end_heading=None, format="map2seq")

    result = templates.ordinal_agreement(graph, [route("Turn right at the 2nd light."),
                                                 route("Go on and turn right at the third intersection."),
                                                 route("Turn left. At the 2nd light turn right.")])
    assert result["with_ordinal_light"] == 2  # the third names a turn in a sentence before
    assert result["exact"] == 0.5 and result["clusters_minus_ordinal"] == {"-1": 1, "0": 1}


def test_bad_input_exits_2_and_writes_nothing(templates, grid, tmp_path, capsys):
    folder, _ = grid
    out = tmp_path / "routes.jsonl"
    assert templates.main(["routes", "--graph", str(folder), "--out", str(out), "--count", "0"]) == 2
    assert templates.main(["routes", "--graph", str(tmp_path / "missing"), "--out", str(out)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "--count" in errors[0] and "missing" in errors[1]
    assert not out.exists()
