"""NDH loading as CVDN releases it (train/val and test forms), path types and the dialog input text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from valan.data import sample_path
from valan.envs.ndh.dataset import Turn, encode_dialog, load_ndh, parse_ndh, with_separators
from valan.envs.ndh.metrics import evaluate_ndh
from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError
from valan.text import EOS_ID, PAD_ID, Vocabulary

SAMPLE = sample_path("ndh/NDH_sample_val.json")


def records() -> list[dict]:
    return json.loads(SAMPLE.read_text())


def test_the_format_sample_loads_on_its_graphs(sample_connectivity):
    episodes = load_ndh(SAMPLE, Connectivity(sample_connectivity))
    assert len(episodes) == 87 and all(e.has_reference for e in episodes)
    first = episodes[0]
    assert first.dialog_history[0].role == "navigator" and first.dialog_history[1].role == "oracle"
    assert first.start("planner_path") == first.start_viewpoint == first.player_path[0]


def test_test_split_form_loads_for_running_but_not_scoring(sample_connectivity, tmp_path):
    test_form = [{k: v for k, v in r.items() if k not in ("game_idx", "end_panos", "planner_path", "player_path")}
                 for r in records()]
    path = tmp_path / "test.json"
    path.write_text(json.dumps(test_form))
    episodes = load_ndh(path, Connectivity(sample_connectivity))
    assert not any(e.has_reference for e in episodes)
    assert episodes[0].start("trusted_path") == test_form[0]["start_pano"]["pano"]
    with pytest.raises(InputError, match="a test split"):
        episodes[0].path("player_path")
    stop = [{"inst_idx": e.inst_idx, "trajectory": [[e.start_viewpoint, 0, 0]]} for e in episodes]
    with pytest.raises(InputError, match="cannot be scored"):
        evaluate_ndh(episodes, stop, sample_connectivity)


def test_path_types_follow_cvdn():
    base = records()[0]
    planner, player = base["planner_path"], base["player_path"]
    through = parse_ndh([{**base, "player_path": planner + ["x"]}])[0]
    assert through.path("trusted_path") == (*planner, "x")  # the player passed the planner goal: trust it
    missed = parse_ndh([{**base, "player_path": planner[:-1]}])[0]
    assert missed.path("trusted_path") == tuple(planner)
    at_start = parse_ndh([{**base, "planner_path": planner[:1], "player_path": planner[:1] + planner[1:2]}])[0]
    assert at_start.path("trusted_path") == tuple(planner[:1])  # passing the goal must happen after the start
    episode = parse_ndh([base])[0]
    assert episode.path("planner_path") == tuple(planner) and episode.path("player_path") == tuple(player)
    with pytest.raises(InputError, match="unknown path type"):
        episode.path("oracle_path")


@pytest.mark.parametrize("change, message", [
    (lambda r: {k: v for k, v in r.items() if k != "target"}, "missing field 'target'"),
    (lambda r: {k: v for k, v in r.items() if k != "player_path"}, "missing field 'player_path'"),
    (lambda r: {**r, "inst_idx": "3"}, "'inst_idx' must be an integer"),
    (lambda r: {**r, "dialog_history": [{"role": "guide", "message": "hi"}]}, "dialog_history"),
    (lambda r: {**r, "planner_path": [r["planner_path"][0], r["end_panos"][-1]] if len(r["planner_path"]) > 2
                else r["planner_path"] + ["nowhere"]}, "not adjacent|not in scan"),
    (lambda r: {**r, "scan": "nosuchscan"}, "unknown scan"),
])
def test_bad_records_name_the_instance(sample_connectivity, change, message):
    bad = records()[:2]
    bad[1] = change(bad[1])
    with pytest.raises(InputError, match=message) as error:
        parse_ndh(bad, source="f.json", connectivity=Connectivity(sample_connectivity))
    assert "f.json" in str(error.value) and ("inst_idx" in str(error.value) or "record 1" in str(error.value))


def test_duplicate_ids_are_an_error():
    with pytest.raises(InputError, match="duplicate inst_idx"):
        parse_ndh(records()[:1] * 2)


@pytest.fixture(scope="module")
def vocab():
    return with_separators(Vocabulary.load(sample_path("train_vocab.txt")))


def test_separators_extend_the_r2r_vocabulary(vocab):
    r2r = Vocabulary.load(sample_path("train_vocab.txt"))
    assert vocab.tokens[: len(r2r)] == r2r.tokens and vocab.tokens[len(r2r):] == ["<NAV>", "<ORA>", "<TAR>"]
    assert with_separators(vocab) is vocab


def test_dialog_text_has_target_and_role_separators(vocab):
    turns = (Turn("navigator", "which way"), Turn("oracle", "turn left"))
    ids, length = encode_dialog(vocab, "plant", turns, 20)
    assert vocab.decode(ids) == ["<TAR>", "plant", "<NAV>", "which", "way", "<ORA>", "turn", "left"]
    assert length == 9 and ids[8] == EOS_ID and (ids[9:] == PAD_ID).all()


def test_over_long_dialogs_keep_the_target_and_the_newest_turns(vocab):
    turns = (Turn("navigator", "which way"), Turn("oracle", "turn left"), Turn("navigator", "now where"),
             Turn("oracle", "go up the stairs"))
    ids, length = encode_dialog(vocab, "plant", turns, 10)
    assert length == 10 and ids[-1] == EOS_ID
    assert vocab.decode(ids) == ["<TAR>", "plant", "now", "where", "<ORA>", "go", "up", "the", "stairs"]
    ids, length = encode_dialog(vocab, "a very long target name", turns, 4)
    assert vocab.decode(ids) == ["<TAR>", "a", "very"] and length == 4
    with pytest.raises(InputError, match="separator"):
        encode_dialog(Vocabulary.load(sample_path("train_vocab.txt")), "plant", turns, 10)
    assert np.array_equal(encode_dialog(vocab, "plant", (), 5)[0][:3], [vocab.index["<TAR>"], vocab.index["plant"],
                                                                         EOS_ID])
