"""Panorama feature extraction: gnomonic crops, image layouts, TorchScript / torch.export models, the CLI."""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from valan.cli import main
from valan.errors import InputError
from valan.features.extraction import (IMAGENET_MEAN, IMAGENET_STD, equirect_crop, equirect_views, focal_length, list_r2r_images, load_model,
                              perspective_rays, sample_equirect)
from valan.features.stores import CachedFeatures

torch.set_num_threads(1)


def snyder_inverse_gnomonic(x: np.ndarray, y: np.ndarray, lon0: float, lat0: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse gnomonic projection (Snyder 1987, eqs. 20-14, 22-5, 22-6) of plane coordinates x (right), y (up) in
    units of the focal length, for a tangent point (lon0, lat0) in radians; longitude grows to the right."""
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        lat = np.where(rho == 0, lat0, np.arcsin(np.cos(c) * math.sin(lat0) + y * np.sin(c) * math.cos(lat0) / rho))
    lon = lon0 + np.arctan2(x * np.sin(c), rho * math.cos(lat0) * np.cos(c) - y * math.sin(lat0) * np.sin(c))
    return (lon + math.pi) % (2 * math.pi) - math.pi, lat


@pytest.mark.parametrize("heading, pitch, fov, size", [(0, 0, 90, 9), (75, 20, 60, 16), (-140, -45, 100, 11),
                                                       (200, 70, 30, 8)])
def test_perspective_rays_match_the_inverse_gnomonic_projection(heading, pitch, fov, size):
    lon, lat = perspective_rays(heading, pitch, fov, size)
    f = focal_length(fov, size)
    centres = np.arange(size) + 0.5 - size / 2
    x, y = np.meshgrid(centres / f, -centres / f)
    expected_lon, expected_lat = snyder_inverse_gnomonic(x, y, math.radians(heading), math.radians(pitch))
    wrapped = (lon - expected_lon + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(wrapped, 0, atol=1e-12)
    np.testing.assert_allclose(lat, expected_lat, atol=1e-12)


def coordinate_panorama(height: int = 180, width: int = 360) -> np.ndarray:
    """Channels: longitude and latitude (degrees) of each pixel centre, in the documented convention."""
    lon = ((np.arange(width) + 0.5) / width) * 360 - 180
    lat = 90 - ((np.arange(height) + 0.5) / height) * 180
    return np.stack(np.broadcast_arrays(lon[None, :], lat[:, None]), axis=-1).astype(np.float64)


@pytest.mark.parametrize("heading", [-90.0, 0.0, 45.0, 120.0])
def test_crop_centre_has_the_heading_and_fov_90_spans_45_degrees_each_side(heading):
    size = 101
    crop = equirect_crop(coordinate_panorama(), heading, 0.0, 90.0, size)
    centre = size // 2
    assert crop[centre, centre, 0] == pytest.approx(heading, abs=1e-3)
    assert crop[centre, centre, 1] == pytest.approx(0.0, abs=1e-3)
    # pixel centres of the outer columns lie half a pixel inside the +-45 degree edges: atan((size - 1) / size)
    half_span = math.degrees(math.atan((size - 1) / size))
    assert crop[centre, 0, 0] == pytest.approx(heading - half_span, abs=1e-3)
    assert crop[centre, -1, 0] == pytest.approx(heading + half_span, abs=1e-3)
    assert abs(half_span - 45) < 0.3
    # the horizon row stays at latitude 0 (a great circle through the centre projects to a straight line)
    np.testing.assert_allclose(crop[centre, :, 1], 0, atol=1e-3)


def test_crop_pitch_moves_the_centre_latitude_and_the_top_row_is_up():
    crop = equirect_crop(coordinate_panorama(), 30.0, 25.0, 60.0, 51)
    assert crop[25, 25, 1] == pytest.approx(25.0, abs=1e-3)
    assert crop[0, 25, 1] > crop[25, 25, 1] > crop[-1, 25, 1]
    assert crop[0, 25, 1] == pytest.approx(25 + math.degrees(math.atan(50 / 51 * math.tan(math.radians(30)))), abs=1e-3)


def test_a_landmark_appears_where_a_clockwise_heading_puts_it():
    """A bright patch centred at longitude 100.25 degrees on the horizon, seen from heading 130, lies 29.75 degrees
    to the left of the crop's centre."""
    pano = np.zeros((360, 720), np.float64)
    pano[176:184, 556:565] = 1.0  # pixel centres: latitude -1.75..1.75, longitude 98.25..102.25
    size, fov = 64, 90.0
    crop = equirect_crop(pano[..., None], 130.0, 0.0, fov, size)[..., 0]
    rows, cols = np.nonzero(crop > 0.5)
    expected = size / 2 - 0.5 + focal_length(fov, size) * math.tan(math.radians(100.25 - 130))
    assert abs(cols.mean() - expected) < 0.5 and abs(rows.mean() - (size / 2 - 0.5)) < 0.5
    assert equirect_crop(pano[..., None], 130.0 + 180.0, 0.0, fov, size).max() == 0  # behind the camera: not seen


def test_crops_wrap_around_the_seam():
    """Across longitude +-180 the sampled direction stays continuous (cos/sin of longitude as colours)."""
    lon = np.radians(coordinate_panorama(180, 720)[..., 0])
    pano = np.stack([np.cos(lon), np.sin(lon)], axis=-1)
    crop = equirect_crop(pano, 180.0, 0.0, 60.0, 33)
    expected_lon, _ = perspective_rays(180.0, 0.0, 60.0, 33)
    recovered = np.arctan2(crop[..., 1], crop[..., 0])
    np.testing.assert_allclose(np.cos(recovered - expected_lon), 1, atol=1e-4)


def test_nearest_sampling_returns_panorama_pixels_and_rejects_unknown_modes():
    rng = np.random.default_rng(0)
    pano = rng.integers(0, 255, (50, 100, 3), dtype=np.uint8)
    crop = equirect_crop(pano, 10, -10, 70, 12, interpolation="nearest")
    pixels = {tuple(p) for p in pano.reshape(-1, 3)}
    assert all(tuple(p) in pixels for p in crop.reshape(-1, 3).astype(np.uint8))
    with pytest.raises(InputError, match="interpolation"):
        sample_equirect(pano, np.zeros(1), np.zeros(1), "cubic")


def test_large_panoramas_are_reduced_before_cropping_so_crops_do_not_alias(tmp_path):
    """A one-pixel checkerboard (mean 0.5) seen through a coarse crop is uniform grey, not a moire of 0s and 1s."""
    checker = (np.indices((1000, 2000)).sum(axis=0) % 2 * 255).astype(np.uint8)
    Image.fromarray(np.repeat(checker[..., None], 3, axis=-1)).save(tmp_path / "checker.png")
    views = equirect_views(tmp_path / "checker.png", [0.0, 90.0], [0.0], 60.0, 16)
    assert views.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(views, 0.5, atol=0.03)
    naive = equirect_crop(checker[..., None], 0.0, 0.0, 60.0, 16, interpolation="nearest") / 255
    assert naive.std() > 0.3  # without the reduction the same crop aliases


# ---------------------------------------------------------------------------------------------------- fixtures

class TinyCNN(torch.nn.Module):
    def __init__(self, pool: bool = True):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        return y.mean(dim=(2, 3)) if self.pool else y


@pytest.fixture(scope="module")
def tiny_cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture
def r2r_images(tmp_path):
    """Two scans, three viewpoints, 36 random 20 x 24 PNG views each."""
    rng = np.random.default_rng(1)
    root = tmp_path / "images"
    for scan, viewpoint in [("scanA", "v1"), ("scanA", "v2"), ("scanB", "v3")]:
        (root / scan).mkdir(parents=True, exist_ok=True)
        for view in range(36):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / scan / f"{viewpoint}_{view}.png")
    (root / "scanA" / "notes.txt").write_text("ignored")
    return root


