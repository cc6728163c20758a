"""Panorama feature extraction: images -> CNN -> a cached feature store (``valan features extract``).

Two image layouts:

- ``r2r``: ``DIR/{scan}/{viewpoint}_{view}.{jpg,jpeg,png}``, one image per discretised view, ``view`` = 0..35 in the
  R2R order ``12 * elevation_level + heading_step`` (elevations -30, 0, +30 degrees; heading steps of 30 degrees
  clockwise from heading 0), as rendered by the Matterport3D simulator. Group = scan, node = viewpoint.
- ``equirect``: ``DIR/{panoid}.{jpg,jpeg,png}``, one equirectangular panorama per node (Street View). Group = a
  fixed name (``streetview``), node = the file name without extension. Each panorama is cut into square
  perspective crops (gnomonic projection) at every (pitch, heading) pair, view index
  ``pitch_index * len(headings) + heading_index``. The default, one row of 8 views at headings 0, 45, ..., 315
  and pitch 0 with a 60-degree field of view, is the layout the Street View environment reads
  (``valan.envs.streetview.views``); headings 0, 30, ..., 330 with pitches -30, 0, 30 give the R2R order.

Equirectangular convention: column ``x`` of a ``W``-wide panorama is longitude ``(x + 0.5) / W * 360 - 180``
degrees (pixel centres), i.e. the centre column is heading 0 and headings grow clockwise (to the right); row ``y``
of an ``H``-high panorama is latitude ``90 - (y + 0.5) / H * 180`` (up positive). A crop's heading and pitch are
in these panorama coordinates; for Street View the centre column faces the node's ``pano_yaw_angle``
(StreetLearn ``nodes.txt``), so a world heading is ``pano_yaw_angle + heading``.

The model is any CNN the user saved as TorchScript (``torch.jit.save``) or as a ``torch.export`` program
(``torch.export.save``), e.g. a torchvision ResNet-152 with its classifier replaced by ``Identity``. It must map a
float32 batch ``(N, 3, size, size)`` to ``(N, D)``. Loading runs no arbitrary pickle code: TorchScript archives
hold only TorchScript code and tensors, and ``torch.export`` archives are loaded with ``torch.load`` forced to
``weights_only`` (archives with opaque Python objects are refused).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from valan.errors import InputError
from valan.features.stores import StoreWriter, check_store_destination

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
R2R_IMAGE_NAME = re.compile(r"^(?P<viewpoint>.+)_(?P<view>\d+)\.(?:jpe?g|png)$", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------------------------
# Gnomonic (perspective) crops of equirectangular panoramas
# ----------------------------------------------------------------------------------------------------------------

def focal_length(fov_deg: float, size: int) -> float:
    """Pinhole focal length in pixels of a ``size``-pixel-wide crop with horizontal field of view ``fov_deg``."""
    return (size / 2) / math.tan(math.radians(fov_deg) / 2)


def perspective_rays(heading_deg: float, pitch_deg: float, fov_deg: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (radians, ``(size, size)`` each) seen through every pixel centre of a square pinhole
    camera looking at ``heading_deg`` (clockwise) and ``pitch_deg`` (up) with field of view ``fov_deg``.

    The ray of pixel ``(row i, column j)`` is ``f * forward + x * right + y * up`` with ``x = j + 0.5 - size / 2``,
    ``y = size / 2 - (i + 0.5)`` and ``f`` the focal length; it is converted to longitude/latitude in an
    (east, north, up) frame where heading 0 looks north.
    """
    h, p = math.radians(heading_deg), math.radians(pitch_deg)
    f = focal_length(fov_deg, size)
    c = np.arange(size, dtype=np.float64) + 0.5 - size / 2
    x, y = c[None, :], -c[:, None]
    forward = (math.sin(h) * math.cos(p), math.cos(h) * math.cos(p), math.sin(p))
    right = (math.cos(h), -math.sin(h), 0.0)
    up = (-math.sin(h) * math.sin(p), -math.cos(h) * math.sin(p), math.cos(p))
    east, north, upward = (f * fw + x * r + y * u for fw, r, u in zip(forward, right, up))
    return np.arctan2(east, north), np.arctan2(upward, np.hypot(east, north))


