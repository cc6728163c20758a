"""``valan predict``: leaderboard predictions from a checkpoint alone (no training data), test splits included;
``valan evaluate --checkpoint`` on splits without references."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers.checkpoints import save_trained
from valan.cli import main
from valan.data import sample_path


def write_test_split(tmp_path):
    """The bundled val_seen episodes as a test split: start viewpoints only."""
    records = json.loads(sample_path("R2R_sample_val_seen.json").read_text())
    for r in records:
        r["path"] = r["path"][:1]
    path = tmp_path / "R2R_test.json"
    path.write_text(json.dumps(records))
    return path, records


def moved_r2r_checkpoint(tmp_path):
    """An R2R checkpoint whose training data (root, vocabulary) is gone, and a graph copied elsewhere."""
    from valan.problems.r2r.config import R2RConfig, R2RDataConfig

    root = tmp_path / "training_data"
    shutil.copytree(sample_path("connectivity"), root / "connectivity")
    shutil.copy(sample_path("train_vocab.txt"), root / "my_vocab.txt")
    config = R2RConfig(data=R2RDataConfig(root=str(root), vocab="my_vocab.txt"))
    ckpt = save_trained(tmp_path / "run" / "ckpt.pt", config)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.move(ckpt, alone / "ckpt.pt")
    shutil.move(root / "connectivity", alone / "connectivity")
    shutil.rmtree(root)
    return alone / "ckpt.pt", alone / "connectivity"


def test_r2r_test_split_predictions_from_the_checkpoint_alone(tmp_path, capsys, one_torch_thread):
    ckpt, connectivity = moved_r2r_checkpoint(tmp_path)
    data, records = write_test_split(tmp_path)
    out = tmp_path / "submission" / "preds.json"
    rc = main(["predict", "r2r", "--checkpoint", str(ckpt), "--data", str(data), "--connectivity",
               str(connectivity), "--output", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    predictions = json.loads(out.read_text())
    starts = {f"{r['path_id']}_{i}": r["path"][0] for r in records for i in range(len(r["instructions"]))}
    assert sorted(p["instr_id"] for p in predictions) == sorted(starts)
    assert all(p["trajectory"][0][0] == starts[p["instr_id"]] and len(p["trajectory"][0]) == 3
               for p in predictions)
    assert f"wrote {len(starts)} r2r predictions" in capsys.readouterr().out
    # evaluate --checkpoint --save-predictions on the same split writes the same file, unscored
    saved = tmp_path / "saved.json"
    rc = main(["evaluate", "r2r", "--checkpoint", str(ckpt), "--data", str(data), "--connectivity",
               str(connectivity), "--save-predictions", str(saved)])
    assert rc == 0 and json.loads(saved.read_text()) == predictions
    assert "not scored" in capsys.readouterr().out


def test_evaluate_without_references_points_to_predict(tmp_path, capsys):
    ckpt, connectivity = moved_r2r_checkpoint(tmp_path)
    data, _ = write_test_split(tmp_path)
    rc = main(["evaluate", "r2r", "--checkpoint", str(ckpt), "--data", str(data), "--connectivity",
               str(connectivity)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "R2R_test.json" in err and "no reference path" in err and "valan predict r2r" in err


def test_streetview_checkpoint_without_training_files(tmp_path, capsys, one_torch_thread):
    """Touchdown builds its vocabulary from the training routes: the checkpoint carries it instead."""
    from valan.problems.streetview.config import StreetViewDataConfig, TouchdownConfig

    root = tmp_path / "td"
    (root / "streetview").mkdir(parents=True)
    shutil.copy(sample_path("streetview/touchdown_sample.jsonl"), root / "streetview" / "touchdown_sample.jsonl")
    shutil.copytree(sample_path("streetview/graph"), root / "streetview" / "graph")
    config = TouchdownConfig(data=StreetViewDataConfig(root=str(root)))
    ckpt = save_trained(tmp_path / "with_vocab.pt", config)
    old = save_trained(tmp_path / "old.pt", config, with_vocab=False)
    data = shutil.copy(root / "streetview" / "touchdown_sample.jsonl", tmp_path / "routes.jsonl")
    argv = ["predict", "streetview", "--data", str(data), "--graph", str(sample_path("streetview/graph")),
            "--no-progress", "--output"]
    # a checkpoint from before valan stored vocabularies rebuilds it from the training files, as before
    assert main([*argv, str(tmp_path / "old.json"), "--checkpoint", str(old)]) == 0, capsys.readouterr().err
    shutil.rmtree(root)
    assert main([*argv, str(tmp_path / "new.json"), "--checkpoint", str(ckpt)]) == 0, capsys.readouterr().err
    predictions = json.loads((tmp_path / "new.json").read_text())
    assert len(predictions) == 21 and all(set(p) == {"route_id", "trajectory"} for p in predictions)
    assert predictions == json.loads((tmp_path / "old.json").read_text())


def test_task_must_match_the_checkpoint(tmp_path, capsys):
    from valan.problems.r2r.config import R2RConfig

    ckpt = save_trained(tmp_path / "r2r.pt", R2RConfig())
    out = tmp_path / "preds.json"
    rc = main(["predict", "streetview", "--checkpoint", str(ckpt), "--data", "x.jsonl", "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "r2r.pt" in err and "not a 'streetview' one" in err and not out.exists()


@pytest.mark.parametrize("argv", [["--checkpoint", "absent.pt"], ["--data", "absent.json"]])
def test_missing_inputs_are_one_line_errors(tmp_path, capsys, argv):
    from valan.problems.r2r.config import R2RConfig

    ckpt = save_trained(tmp_path / "r2r.pt", R2RConfig())
    args = {"--checkpoint": str(ckpt), "--data": str(sample_path("R2R_sample_val_seen.json"))}
    args[argv[0]] = str(tmp_path / argv[1])
    out = tmp_path / "preds.json"
    rc = main(["predict", "r2r", *[x for kv in args.items() for x in kv], "--output", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and argv[1] in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_predict_serves_every_registered_problem(tmp_path, capsys, one_torch_thread):
    """Nothing in predict names a task: NDH predicts through its Problem's own id key and files."""
    from valan.problems import PROBLEMS, get_problem

    if "ndh" not in PROBLEMS:
        pytest.skip("no ndh problem registered")
    config = get_problem("ndh").config_class()
    ckpt = save_trained(tmp_path / "ndh.pt", config)
    out = tmp_path / "ndh.json"
    data = config.data.split_files(next(iter(config.data.eval)))[0]
    assert main(["predict", "ndh", "--checkpoint", str(ckpt), "--data", data, "--output", str(out),
                 "--no-progress"]) == 0, capsys.readouterr().err
    predictions = json.loads(out.read_text())
    key = get_problem("ndh").prediction_key
    assert predictions and all(set(p) == {key, "trajectory"} for p in predictions)