def expected_features(model: torch.nn.Module, images: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Run the model directly on (N, H, W, 3) images in [0, 1]."""
    if normalize:
        images = (images - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    with torch.no_grad():
        return model(torch.from_numpy(images).float().permute(0, 3, 1, 2)).numpy()


# ---------------------------------------------------------------------------------------------------- end to end

def test_extract_r2r_layout_with_torchscript_equals_running_the_model(tmp_path, r2r_images, tiny_cnn, capsys):
    model_path = tmp_path / "cnn.pt"
    torch.jit.script(tiny_cnn).save(str(model_path))
    out = tmp_path / "store"
    assert main(["features", "extract", "--images", str(r2r_images), "--model", str(model_path), "--out", str(out),
                 "--size", "16", "--batch-size", "50", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["rows"], summary["views"], summary["dim"]) == (3, 36, 6)
    store = CachedFeatures(out)
    assert store.keys() == [("scanA", "v1"), ("scanA", "v2"), ("scanB", "v3")]
    assert store.metadata["layout"] == "r2r" and store.metadata["size"] == 16
    for scan, viewpoint in store.keys():
        views = [Image.open(r2r_images / scan / f"{viewpoint}_{v}.png").convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
                 for v in range(36)]
        images = np.stack([np.asarray(v) for v in views]).astype(np.float64) / 255
        np.testing.assert_allclose(store.get(scan, viewpoint), expected_features(tiny_cnn, images), rtol=1e-5, atol=1e-6)


def test_extract_equirect_with_fixed_batch_export_program(tmp_path, tiny_cnn):
    """A torch.export program with a static batch of 8 works: batches are padded to the batch size."""
    rng = np.random.default_rng(2)
    (tmp_path / "panos").mkdir()
    panos = {}
    for panoid in ["p1", "p2", "p3"]:
        panos[panoid] = rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)
        Image.fromarray(panos[panoid]).save(tmp_path / "panos" / f"{panoid}.png")
    program = torch.export.export(tiny_cnn, (torch.zeros(8, 3, 32, 32),))
    torch.export.save(program, tmp_path / "cnn.pt2")
    headings, pitches = [0.0, 90.0, 180.0, 270.0], [-20.0, 20.0]
    out = tmp_path / "store"
    assert main(["features", "extract", "--layout", "equirect", "--images", str(tmp_path / "panos"),
                 "--model", str(tmp_path / "cnn.pt2"), "--out", str(out), "--size", "32", "--fov", "90",
                 "--headings", "0,90,180,270", "--pitches=-20,20", "--batch-size", "8", "--normalize", "none",
                 "--group", "manhattan", "--quiet"]) == 0
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # forced only while loading the program
    store = CachedFeatures(out)
    assert store.keys() == [("manhattan", "p1"), ("manhattan", "p2"), ("manhattan", "p3")]
    assert (store.views, store.metadata["headings_deg"], store.metadata["pitches_deg"]) == (8, headings, pitches)
    for panoid, pano in panos.items():
        # the crops need a panorama 2 * pi * f = 101 px wide: this 80 px one is used as it is
        crops = np.stack([equirect_crop(pano, h, p, 90.0, 32) for p in pitches for h in headings]) / 255
        np.testing.assert_allclose(store.get("manhattan", panoid), expected_features(tiny_cnn, crops, normalize=False),
                                   rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- errors

def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["features", "extract", *map(str, args), "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_missing_and_unreadable_images_are_named(tmp_path, r2r_images, tiny_cnn, capsys):
    model_path = tmp_path / "cnn.pt"
    torch.jit.script(tiny_cnn).save(str(model_path))
    (r2r_images / "scanB" / "v3_17.png").unlink()
    code, err = run_cli(capsys, "--images", r2r_images, "--model", model_path, "--out", tmp_path / "s")
    assert code == 2 and "viewpoint 'v3' of scan 'scanB' lacks view(s) 17" in err
    with pytest.raises(InputError, match="view index 36 out of range"):
        (r2r_images / "scanA" / "v1_36.png").write_bytes(b"")
        list_r2r_images(r2r_images)
    (r2r_images / "scanA" / "v1_36.png").unlink()
    Image.new("RGB", (20, 24)).save(r2r_images / "scanB" / "v3_17.png")
    (r2r_images / "scanA" / "v2_5.png").write_bytes(b"not an image")
    code, err = run_cli(capsys, "--images", r2r_images, "--model", model_path, "--out", tmp_path / "s")
    assert code == 2 and "v2_5.png: unreadable image" in err
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob(".s.*"))  # no half-written store


def test_model_errors(tmp_path, r2r_images, capsys):
    no_pool = tmp_path / "nopool.pt"
    torch.jit.script(TinyCNN(pool=False).eval()).save(str(no_pool))
    code, err = run_cli(capsys, "--images", r2r_images, "--model", no_pool, "--out", tmp_path / "s", "--size", "16")
    assert code == 2 and "model output is (72, 6, 7, 7), expected a 2-D (N, D) tensor" in err
    pickle_file = tmp_path / "weights.pt"
    torch.save(TinyCNN().state_dict(), pickle_file)
    code, err = run_cli(capsys, "--images", r2r_images, "--model", pickle_file, "--out", tmp_path / "s")
    assert code == 2 and "neither TorchScript" in err
    (tmp_path / "junk.pt").write_text("junk")
    code, err = run_cli(capsys, "--images", r2r_images, "--model", tmp_path / "junk.pt", "--out", tmp_path / "s")
    assert code == 2 and "not a TorchScript" in err
    code, err = run_cli(capsys, "--images", tmp_path / "absent", "--model", no_pool, "--out", tmp_path / "s")
    assert code == 2 and "image folder not found" in err
    with pytest.raises(InputError, match="model file not found"):
        load_model(tmp_path / "absent.pt")


def test_export_archives_with_pickled_python_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/archive_format", "pt2")
        archive.writestr("evil/data/constants/opaque_obj_0", b"cos\nsystem\n(S'echo owned'\ntR.")
    with pytest.raises(InputError, match="opaque Python objects"):
        load_model(path)


def test_equirect_defaults_are_the_street_view_layout(tmp_path, tiny_cnn):
    (tmp_path / "panos").mkdir()
    Image.new("RGB", (64, 32), (200, 10, 10)).save(tmp_path / "panos" / "only.jpg")
    model_path = tmp_path / "cnn.pt"
    torch.jit.script(tiny_cnn).save(str(model_path))
    assert main(["features", "extract", "--layout", "equirect", "--images", str(tmp_path / "panos"), "--model",
                 str(model_path), "--out", str(tmp_path / "store"), "--size", "8", "--quiet"]) == 0
    store = CachedFeatures(tmp_path / "store")
    assert store.keys() == [("streetview", "only")] and store.views == 8
    assert store.metadata["headings_deg"] == [45.0 * i for i in range(8)] and store.metadata["pitches_deg"] == [0.0]
    features = store.get("streetview", "only")
    np.testing.assert_allclose(features, features[:1].repeat(8, axis=0), rtol=1e-5)  # uniform panorama: equal views
