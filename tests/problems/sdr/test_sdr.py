"""Touchdown SDR: data parsing, Gaussian targets, Chen et al. pixel metrics, LingUNet, train-sdr / evaluate sdr."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from valan.agents.lingunet import LingUNet
from valan.checkpoint import save_checkpoint
from valan.cli import main
from valan.errors import InputError
from valan.problems.sdr.data import (NpyFeatureMaps, SDRDataset, SDRExample, SyntheticFeatureMaps, gaussian_heatmap,
                                     load_sdr, parse_sdr, parse_static_center, split_by_route)
from valan.problems.sdr.metrics import PixelSpace, argmax_cells, cell_distance_px, sdr_metrics, target_cell
from valan.problems.sdr.training import evaluate_model, kl_divergence, load_sdr_model

TOUCHDOWN_GRID = PixelSpace(grid_height=100, grid_width=464)  # 8 x 8 pixel cells of the 3712 x 800 panorama


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def record(route_id=1, text="Touchdown is on the red awning.", main=(0.25, 0.5), pre=(0.1, 0.2), post=(-1, -1)):
    rec = {"route_id": route_id, "td_location_text": text}
    for prefix, (x, y) in (("main", main), ("pre", pre), ("post", post)):
        rec[f"{prefix}_pano"] = f"{prefix}{route_id}"
        rec[f"{prefix}_static_center"] = json.dumps({"x": x, "y": y})
    return rec


# ------------------------------------------------------------------------------------------------ metrics


def test_cell_distance_on_the_touchdown_grid_is_eight_pixels_per_cell():
    pred = np.array([[0, 0], [3, 4], [10, 10], [0, 463]])
    target = np.array([[0, 0], [0, 0], [10, 15], [99, 0]])
    d = cell_distance_px(pred, target, TOUCHDOWN_GRID)
    np.testing.assert_allclose(d, [0.0, 40.0, 40.0, 8 * math.hypot(99, 463)])


def test_cell_distance_uses_each_axis_cell_size():
    space = PixelSpace(grid_height=10, grid_width=16)  # cells of 232 x 80 pixels
    d = cell_distance_px(np.array([[1, 1]]), np.array([[0, 0]]), space)
    assert d[0] == pytest.approx(math.hypot(232, 80))


def test_accuracy_thresholds_are_strict_and_mean_is_in_pixels():
    m = sdr_metrics([0.0, 39.9, 40.0, 100.0, 130.0])
    assert m["acc@40"] == pytest.approx(2 / 5)  # 40.0 is not within 40 pixels (Touchdown: distance < margin)
    assert m["acc@80"] == pytest.approx(3 / 5)
    assert m["acc@120"] == pytest.approx(4 / 5)
    assert m["mean_distance"] == pytest.approx(309.9 / 5)
    assert m["num_examples"] == 5
    with pytest.raises(InputError):
        sdr_metrics([])


def test_argmax_cells_row_col():
    scores = np.zeros((2, 3, 5))
    scores[0, 2, 1] = 1
    scores[1, 0, 4] = 3
    assert argmax_cells(scores).tolist() == [[2, 1], [0, 4]]


# ------------------------------------------------------------------------------------------------ targets


def test_target_cell_maps_ratios_to_the_containing_cell():
    assert target_cell(0.0, 0.0, 100, 464) == (0, 0)
    assert target_cell(0.5, 0.5, 100, 464) == (50, 232)
    assert target_cell(1.0, 1.0, 100, 464) == (99, 463)  # the right/bottom edge falls in the last cell
    assert target_cell(0.12277, 0.49166, 100, 464) == (49, 56)


@pytest.mark.parametrize("x,y", [(0.0, 0.0), (0.12277, 0.49166), (0.5, 0.5), (0.999, 0.3), (1.0, 1.0)])
def test_heatmap_sums_to_one_and_peaks_at_the_target_cell(x, y):
    space = PixelSpace(grid_height=25, grid_width=116)
    heat = gaussian_heatmap(x, y, space, sigma_px=24.0)
    assert heat.shape == (25, 116) and heat.dtype == np.float32
    assert heat.sum() == pytest.approx(1.0, abs=1e-5)
    assert tuple(argmax_cells(heat[None])[0]) == target_cell(x, y, 25, 116)


def test_heatmap_is_the_normalised_gaussian_around_the_target_cell_centre():
    space = PixelSpace(grid_height=4, grid_width=6, width_px=60.0, height_px=40.0)  # 10 x 10 pixel cells
    x, y, sigma = 0.3, 0.6, 12.0  # pixel (18, 24): cell (row 2, col 1), centre (15, 25)
    expected = np.array([[math.exp(-(((c + 0.5) * 10 - 15) ** 2 + ((r + 0.5) * 10 - 25) ** 2) / (2 * sigma ** 2))
                          for c in range(6)] for r in range(4)])
    np.testing.assert_allclose(gaussian_heatmap(x, y, space, sigma), expected / expected.sum(), rtol=1e-5)


def test_heatmap_sigma_controls_the_spread_and_must_be_positive():
    space = PixelSpace(grid_height=25, grid_width=116)
    assert gaussian_heatmap(0.5, 0.5, space, 8.0).max() > gaussian_heatmap(0.5, 0.5, space, 80.0).max()
    with pytest.raises(InputError):
        gaussian_heatmap(0.5, 0.5, space, 0.0)


def test_kl_divergence_matches_the_definition():
    rng = np.random.default_rng(0)
    target = rng.random((3, 4, 5))
    target[0, 0, :] = 0.0  # 0 log 0 = 0
    target /= target.sum(axis=(1, 2), keepdims=True)
    logits = rng.normal(size=(3, 4, 5))
    log_p = logits - np.log(np.exp(logits).sum(axis=(1, 2), keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(target > 0, target * (np.log(target) - log_p), 0.0)
    expected = terms.sum(axis=(1, 2)).mean()
    got = kl_divergence(torch.tensor(target), torch.tensor(log_p))
    assert float(got) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------------------------------- data


def test_parse_static_center_forms():
    assert parse_static_center('{"x":0.25,"y":0.5}') == (0.25, 0.5)
    assert parse_static_center({"x": 1, "y": 0}) == (1.0, 0.0)
    assert parse_static_center('{"x": -1, "y": -1}') is None
    for bad in ('{"x": 1.5, "y": 0.5}', "not json", '{"x": 0.5}', '{"x": "a", "y": 0}'):
        with pytest.raises(InputError):
            parse_static_center(bad, source="f.jsonl", record="7")


def test_parse_sdr_examples_skips_invisible_targets():
    records = [record(1), record(2, main=(0.9, 0.1), pre=(-1, -1))]
    examples, skipped = parse_sdr(records, "f.jsonl", ("main", "pre", "post"))
    assert [e.example_id for e in examples] == ["1", "1/pre", "2"]
    assert skipped == 3  # post of both routes, pre of route 2
    assert examples[0] == SDRExample("1", "1", "main", "main1", "Touchdown is on the red awning.", 0.25, 0.5)
    assert examples[1].propagated and not examples[0].propagated
    main_only, skipped_main = parse_sdr(records, "f.jsonl")
    assert [e.panoid for e in main_only] == ["main1", "main2"] and skipped_main == 0


def test_parse_sdr_errors_name_the_file_and_route():
    rec = record(42)
    del rec["main_static_center"]
    with pytest.raises(InputError, match=r"f\.jsonl: 42: missing main_static_center"):
        parse_sdr([rec], "f.jsonl")
    with pytest.raises(InputError, match="42: missing or empty td_location_text"):
        parse_sdr([record(42, text=" ")], "f.jsonl")
    with pytest.raises(InputError, match="duplicate"):
        parse_sdr([record(3), record(3)], "f.jsonl")
    with pytest.raises(InputError, match="panoramas"):
        parse_sdr([record(3)], "f.jsonl", ("middle",))


def test_load_sdr_on_the_touchdown_sample(shared_streetview):
    path = shared_streetview / "touchdown_unseen_dev_sample.jsonl"
    main_examples, skipped = load_sdr(path)
    assert len(main_examples) == 100 and skipped == 0
    all_examples, skipped_all = load_sdr(path, ("main", "pre", "post"))
    assert len(all_examples) + skipped_all == 300
    first = json.loads(path.read_text().splitlines()[0])
    center = json.loads(first["main_static_center"])
    assert (main_examples[0].x, main_examples[0].y) == (center["x"], center["y"])


def test_split_by_route_keeps_routes_together():
    examples, _ = parse_sdr([record(i) for i in range(10)], "f", ("main", "pre"))
    train, held_out = split_by_route(examples, 0.3, seed=1)
    assert len({e.route_id for e in held_out}) == 3
    assert not {e.route_id for e in train} & {e.route_id for e in held_out}
    assert len(train) + len(held_out) == len(examples)


# ----------------------------------------------------------------------------------------- feature maps


def test_synthetic_maps_are_deterministic_per_panorama():
    maps = SyntheticFeatureMaps(channels=3, height=4, width=5)
    a = maps.get("pano_a")
    assert a.shape == (3, 4, 5) and a.dtype == np.float32 and maps.synthetic
    np.testing.assert_array_equal(a, SyntheticFeatureMaps(channels=3, height=4, width=5).get("pano_a"))
    assert not np.allclose(a, maps.get("pano_b"))


def test_npy_maps_read_touchdown_hwc_and_chw_layouts(tmp_path):
    chw = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    (tmp_path / "hwc").mkdir()
    (tmp_path / "chw").mkdir()
    np.save(tmp_path / "hwc" / "p1.npy", chw.transpose(1, 2, 0))
    np.save(tmp_path / "chw" / "p1.npy", chw)
    for layout in ("hwc", "chw"):
        maps = NpyFeatureMaps(tmp_path / layout, layout)
        assert (maps.channels, maps.height, maps.width) == (2, 3, 4)
        got = maps.get("p1")
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, chw)
    with pytest.raises(InputError, match="no feature map for panorama p2"):
        maps.get("p2")
    np.save(tmp_path / "chw" / "p3.npy", np.zeros((2, 3, 5)))
    with pytest.raises(InputError, match="p3.npy: feature map shape"):
        maps.get("p3")


# ------------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("stride,levels,height,width", [(1, 2, 7, 13), (2, 2, 7, 13), (2, 3, 25, 116), (1, 1, 4, 4)])
def test_lingunet_output_is_a_distribution_over_the_input_grid(stride, levels, height, width):
    torch.manual_seed(0)
    model = LingUNet(vocab_size=20, in_channels=5, channels=8, levels=levels, embedding_size=8, hidden_size=6,
                     stride=stride, head_hidden_size=8)
    text = torch.randint(3, 20, (3, 9))
    log_p = model(torch.randn(3, 5, height, width), text, torch.tensor([9, 4, 1]))
    assert log_p.shape == (3, height, width)
    np.testing.assert_allclose(log_p.exp().sum(dim=(1, 2)).detach().numpy(), 1.0, rtol=1e-5)


def test_lingunet_output_depends_on_the_text_and_ignores_padding():
    torch.manual_seed(0)
    model = LingUNet(vocab_size=20, in_channels=4, channels=8, embedding_size=8, hidden_size=8).eval()
    features = torch.randn(1, 4, 6, 10).repeat(2, 1, 1, 1)
    text = torch.tensor([[5, 6, 7, 2, 0, 0], [8, 9, 10, 2, 0, 0]])
    length = torch.tensor([4, 4])
    with torch.no_grad():
        out = model(features, text, length)
        assert (out[0] - out[1]).abs().max() > 1e-3  # same panorama, different descriptions
        padded = model(features[:1], torch.tensor([[5, 6, 7, 2, 0, 0, 0, 0, 0, 0]]), length[:1])
        different_pads = model(features[:1], torch.tensor([[5, 6, 7, 2, 9, 9]]), length[:1])
    torch.testing.assert_close(padded, out[:1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(different_pads, out[:1], rtol=1e-5, atol=1e-5)


def test_lingunet_rejects_inconsistent_sizes():
    with pytest.raises(ValueError):
        LingUNet(vocab_size=10, in_channels=4, hidden_size=5, levels=4)  # 10 does not split into 4 slices
    with pytest.raises(ValueError):
        LingUNet(vocab_size=10, in_channels=4, kernel_size=4)


# --------------------------------------------------------------- learning: LingUNet finds the named landmark

LANDMARKS = ("hydrant", "awning", "mailbox", "scaffolding")
GRID_H, GRID_W, CHANNELS = 8, 16, 8


def planted_data(folder: Path, n: int, seed: int, prefix: str, swap_text: bool = False) -> Path:
    """Feature maps with every landmark's embedding at its own random cell over noise; the text names one of
    them and the bear sits at that cell. Writes ``{panoid}.npy`` maps (Touchdown hwc layout) and a JSON-lines
    file; ``swap_text`` names a different landmark (and moves the target there) for the same panoramas."""
    embeddings = 2.0 * np.random.default_rng(123).normal(size=(len(LANDMARKS), CHANNELS)).astype(np.float32)
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        maps = rng.normal(0.0, 0.5, (CHANNELS, GRID_H, GRID_W)).astype(np.float32)
        cells = rng.choice(GRID_H * GRID_W, size=len(LANDMARKS), replace=False)
        for k, cell in enumerate(cells):
            maps[:, cell // GRID_W, cell % GRID_W] += embeddings[k]
        named = int(rng.integers(len(LANDMARKS)))
        if swap_text:
            named = (named + 1) % len(LANDMARKS)
        row, col = divmod(int(cells[named]), GRID_W)
        panoid = f"{prefix}{i}"
        np.save(folder / f"{panoid}.npy", maps.transpose(1, 2, 0))
        rec = {"route_id": i, "td_location_text": f"Touchdown is sitting on the {LANDMARKS[named]}.",
               "main_pano": panoid,
               "main_static_center": json.dumps({"x": (col + 0.5) / GRID_W, "y": (row + 0.5) / GRID_H})}
        lines.append(json.dumps(rec))
    path = folder.parent / f"{prefix}{'_swapped' if swap_text else ''}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_lingunet_learns_to_find_the_landmark_the_text_names(tmp_path, capsys):
    maps = tmp_path / "maps"
    train = planted_data(maps, 4096, seed=1, prefix="train")
    held_out = planted_data(maps, 128, seed=2, prefix="test")
    swapped = planted_data(maps, 128, seed=2, prefix="test", swap_text=True)
    run = tmp_path / "run"
    assert main(["train-sdr", "--out", str(run), "--device", "cpu",
                 "--set", f"data.train={train}", "--set", f"data.eval={held_out}",
                 "--set", "features.source=npy", "--set", f"features.path={maps}",
                 "--set", "model.channels=16", "--set", "model.embedding_size=16", "--set", "model.hidden_size=16",
                 "--set", "model.head_hidden_size=16", "--set", "run.total_steps=200", "--set", "learning.batch_size=32",
                 "--set", "learning.lr=3e-3", "--set", "run.eval_every_steps=100", "--set", "run.log_every_steps=50"]) == 0
    assert "synthetic" not in capsys.readouterr().out  # real (planted) maps: no synthetic-features note

    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in lines if m["split"] == "eval"]
    assert [m["step"] for m in evals] == [100, 200]
    assert evals[-1]["acc@40"] > 0.8
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.pt")) == ["ckpt-000000100.pt", "ckpt-000000200.pt"]
    assert (run / "config.yaml").is_file() and list((run / "tensorboard").iterdir())

    # Before training the same model is at chance (1 cell of 128 is within 40 pixels of the target).
    config, vocab, trained, _ = load_sdr_model(run / "checkpoints" / "ckpt-000000200.pt")
    torch.manual_seed(0)
    untrained = LingUNet(len(vocab), CHANNELS, channels=16, embedding_size=16, hidden_size=16, head_hidden_size=16)
    held_out_set = SDRDataset(load_sdr(held_out)[0], vocab, NpyFeatureMaps(maps), sigma_px=config.target.sigma_px)
    assert evaluate_model(untrained, held_out_set)[0]["acc@40"] < 0.1

    # The text drives the answer: naming another landmark in the same panoramas moves the prediction there.
    swapped_set = SDRDataset(load_sdr(swapped)[0], vocab, NpyFeatureMaps(maps), sigma_px=config.target.sigma_px)
    assert evaluate_model(trained, swapped_set)[0]["acc@40"] > 0.8

    # Checkpoint round trip: `valan evaluate sdr` reproduces the metrics the trainer logged at its last step.
    predictions = tmp_path / "predictions.json"
    assert main(["evaluate", "sdr", "--checkpoint", str(run / "checkpoints" / "ckpt-000000200.pt"),
                 "--data", str(held_out), "--json", "--predictions", str(predictions)]) == 0
    reported = json.loads(capsys.readouterr().out)
    for key in ("acc@40", "acc@80", "acc@120", "mean_distance", "num_examples"):
        assert reported[key] == pytest.approx(evals[-1][key])
    assert reported["synthetic_features"] is False

    # Per-example predictions: a prediction at distance 0 is the target's own cell centre.
    per_example = json.loads(predictions.read_text())
    targets = {e.example_id: e for e in load_sdr(held_out)[0]}
    assert sorted(p["id"] for p in per_example) == sorted(targets)
    assert np.mean([p["distance_px"] for p in per_example]) == pytest.approx(reported["mean_distance"])
    hits = [p for p in per_example if p["distance_px"] == 0]
    assert hits and all((p["x"], p["y"]) == pytest.approx((targets[p["id"]].x, targets[p["id"]].y)) for p in hits)


# ---------------------------------------------------------------------------------------------------- CLI


def test_train_resume_and_evaluate_on_the_bundled_touchdown_sample(tmp_path, capsys):
    from valan.problems.sdr.data import sample_data_path

    data = sample_data_path()  # the 21 bundled Touchdown routes
    run = tmp_path / "run"
    tiny = ["--set", "learning.batch_size=4", "--set", "run.eval_every_steps=2", "--set", "features.height=5",
            "--set", "features.width=24", "--set", "model.channels=4", "--set", "model.hidden_size=4",
            "--set", "model.embedding_size=4", "--set", "model.head_hidden_size=4"]
    assert main(["train-sdr", "--out", str(run), "--set", "run.total_steps=2", *tiny]) == 0
    out = capsys.readouterr().out
    assert "no visual information" in out
    assert "17 training examples" in out and "4 evaluation examples" in out
    assert main(["train-sdr", "--out", str(run), "--resume", "--set", "run.total_steps=4", *tiny]) == 0
    capsys.readouterr()
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged if m["split"] == "eval"] == [2, 4]
    ckpt = run / "checkpoints" / "ckpt-000000004.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 4

    assert main(["evaluate", "sdr", "--checkpoint", str(ckpt), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    for name in ("acc@40", "acc@80", "acc@120", "mean_distance"):
        assert name in out
    assert "no visual information" in out
    assert main(["evaluate", "sdr", "--checkpoint", str(ckpt), "--data", str(data), "--json",
                 "--panoramas", "main,pre,post"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["num_examples"] + summary["skipped_not_visible"] == 3 * 21
    assert summary["synthetic_features"] is True and "no visual information" in captured.err


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad_data = tmp_path / "bad.jsonl"
    rec = record(17)
    rec["main_static_center"] = '{"x": 2.0, "y": 0.5}'
    bad_data.write_text(json.dumps(rec) + "\n")
    not_sdr = tmp_path / "r2r.pt"
    save_checkpoint(not_sdr, {"problem": "r2r", "model": {}})
    cases = [
        (["evaluate", "sdr", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(bad_data)], "checkpoint file not found"),
        (["evaluate", "sdr", "--checkpoint", str(not_sdr), "--data", str(bad_data)], "not an SDR checkpoint"),
        (["train-sdr", "--out", str(tmp_path / "r"), "--set", f"data.train={bad_data}"], "bad.jsonl: 17: main_static_center"),
        (["train-sdr", "--set", "training.stepz=3"], "unknown config key"),
        (["train-sdr", "--set", "features.source=npy"], "features.path"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("valan: error:") and message in err and len(err.strip().splitlines()) == 1, err


def test_the_shipped_config_is_the_documented_defaults():
    from valan.config import load_config, to_dict
    from valan.configs import config_path
    from valan.problems.sdr.config import SDRConfig

    assert to_dict(load_config(config_path("sdr.yaml"), schema=SDRConfig)) == to_dict(SDRConfig())


def test_former_training_keys_fail_in_one_line_naming_the_new_key(tmp_path, capsys):
    from valan.problems.sdr.config import SDRConfig

    assert set(SDRConfig.RENAMED) == {f"training.{k}" for k in (
        "steps", "batch_size", "lr", "grad_clip", "eval_every", "checkpoint_every", "keep_last", "log_every",
        "eval_batch_size", "seed", "logdir")}
    for old, new in SDRConfig.RENAMED.items():
        assert main(["train-sdr", "--out", str(tmp_path / "r"), "--set", f"{old}=3"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"'{old}' was renamed: use '{new}'" in err[0], err
    old_file = tmp_path / "old_sdr.yaml"
    old_file.write_text("problem: sdr\ntraining:\n  steps: 5\n")
    assert main(["train-sdr", "--config", str(old_file), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "old_sdr.yaml" in err[0] and "use 'run.total_steps'" in err[0]
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_with_the_former_training_section_still_loads(tmp_path):
    from valan.config import to_dict
    from valan.problems.sdr.config import SDRConfig
    from valan.problems.sdr.training import make_model

    config = to_dict(SDRConfig())
    del config["run"], config["learning"]
    config["training"] = {"steps": 7, "batch_size": 5, "lr": 0.01, "grad_clip": 1.0, "eval_every": 3,
                          "checkpoint_every": 4, "keep_last": 2, "log_every": 1, "eval_batch_size": 8, "seed": 1,
                          "logdir": "runs/old"}
    model = make_model(SDRConfig().model, 6, 16)
    path = tmp_path / "old.pt"
    save_checkpoint(path, {"problem": "sdr", "config": config, "vocab": ["<PAD>", "<UNK>", "<EOS>", "a", "b", "c"],
                           "in_channels": 16, "model": model.state_dict()})
    loaded, _, _, _ = load_sdr_model(path)
    assert (loaded.run.total_steps, loaded.run.eval_every_steps, loaded.learning.batch_size, loaded.run.logdir) == \
           (7, 3, 5, "runs/old")