def sample_equirect(pano: np.ndarray, lon: np.ndarray, lat: np.ndarray, interpolation: str = "bilinear") -> np.ndarray:
    """Sample an equirectangular image ``(H, W, C)`` (any numeric dtype) at ``lon``/``lat`` (radians) -> float32.

    ``bilinear`` interpolates between the four nearest pixel centres, wrapping around in longitude and clamping at
    the top and bottom rows; ``nearest`` takes the nearest pixel. Values keep the image's range (0..255 for 8-bit).
    """
    height, width = pano.shape[:2]
    u = (lon / (2 * math.pi) + 0.5) * width - 0.5
    v = (0.5 - lat / math.pi) * height - 0.5
    if interpolation == "nearest":
        cols = np.floor(u + 0.5).astype(np.int64) % width
        rows = np.clip(np.floor(v + 0.5).astype(np.int64), 0, height - 1)
        return pano[rows, cols].astype(np.float32)
    if interpolation != "bilinear":
        raise InputError(f"interpolation must be 'bilinear' or 'nearest', not {interpolation!r}")
    u0, v0 = np.floor(u), np.floor(v)
    a, b = (u - u0)[..., None], (v - v0)[..., None]
    c0, c1 = u0.astype(np.int64) % width, (u0.astype(np.int64) + 1) % width
    r0, r1 = np.clip(v0.astype(np.int64), 0, height - 1), np.clip(v0.astype(np.int64) + 1, 0, height - 1)
    top = (1 - a) * pano[r0, c0] + a * pano[r0, c1]
    bottom = (1 - a) * pano[r1, c0] + a * pano[r1, c1]
    return ((1 - b) * top + b * bottom).astype(np.float32)


def equirect_crop(pano: np.ndarray, heading_deg: float, pitch_deg: float, fov_deg: float, size: int,
                  interpolation: str = "bilinear") -> np.ndarray:
    """The ``(size, size, C)`` float32 perspective view of ``pano`` at ``heading_deg``/``pitch_deg``."""
    lon, lat = perspective_rays(heading_deg, pitch_deg, fov_deg, size)
    return sample_equirect(pano, lon, lat, interpolation)


def panorama_width_for(fov_deg: float, size: int) -> int:
    """Panorama width (pixels) whose pixel spacing equals a crop's spacing at its centre: ``2 * pi * f``."""
    return math.ceil(2 * math.pi * focal_length(fov_deg, size))


# ----------------------------------------------------------------------------------------------------------------
# Images on disk
# ----------------------------------------------------------------------------------------------------------------

def read_rgb(path: Path, reduce_to_width: int | None = None) -> Image.Image:
    """Open an image as RGB; with ``reduce_to_width``, shrink it (box filter) when wider. ``InputError`` if unreadable."""
    try:
        with Image.open(path) as image:
            if reduce_to_width and image.width > reduce_to_width:
                height = max(1, round(reduce_to_width * image.height / image.width))
                image.draft("RGB", (reduce_to_width, height))  # JPEG: decode at a reduced scale, much faster
                return image.convert("RGB").resize((reduce_to_width, height), Image.Resampling.BOX)
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"unreadable image ({type(e).__name__}: {e})", source=str(path)) from None


def equirect_views(path: Path, headings_deg: Sequence[float], pitches_deg: Sequence[float], fov_deg: float,
                   size: int, interpolation: str = "bilinear") -> np.ndarray:
    """All perspective crops of one panorama file, ``(len(pitches) * len(headings), size, size, 3)`` in [0, 1].

    The panorama is first reduced (box filter) to the resolution the crops need, ``panorama_width_for``, so
    crops of a large panorama are not aliased and memory stays small.
    """
    pano = np.asarray(read_rgb(path, panorama_width_for(fov_deg, size)))
    crops = [equirect_crop(pano, h, p, fov_deg, size, interpolation) for p in pitches_deg for h in headings_deg]
    return np.stack(crops) / np.float32(255)


