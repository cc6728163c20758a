"""The by-region unseen split (``valan.envs.streetview.split``) and ``valan data split streetview``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from valan.cli import main
from valan.envs.streetview.dataset import load_routes
from valan.envs.streetview.graph import StreetGraph, load_graph
from valan.envs.streetview.split import inside_polygon, read_unseen_area, routes_touching, split_by_area

# An L-shaped (concave) area: the unit square [0, 2] x [0, 2] without its top-right quarter; (x, y) = (lng, lat).
L_AREA = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], float)


def test_inside_polygon_follows_the_even_odd_rule_on_a_concave_area():
    points = np.array([[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [1.5, 1.5], [3, 0.5], [-1, 1], [1, -0.5]])
    assert inside_polygon(points, L_AREA).tolist() == [True, True, True, False, False, False, False]
    closed = np.vstack([L_AREA, L_AREA[:1]])  # a ring that repeats its first point means the same area
    assert inside_polygon(points, closed).tolist() == inside_polygon(points, L_AREA).tolist()


def toy_graph() -> StreetGraph:
    """Panoramas a..e in a row along latitude 0.5, longitudes 0.5 (inside L_AREA) to 4.5 (outside)."""
    panoids = list("abcde")
    latlng = np.array([[0.5, 0.5 + k] for k in range(5)])  # (lat, lng)
    source, target = np.arange(4), np.arange(1, 5)
    return StreetGraph(panoids, np.zeros(5), latlng, source, np.full(4, 90.0), target)


def routes(*panoramas: str):
    from valan.envs.streetview.dataset import parse_routes

    return parse_routes([{"id": n, "navigation_text": "go", "route_panoids": list(p), "start_heading": 90}
                         for n, p in enumerate(panoramas)])


def test_a_route_touching_the_area_anywhere_is_unseen():
    graph = toy_graph()
    touching = routes_touching(routes("ab", "bc", "cd", "de", "dcb"), graph, L_AREA)
    assert touching.tolist() == [True, True, False, False, True]  # b (lng 1.5, lat 0.5) is inside the L


def test_seen_hold_out_is_seeded_and_only_from_outside():
    graph = toy_graph()
    many = routes(*(["cd", "de", "ab"] * 10))
    split = split_by_area(many, graph, L_AREA, seen_fraction=0.3, seed=2)
    assert split.unseen == list(range(2, 30, 3))
    assert len(split.seen) == 6 and not set(split.seen) & set(split.unseen)
    assert sorted(split.train + split.seen + split.unseen) == list(range(30))
    assert split == split_by_area(many, graph, L_AREA, seen_fraction=0.3, seed=2)
    assert split.seen != split_by_area(many, graph, L_AREA, seen_fraction=0.3, seed=5).seen


def test_shared_routes_outside_and_inside_the_unseen_area(shared_streetview):
    graph = load_graph(shared_streetview / "graph")
    area = read_unseen_area(shared_streetview / "graph" / "unseen_area_bbox.txt")
    map2seq = [r for name in ("map2seq_seen_dev.jsonl", "map2seq_seen_test.jsonl")
               for r in load_routes(shared_streetview / name)]
    touchdown = load_routes(shared_streetview / "touchdown_unseen_dev_sample.jsonl")
    assert routes_touching(map2seq, graph, area).sum() == 428 and len(map2seq) == 1600
    assert routes_touching(touchdown, graph, area).all()


def write_world(tmp_path):
    graph = tmp_path / "graph"
    graph.mkdir()
    (graph / "nodes.txt").write_text("".join(f"{p},0,0.5,{0.5 + k}\n" for k, p in enumerate("abcde")))
    (graph / "links.txt").write_text("".join(f"{a},90,{b}\n" for a, b in zip("abcd", "bcde")))
    (graph / "unseen_area_bbox.txt").write_text(f"bounding_box = {json.dumps(L_AREA.tolist())}\n\ninstances 5\n")
    data = tmp_path / "routes.jsonl"
    data.write_text("".join(json.dumps({"id": n, "navigation_text": "go", "route_panoids": list(p),
                                        "start_heading": 90}) + "\n"
                            for n, p in enumerate(["ab", "cd", "de", "bc", "cde", "dc"])))
    return graph, data


def test_cli_writes_the_parts_unchanged_and_a_manifest(tmp_path, capsys):
    graph, data = write_world(tmp_path)
    out = tmp_path / "split"
    assert main(["data", "split", "streetview", "--data", str(data), "--graph", str(graph), "--out", str(out),
                 "--seen-fraction", "0.25"]) == 0
    read = lambda name: [json.loads(line) for line in (out / name).read_text().splitlines()]  # noqa: E731
    assert [r["id"] for r in read("dev_unseen.jsonl")] == [0, 3]
    assert sorted(r["id"] for r in read("train.jsonl") + read("dev_seen.jsonl")) == [1, 2, 4, 5]
    assert len(read("dev_seen.jsonl")) == 1
    assert read("dev_unseen.jsonl")[0] == json.loads(data.read_text().splitlines()[0])
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: v["routes"] for k, v in manifest["parts"].items()} == {"train": 3, "dev_seen": 1, "dev_unseen": 2}
    assert "dev_unseen.jsonl: 2 routes" in capsys.readouterr().out


@pytest.mark.parametrize("polygon, message", [("bounding_box = [[0, 0], [1, 1]]", "at least 3 points"),
                                              ("box = [[0, 0], [1, 0], [1, 1]]", "expected 'bounding_box = ")])
def test_bad_area_file_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, polygon, message):
    graph, data = write_world(tmp_path)
    (graph / "unseen_area_bbox.txt").write_text(polygon + "\n")
    out = tmp_path / "split"
    assert main(["data", "split", "streetview", "--data", str(data), "--graph", str(graph), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "unseen_area_bbox.txt" in err[0]
    assert not out.exists()