def test_several_checkpoints_predict_as_one_ensemble(tmp_path, capsys, one_torch_thread):
    """Two copies of one checkpoint act exactly as it does alone; members of another problem, vocabulary or env
    config are refused in one line before anything is written."""
    from valan.problems.r2r.config import R2RConfig, R2REnvConfig
    from valan.problems.streetview.config import TouchdownConfig

    ckpt = save_trained(tmp_path / "r2r.pt", R2RConfig())
    argv = ["predict", "r2r", "--data", str(sample_path("R2R_sample_val_seen.json")), "--no-progress"]
    assert main([*argv, "--checkpoint", str(ckpt), "--output", str(tmp_path / "alone.json")]) == 0
    rc = main([*argv, "--checkpoint", str(ckpt), str(ckpt), "--output", str(tmp_path / "pair.json")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "pair.json").read_text()) == json.loads((tmp_path / "alone.json").read_text())
    assert f"predictions of {ckpt} + {ckpt} on" in capsys.readouterr().out

    strangers = {"a 'touchdown' checkpoint": save_trained(tmp_path / "td.pt", TouchdownConfig()),
                 "vocabulary differs": save_trained(tmp_path / "vocab.pt", R2RConfig()),
                 "env config differs": save_trained(tmp_path / "env.pt", R2RConfig(env=R2REnvConfig(max_candidates=9)))}
    state = torch.load(strangers["vocabulary differs"], weights_only=True)
    state["vocab"] = [*state["vocab"][:-1], "zebra-crossing"]
    torch.save(state, strangers["vocabulary differs"])
    for reason, path in strangers.items():
        out = tmp_path / f"{path.stem}.json"
        rc = main([*argv, "--checkpoint", str(ckpt), str(path), "--output", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and not out.exists(), err
        assert path.name in err and reason in err, err