def r2r_views(paths: Sequence[Path], size: int) -> np.ndarray:
    """The per-view images of one viewpoint, ``(views, size, size, 3)`` in [0, 1]; ``size`` 0 keeps the native size
    (then all views must share it). Images are resized (bilinear, antialiased) to ``size`` x ``size``."""
    images = []
    for path in paths:
        image = read_rgb(path)
        if size and image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        if images and image.size != images[0].shape[1::-1]:
            raise InputError(f"image size {image.size} differs from the viewpoint's first view "
                             f"{images[0].shape[1::-1]}; pass --size to resize", source=str(path))
        images.append(np.asarray(image))
    return np.stack(images).astype(np.float32) / np.float32(255)


def list_r2r_images(images_dir: str | os.PathLike, views: int = 36) -> list[tuple[str, str, list[Path]]]:
    """``[(scan, viewpoint, [path of view 0, ..., view views-1])]`` from ``DIR/{scan}/{viewpoint}_{view}.jpg``.

    Files not matching the pattern are ignored. ``InputError`` names the scan, viewpoint and view for a missing,
    duplicated or out-of-range view.
    """
    root = _existing_dir(images_dir)
    found = []
    for scan_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        by_viewpoint: dict[str, dict[int, Path]] = {}
        for path in sorted(scan_dir.iterdir()):
            match = R2R_IMAGE_NAME.match(path.name)
            if not match or not path.is_file():
                continue
            viewpoint, view = match["viewpoint"], int(match["view"])
            if view >= views:
                raise InputError(f"view index {view} out of range 0..{views - 1}", source=str(path))
            other = by_viewpoint.setdefault(viewpoint, {}).setdefault(view, path)
            if other != path:
                raise InputError(f"two images for view {view} of viewpoint {viewpoint!r}: {other.name}, {path.name}",
                                 source=str(scan_dir))
        for viewpoint, paths in sorted(by_viewpoint.items()):
            missing = [v for v in range(views) if v not in paths]
            if missing:
                raise InputError(f"viewpoint {viewpoint!r} of scan {scan_dir.name!r} lacks view(s) "
                                 f"{', '.join(map(str, missing[:10]))}{' ...' if len(missing) > 10 else ''} "
                                 f"(expected {viewpoint}_0 .. {viewpoint}_{views - 1} .jpg/.png)", source=str(scan_dir))
            found.append((scan_dir.name, viewpoint, [paths[v] for v in range(views)]))
    if not found:
        raise InputError("no images found (expected DIR/{scan}/{viewpoint}_{view}.jpg)", source=str(root))
    return found


