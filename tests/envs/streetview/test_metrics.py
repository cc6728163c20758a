"""Touchdown metrics on hand-computed fixtures, and the ``valan evaluate streetview`` / ``data check`` commands."""

from __future__ import annotations

import json

import pytest

from valan.cli import main
from valan.envs.streetview.dataset import parse_routes
from valan.envs.streetview.graph import read_graph
from valan.errors import InputError
from valan.envs.streetview.metrics import (edit_similarity, evaluate_streetview, levenshtein, remove_repeats,
                                      score_episode)

from helpers.graphs import write_graph

# The hand-made graph of test_streetview_navigation: S - X - N - N2 - D in a line north, X - E - E2 east, X - W.
ROUTE = {"route_id": 9, "navigation_text": "north to the dead end", "start_heading": 0.0, "end_heading": 0.0,
         "route_panoids": ["S", "X", "N", "N2", "D"]}


@pytest.fixture()
def graph_dir(tmp_path):
    return write_graph(tmp_path / "graph")


@pytest.fixture()
def graph(graph_dir):
    return read_graph(graph_dir)


def lev_reference(a, b):
    """Textbook recursive definition of the Levenshtein distance (exponential: short inputs only)."""
    if not a or not b:
        return len(a) + len(b)
    return min(lev_reference(a[1:], b) + 1, lev_reference(a, b[1:]) + 1,
               lev_reference(a[1:], b[1:]) + (a[0] != b[0]))


def test_levenshtein_known_values_and_reference():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert levenshtein(["a", "b"], ["b", "a"]) == 2  # a transposition costs 2 (Damerau-Levenshtein: 1)
    for a, b in [("abcde", "ace"), ("xyab", "abxy"), ("aaab", "ab"), ("flaw", "lawn")]:
        assert levenshtein(a, b) == lev_reference(a, b)


def test_task_completion_spd_and_sed_hand_computed(graph):
    route = ROUTE["route_panoids"]
    # Exact path: TC 1, SPD 0, SED 1.
    assert score_episode(graph, route, route) == {"task_completion": 1.0, "spd": 0, "sed": 1.0}
    # Stops one short (N2, adjacent to D): TC 1, SPD 1, lev 1 over max(4, 5) -> SED 0.8.
    assert score_episode(graph, route[:-1], route) == {"task_completion": 1.0, "spd": 1, "sed": pytest.approx(0.8)}
    # Two short (N): not adjacent to D -> TC 0, SPD 2, SED 0.
    assert score_episode(graph, route[:3], route) == {"task_completion": 0.0, "spd": 2, "sed": 0.0}
    # A detour E and back, with turns in place (repeats) removed first: S X E X N N2 D vs S X N N2 D:
    # lev 2 over max(7, 5) -> SED 1 - 2/7.
    detour = ["S", "X", "X", "E", "E", "X", "N", "N2", "N2", "D"]
    assert remove_repeats(detour) == ["S", "X", "E", "X", "N", "N2", "D"]
    assert score_episode(graph, detour, route) == {"task_completion": 1.0, "spd": 0, "sed": pytest.approx(5 / 7)}
    assert edit_similarity(["a"], ["b", "c"]) == pytest.approx(0.0)


