"""Problem.check_inputs: a training config's data, graph, vocabulary and features are validated up front, with the
checks of ``valan data check`` (what ``valan train`` runs before Ray starts)."""

from __future__ import annotations

import json
import math

import pytest

from valan.data import sample_path
from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError
from valan.problems import get_problem, load_train_config


def non_adjacent_record() -> dict:
    """A sample training record whose second viewpoint is replaced by one of the scan that is not adjacent to
    the first."""
    record = json.loads(sample_path("R2R_sample_train.json").read_text())[0]
    graph = Connectivity(sample_path("connectivity")).graph(record["scan"])
    start = record["path"][0]
    far = next(vp for vp in graph.viewpoints if vp != start and not graph.adjacent(start, vp))
    return dict(record, path=[start, far, *record["path"][2:]])


def r2r_config(tmp_path, records: list) -> object:
    train = tmp_path / "train.json"
    train.write_text(json.dumps(records))
    return load_train_config(None, [f"data.train=[{train}]"]), train


def test_the_bundled_samples_pass():
    for name in ("r2r_sample.yaml", "touchdown_sample.yaml", "map2seq_sample.yaml"):
        from valan.configs import config_path

        config = load_train_config(config_path(name))
        get_problem(config.problem).check_inputs(config)


def test_non_adjacent_training_step_names_file_and_path(tmp_path):
    record = non_adjacent_record()
    config, train = r2r_config(tmp_path, [record])
    with pytest.raises(InputError, match=rf"{train}: path_id {record['path_id']}: path positions 0 and 1 .* not adjacent"):
        get_problem("r2r").check_inputs(config)


@pytest.mark.parametrize("heading", [math.nan, "north"])
def test_heading_that_is_not_a_finite_number(tmp_path, heading):
    record = dict(json.loads(sample_path("R2R_sample_train.json").read_text())[0], heading=heading)
    config, train = r2r_config(tmp_path, [record])
    with pytest.raises(InputError, match=rf"{train}: path_id .*'heading' must be a finite number"):
        get_problem("r2r").check_inputs(config)


def test_bad_evaluation_file_and_vocabulary_are_found_too(tmp_path):
    bad = tmp_path / "val.json"
    bad.write_text("[{")
    config = load_train_config(None, [f"data.eval={{val_seen: {bad}}}"])
    with pytest.raises(InputError, match=rf"{bad}: malformed JSON"):
        get_problem("r2r").check_inputs(config)
    config = load_train_config(None, [f"data.vocab={tmp_path / 'none.txt'}"])
    with pytest.raises(InputError, match="none.txt: vocabulary file not found"):
        get_problem("r2r").check_inputs(config)


def test_unknown_panorama_in_a_touchdown_route(tmp_path):
    lines = sample_path("streetview/touchdown_sample.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["route_panoids"] = [record["route_panoids"][0], "no-such-pano"]
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps(record) + "\n")
    from valan.configs import config_path

    config = load_train_config(config_path("touchdown_sample.yaml"), [f"data.train=[{train}]"])
    with pytest.raises(InputError, match=rf"{train}: route_id {record['route_id']}: 1 of 2 panoramas are not in"):
        get_problem("touchdown").check_inputs(config)


@pytest.mark.parametrize("problem", ["r2r", "ndh", "touchdown", "map2seq"])
def test_mirror_is_refused_for_an_agent_that_reads_features(problem):
    overrides = [f"problem={problem}", "env.mirror=0.5"]
    get_problem(problem).check_inputs(load_train_config(None, overrides))  # synthetic features: visual none
    config = load_train_config(None, [*overrides, "agent.visual=features"])
    with pytest.raises(InputError, match="env.mirror needs agent.visual none"):
        get_problem(problem).check_inputs(config)
    with pytest.raises(InputError, match="env.mirror must be a probability"):
        load_train_config(None, [f"problem={problem}", "env.mirror=2"])