def list_equirect_images(images_dir: str | os.PathLike, group: str = "streetview") -> list[tuple[str, str, Path]]:
    """``[(group, panoid, path)]`` for every ``DIR/{panoid}.{jpg,jpeg,png}``, sorted by file name."""
    root = _existing_dir(images_dir)
    found = [(group, p.stem, p) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not found:
        raise InputError("no panoramas found (expected DIR/{panoid}.jpg)", source=str(root))
    stems = [node for _, node, _ in found]
    if len(set(stems)) != len(stems):
        duplicate = next(s for s in stems if stems.count(s) > 1)
        raise InputError(f"two panoramas named {duplicate!r} (different extensions)", source=str(root))
    return found


def _existing_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError("image folder not found", source=str(path))
    return path


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _weights_only_torch_load() -> Iterator[None]:
    """Force every ``torch.load`` inside to ``weights_only=True`` (torch.export.load would otherwise fall back
    to full pickle loading)."""
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_model(path: str | os.PathLike, device: str = "cpu") -> Callable:
    """Load a TorchScript module or a ``torch.export`` program from ``path`` onto ``device`` (evaluation mode)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", source=str(path))
    if not zipfile.is_zipfile(path):
        raise InputError("not a TorchScript (torch.jit.save) or torch.export (torch.export.save) archive",
                         source=str(path))
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    is_export = any(name.endswith("archive_format") or name.endswith("serialized_exported_program.json")
                    for name in names)
    is_script = any(name.endswith("constants.pkl") for name in names)
    try:
        if is_export:
            if any("/opaque_obj_" in name for name in names):
                raise InputError("torch.export archive holds opaque Python objects (pickles); refusing to load it",
                                 source=str(path))
            with _weights_only_torch_load():
                return torch.export.load(path).module().to(device)
        if is_script:
            model = torch.jit.load(str(path), map_location=device)
            model.eval()
            return model
    except (RuntimeError, ValueError, AssertionError, KeyError, OSError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the model: {message}", source=str(path)) from None
    raise InputError("zip archive is neither TorchScript (torch.jit.save) nor torch.export (torch.export.save)",
                     source=str(path))


def run_model(model: Callable, images: np.ndarray, *, batch_size: int, normalize: bool, device: str,
              model_name: str = "model") -> np.ndarray:
    """Features ``(N, D)`` float32 of ``images`` ``(N, H, W, 3)`` in [0, 1], by one forward pass.

    With ``normalize`` the ImageNet mean/std are applied. The batch is zero-padded to ``batch_size`` (so programs
    exported with a fixed batch size work) and the padding rows dropped. ``InputError`` if the model fails or its
    output is not ``(N, D)``.
    """
    import torch

    if normalize:
        images = (images - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    count = x.shape[0]
    if batch_size > count:
        x = torch.cat([x, x.new_zeros((batch_size - count, *x.shape[1:]))])
    try:
        with torch.inference_mode():
            y = model(x.contiguous().to(device))
    except Exception as e:  # noqa: BLE001 -- any failure inside the user's model is reported as bad input
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"model failed on input of shape {tuple(x.shape)}: {message}", source=model_name) from None
    if not isinstance(y, torch.Tensor) or y.ndim != 2 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise InputError(f"model output is {shape}, expected a 2-D (N, D) tensor with N = {x.shape[0]} "
                         "(end the model with global pooling and flatten)", source=model_name)
    return y[:count].float().cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------------------------

def _prefetch(load: Callable[[Any], np.ndarray], items: Iterable[Any], workers: int) -> Iterator[np.ndarray]:
    """``load(item)`` for each item in order, computed by ``workers`` threads at most ``2 * workers`` ahead."""
    if workers <= 0:
        yield from map(load, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = []
        for item in items:
            pending.append(pool.submit(load, item))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def extract_features(nodes: Sequence[tuple[str, str, Any]], load_views: Callable[[Any], np.ndarray], model: Callable,
                     out: str | os.PathLike, *, views: int, batch_size: int = 64, normalize: bool = True,
                     device: str = "cpu", dtype: str = "float32", workers: int = 2, metadata: dict | None = None,
                     overwrite: bool = False, progress: bool = True, model_name: str = "model") -> dict[str, Any]:
    """Run ``model`` over the views of every node and write a cached store at ``out`` (atomically).

    ``nodes`` are ``(group, node, source)``; ``load_views(source)`` gives the node's ``(views, H, W, 3)`` images in
    [0, 1]. Each forward pass takes whole panoramas: ``max(1, batch_size // views)`` of them. Returns a summary.
    """
    check_store_destination(Path(out), overwrite)
    per_batch = max(1, batch_size // views)
    batches = [nodes[i:i + per_batch] for i in range(0, len(nodes), per_batch)]

    def load_batch(batch: Sequence[tuple[str, str, Any]]) -> np.ndarray:
        arrays = []
        for group, node, source in batch:
            images = load_views(source)
            if images.shape[0] != views:
                raise InputError(f"{images.shape[0]} views, expected {views}", source=f"{group}/{node}")
            arrays.append(images)
        return np.concatenate(arrays)

    with contextlib.ExitStack() as stack:
        writer = None
        bar = stack.enter_context(tqdm(total=len(nodes), desc="extract", unit="pano", disable=not progress))
        for batch, images in zip(batches, _prefetch(load_batch, batches, workers)):
            features = run_model(model, images, batch_size=per_batch * views, normalize=normalize, device=device,
                                 model_name=model_name)
            if writer is None:
                writer = stack.enter_context(StoreWriter(out, len(nodes), views, features.shape[1], dtype=dtype,
                                                         source=model_name, metadata=metadata, overwrite=overwrite))
            for k, (group, node, _) in enumerate(batch):
                writer.write(group, node, features[k * views:(k + 1) * views])
            bar.update(len(batch))
    assert writer is not None
    return {"rows": len(nodes), "views": views, "dim": writer.dim, "dtype": dtype,
            "bytes": len(nodes) * views * writer.dim * np.dtype(dtype).itemsize}
