"""Street View movement rules, oracle, graph loading and view rolling on small hand-made graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import shortest_path

from valan.envs.streetview.graph import UNREACHABLE, load_graph, read_graph
from valan.envs.streetview.navigation import (FORWARD, LEFT, NO_LINK, RIGHT, STOP, discrete_action_toward,
                                              discrete_move, facing_link, link_layout, oracle_link,
                                              panoramic_action_toward, panoramic_move)
from valan.envs.streetview.views import roll_views, rolled_features, view_shift
from valan.errors import InputError

from helpers.graphs import LINKS, NODES, write_graph

@pytest.fixture()
def graph(tmp_path):
    return read_graph(write_graph(tmp_path / "graph"))


def at(graph, panoid):
    return graph.index[panoid]


def move(graph, panoid, heading, action):
    node, heading = discrete_move(graph, at(graph, panoid), heading, action)
    return graph.panoids[node], heading


def test_graph_arrays_links_sorted_by_heading_and_undirected_neighbours(graph):
    headings, targets = graph.links(at(graph, "X"))
    assert headings.tolist() == [0, 90, 180, 270]
    assert [graph.panoids[t] for t in targets] == ["N", "E", "S", "W"]
    assert graph.out_degree(at(graph, "D")) == 1
    assert graph.adjacent(at(graph, "D"), at(graph, "N2")) and not graph.adjacent(at(graph, "D"), at(graph, "X"))
    assert graph.has_link(at(graph, "N"), at(graph, "N2")) and graph.yaw[at(graph, "E")] == 20


def test_hops_are_breadth_first_distances_on_the_undirected_graph(graph):
    d = graph.distances_to(at(graph, "D"))
    assert {p: int(d[at(graph, p)]) for p in NODES} == {"X": 3, "N": 2, "E": 4, "S": 4, "W": 4, "N2": 1, "D": 0,
                                                        "E2": 5}
    assert graph.distances_to(at(graph, "D")) is d  # cached per goal


def test_one_way_link_counts_both_ways_for_distances_and_an_isolated_panorama_is_unreachable(tmp_path):
    g = read_graph(write_graph(tmp_path / "g", {"A": 0, "B": 0, "C": 0}, [("A", 90, "B")]))
    assert g.hops(g.index["B"], g.index["A"]) == 1 and g.hops(g.index["A"], g.index["B"]) == 1
    assert g.hops(g.index["C"], g.index["A"]) == UNREACHABLE


def test_bfs_matches_scipy_shortest_paths_on_the_bundled_sample():
    g = load_graph()
    for goal in (0, 777, len(g) - 1):
        expected = shortest_path(g._adjacency, unweighted=True, directed=False, indices=goal)
        expected = np.where(np.isfinite(expected), expected, UNREACHABLE)
        np.testing.assert_array_equal(g.distances_to(goal), expected)


def test_graph_file_errors_name_file_and_line(tmp_path):
    d = write_graph(tmp_path / "bad", links=LINKS + [("X", 45, "nowhere")])
    with pytest.raises(InputError, match=r"links\.txt: line 15: unknown panorama 'nowhere'"):
        read_graph(d)
    (d / "links.txt").write_text("X,90\n")
    with pytest.raises(InputError, match=r"links\.txt: line 1: expected start_panoid,heading_degrees,end_panoid"):
        read_graph(d)
    (d / "nodes.txt").write_text("X,0,40.7,-74.0\nX,0,40.7,-74.0\n")
    with pytest.raises(InputError, match=r"nodes\.txt: line 2: duplicate panorama 'X'"):
        read_graph(d)
    with pytest.raises(InputError, match="graph directory not found"):
        read_graph(tmp_path / "missing")


def test_facing_link_is_the_nearest_heading_ties_go_to_the_first_listed(graph):
    x, n = at(graph, "X"), at(graph, "N")
    assert graph.link_heading[facing_link(graph, x, 10.0)] == 0
    assert graph.link_heading[facing_link(graph, x, 350.0)] == 0
    assert graph.link_heading[facing_link(graph, x, 80.0)] == 90
    # Ties: the link listed first in links.txt wins (Touchdown's navigator), whatever side it is on.
    assert graph.link_heading[facing_link(graph, x, 45.0)] == 0  # X,0 is listed before X,90
    assert graph.link_heading[facing_link(graph, x, 315.0)] == 0  # ... and before X,270
    assert graph.link_heading[facing_link(graph, n, 271.0)] == 180  # N,180 is listed before N,2 (both 91 away)
    assert graph.link_heading[facing_link(graph, n, 91.0)] == 180


def test_forward_takes_the_facing_link_and_its_heading(graph):
    assert move(graph, "X", 10.0, FORWARD) == ("N", 0.0)
    assert move(graph, "X", 100.0, FORWARD) == ("E", 90.0)
    # After the move the heading is the travelled link's (0), not N's onward link's (2); FORWARD continues.
    assert move(graph, "N", 0.0, FORWARD) == ("N2", 2.0)


def test_turns_go_to_the_next_link_around_from_the_facing_one(graph):
    assert move(graph, "X", 10.0, LEFT) == ("X", 270.0)
    assert move(graph, "X", 10.0, RIGHT) == ("X", 90.0)
    assert move(graph, "X", 270.0, RIGHT) == ("X", 0.0)
    # Start heading 100 (no link): the agent faces the 90 link, so RIGHT goes to 180, not to 90.
    assert move(graph, "X", 100.0, RIGHT) == ("X", 180.0)
    assert move(graph, "X", 100.0, LEFT) == ("X", 0.0)
    # Arriving at N with heading 0: facing the onward link (2); a right turn is a turn back toward X (180).
    assert move(graph, "N", 0.0, RIGHT) == ("N", 180.0)
    assert move(graph, "N", 0.0, LEFT) == ("N", 180.0)


def sectors(graph, panoid, heading):
    return np.flatnonzero(link_layout(graph, at(graph, panoid), heading)).tolist()


def test_link_layout_marks_the_sectors_around_the_heading_that_hold_links(graph):
    assert sectors(graph, "X", 0.0) == [0, 2, 4, 6]  # a plus junction: ahead, right, back, left
    assert sectors(graph, "X", 90.0) == [0, 2, 4, 6]  # the same after turning right
    assert sectors(graph, "X", 30.0) == [1, 3, 5, 7]  # 30 degrees off every arm: the diagonals
    assert sectors(graph, "X", 22.4) == [0, 2, 4, 6] and sectors(graph, "X", 22.6) == [1, 3, 5, 7]  # boundaries
    # E: back toward X (270) and the bend onward (100), seen heading east (90): ahead (10 degrees) and back.
    assert sectors(graph, "E", 90.0) == [0, 4]
    assert sectors(graph, "D", 359.0) == [4]  # a dead end: only back
    assert link_layout(graph, at(graph, "X"), 0.0).dtype == np.int8


def test_dead_end_forward_goes_back_and_turns_face_the_only_link(graph):
    assert move(graph, "N2", 2.0, FORWARD) == ("D", 359.0)
    assert move(graph, "D", 359.0, LEFT) == ("D", 179.0)
    assert move(graph, "D", 359.0, RIGHT) == ("D", 179.0)
    assert move(graph, "D", 359.0, FORWARD) == ("N2", 179.0)


def test_panorama_without_links_makes_every_move_a_no_op(tmp_path):
    g = read_graph(write_graph(tmp_path / "g", {"A": 0, "B": 0}, [("B", 0, "A")]))
    a = g.index["A"]
    for action in (FORWARD, LEFT, RIGHT):
        assert discrete_move(g, a, 33.0, action) == (a, 33.0)
    assert facing_link(g, a, 0.0) == NO_LINK


def test_panoramic_bins_move_within_the_window_else_turn_in_place(graph):
    x = at(graph, "X")
    # Heading 0: bin b points at -180 + 20 b; bin 9 is straight ahead, bin 14 at 100 degrees (E is 10 away).
    assert panoramic_move(graph, x, 0.0, 9) == (at(graph, "N"), 0.0)
    assert panoramic_move(graph, x, 0.0, 14) == (at(graph, "E"), 90.0)
    # Bin 11 points at 40 degrees: the nearest link (0) is 40 away, not within the 40-degree window: turn.
    assert panoramic_move(graph, x, 0.0, 11) == (x, 40.0)
    assert panoramic_move(graph, x, 0.0, 0) == (at(graph, "S"), 180.0)


def test_oracle_follows_the_route_then_stops(graph):
    route = [at(graph, p) for p in ("S", "X", "E", "E2")]
    hops = graph.distances_to(route[-1])
    x = at(graph, "X")
    link = oracle_link(graph, x, 0.0, route, 1, hops)
    assert graph.panoids[graph.link_target[link]] == "E"
    assert discrete_action_toward(graph, x, 0.0, link) == RIGHT  # 90 clockwise of the facing link
    assert discrete_action_toward(graph, x, 90.0, link) == FORWARD
    assert discrete_action_toward(graph, x, 180.0, link) == LEFT  # 270 clockwise = 90 counter-clockwise
    assert oracle_link(graph, route[-1], 100.0, route, 3, hops) == NO_LINK
    assert discrete_action_toward(graph, route[-1], 100.0, NO_LINK) == STOP
    assert panoramic_action_toward(graph, x, 10.0, link) == 13  # bin 13 points at 10 - 180 + 260 = 90
    assert panoramic_action_toward(graph, x, 0.0, link) == 13  # bins 13 (80) and 14 (100) tie: the lower wins
    assert panoramic_action_toward(graph, x, 0.0, NO_LINK) == 18


def test_oracle_turns_left_when_the_target_is_exactly_behind(graph):
    route = [at(graph, p) for p in ("X", "S")]
    link = oracle_link(graph, at(graph, "X"), 0.0, route, 0, graph.distances_to(route[-1]))
    assert discrete_action_toward(graph, at(graph, "X"), 0.0, link) == LEFT


def test_oracle_off_route_heads_toward_the_goal_by_hops(graph):
    route = [at(graph, p) for p in ("S", "X", "N", "N2")]
    hops = graph.distances_to(route[-1])
    w = at(graph, "W")  # off the route
    link = oracle_link(graph, w, 90.0, route, 1, hops)
    assert graph.panoids[graph.link_target[link]] == "X"
    e = at(graph, "E")  # off the route; E2 is farther from N2 than X
    link = oracle_link(graph, e, 90.0, route, 1, hops)
    assert graph.panoids[graph.link_target[link]] == "X"
    assert discrete_action_toward(graph, e, 90.0, link) == RIGHT  # facing 100 (E2); X lies at 270


def test_views_roll_puts_the_view_nearest_the_heading_at_the_centre():
    views = np.arange(8, dtype=np.float32)[:, None] * np.ones((8, 3), np.float32)  # view j holds value j
    # pano_yaw 30: view j is centred on 30 + 45 j. Heading 30 + 45 * 3 + 10 is nearest view 3.
    rolled = rolled_features(views, 30.0 + 135.0 + 10.0, 30.0)
    assert rolled[:, 0].tolist() == [7, 0, 1, 2, 3, 4, 5, 6]
    assert rolled[4, 0] == 3 and rolled[5, 0] == 4  # centre, then one step clockwise
    # Same shift from torch tensors (the agent's path), batched, and per pitch row.
    headings = np.array([0.0, 44.0, 200.0, 359.0])
    yaws = np.array([0.0, 0.0, 90.0, 10.0])
    table = np.random.default_rng(0).standard_normal((4, 16, 5)).astype(np.float32)
    expected = roll_views(table, view_shift(headings, yaws, 8), 8)
    got = roll_views(torch.from_numpy(table), view_shift(torch.from_numpy(headings), torch.from_numpy(yaws), 8), 8)
    np.testing.assert_array_equal(got.numpy(), expected)
    np.testing.assert_array_equal(expected[2, 8:], np.roll(table[2, 8:], int(view_shift(200.0, 90.0, 8)), axis=0))


def test_bundled_sample_files_are_small_and_consistent():
    from valan.data import sample_path

    folder = sample_path("streetview")
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total < 1_000_000
    g = load_graph()
    for name in ("touchdown_sample.jsonl", "map2seq_sample.jsonl"):
        for line in (folder / name).read_text().splitlines():
            assert all(p in g for p in json.loads(line)["route_panoids"])