def test_evaluate_accepts_id_or_route_id_and_checks_every_prediction(graph):
    routes = parse_routes([ROUTE, {"id": "m1", "navigation_text": "x", "start_heading": 90,
                                   "route_panoids": ["X", "E", "E2"]}], "data.jsonl")
    predictions = [{"route_id": 9, "trajectory": ["S", "X", "N"]}, {"id": "m1", "trajectory": ["X", "E", "E2"]}]
    summary, per_episode = evaluate_streetview(routes, predictions, graph)
    assert summary == {"task_completion": 0.5, "spd": 1.0, "sed": 0.5, "num_episodes": 2}
    assert per_episode[0] == {"id": "9", "task_completion": 0.0, "spd": 2, "sed": 0.0}

    def error(preds):
        with pytest.raises(InputError) as e:
            evaluate_streetview(routes, preds, graph, predictions_source="p.json", data_source="data.jsonl")
        return str(e.value)

    assert error(predictions[:1]) == "p.json: id m1: no prediction for 1 of 2 routes of data.jsonl"
    assert "p.json: id 77: prediction for a route that is not in data.jsonl" in error(
        predictions + [{"id": 77, "trajectory": ["X"]}])
    assert error([predictions[0], predictions[0], predictions[1]]) == \
        "p.json: id 9: duplicate prediction (each route needs exactly one)"
    assert "p.json: id 9: trajectory entry 1: no link between 'S' and 'E'" in error(
        [{"id": 9, "trajectory": ["S", "E"]}, predictions[1]])
    assert "p.json: id 9: trajectory starts at 'X'" in error([{"id": 9, "trajectory": ["X"]}, predictions[1]])
    assert "unknown panorama 'Q'" in error([{"id": 9, "trajectory": ["S", "Q"]}, predictions[1]])
    assert "id fields disagree: id=9, route_id=8" in error([{"id": 9, "route_id": 8, "trajectory": ["S"]}])
    summary, _ = evaluate_streetview(routes, [{"instr_id": "9", "trajectory": ["S", "X", "N"]}, predictions[1]],
                                     graph)  # the key `valan train` writes
    assert summary["task_completion"] == 0.5


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_cli_json_keys_and_per_episode(tmp_path, graph_dir, capsys):
    data = tmp_path / "routes.jsonl"
    data.write_text(json.dumps(ROUTE) + "\n")
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"id": 9, "trajectory": ["S", "X", "N", "N2"]}]))
    code, out, _ = run_cli(capsys, "evaluate", "streetview", "--data", str(data), "--graph", str(graph_dir),
                           "--predictions", str(preds), "--json")
    assert code == 0 and json.loads(out) == {"task_completion": 1.0, "spd": 1.0, "sed": pytest.approx(0.8),
                                             "num_episodes": 1}
    code, out, _ = run_cli(capsys, "evaluate", "streetview", "--data", str(data), "--graph", str(graph_dir),
                           "--predictions", str(preds), "--json", "--per-episode")
    assert json.loads(out)["episodes"] == [{"id": "9", "task_completion": 1.0, "spd": 1, "sed": pytest.approx(0.8)}]
    code, out, _ = run_cli(capsys, "evaluate", "streetview", "--data", str(data), "--graph", str(graph_dir),
                           "--predictions", str(preds))
    assert code == 0 and "task completion (TC)" in out and "1.000" in out


@pytest.mark.parametrize("content, message", [
    ("[{\"id\": 9, \"trajectory\": [\"S\", \"E\"]}]", "preds.json: id 9: trajectory entry 1: no link"),
    ("[]", "preds.json: id 9: no prediction for 1 of 1 routes"),
    ("{not json", "preds.json: malformed JSON"),
])
def test_evaluate_cli_bad_input_is_one_line_and_exit_2(tmp_path, graph_dir, capsys, content, message):
    data = tmp_path / "routes.jsonl"
    data.write_text(json.dumps(ROUTE) + "\n")
    preds = tmp_path / "preds.json"
    preds.write_text(content)
    code, out, err = run_cli(capsys, "evaluate", "streetview", "--data", str(data), "--graph", str(graph_dir),
                             "--predictions", str(preds))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("valan: error: ") and message in err


def test_evaluate_cli_defaults_to_the_bundled_sample(tmp_path, capsys):
    from valan.data import sample_path
    from valan.envs.streetview.dataset import load_routes

    routes = load_routes(sample_path("streetview/touchdown_sample.jsonl"))
    preds = tmp_path / "stop.json"
    preds.write_text(json.dumps([{"id": r.id, "trajectory": [r.start]} for r in routes]))
    code, out, _ = run_cli(capsys, "evaluate", "streetview", "--predictions", str(preds), "--json")
    result = json.loads(out)
    assert code == 0 and result["num_episodes"] == 21 and result["task_completion"] == 0.0 and result["spd"] > 5


def test_data_check_reports_every_planted_problem_by_route(tmp_path, graph_dir, capsys):
    data = tmp_path / "routes.jsonl"
    good = dict(ROUTE)
    unlinked = dict(ROUTE, route_id=10, route_panoids=["S", "X", "N2", "D"])  # X -> N2: no link
    unknown = dict(ROUTE, route_id=11, route_panoids=["D", "N2", "N", "Q1", "Q2"])  # unknown Q1, Q2
    data.write_text("".join(json.dumps(r) + "\n" for r in (good, unlinked, unknown)))
    code, out, err = run_cli(capsys, "data", "check", "streetview", "--data", str(data), "--graph", str(graph_dir))
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 2
    assert "route 10: panoramas 1 -> 2: no link from 'X' to 'N2'" in lines[0]
    assert "route 11: 2 of 5 panoramas are not in the graph: 3 'Q1', 4 'Q2'" in lines[1]
    assert err.strip() == f"valan: error: 2 problems in 2 of 3 routes of {data}"
    data.write_text(json.dumps(good) + "\n")
    code, out, _ = run_cli(capsys, "data", "check", "streetview", "--data", str(data), "--graph", str(graph_dir))
    assert code == 0 and "1 routes OK" in out


def test_data_check_passes_on_the_bundled_sample(capsys):
    code, out, _ = run_cli(capsys, "data", "check", "streetview")
    assert code == 0 and "21 routes OK" in out
