"""Touchdown SDR data: examples, panorama feature maps, Gaussian targets and batches.

The task (Chen et al., CVPR 2019): given the spatial description ``td_location_text`` and the panorama where
the route ends, find where Touchdown the bear is hidden.

Data
    Touchdown JSON lines. Each route gives up to three examples, one per panorama ``main`` / ``pre`` / ``post``
    (``{prefix}_pano``, ``{prefix}_static_center``); all share the route's ``td_location_text``. The Touchdown
    SDR code (lil-lab/touchdown ``sdr/loader.py``) uses all three; the pre/post ones are "propagated" from the
    main annotation. ``panoramas`` chooses which to load (default ``("main",)``). ``*_static_center`` is a JSON
    string ``{"x": width_ratio, "y": height_ratio}`` giving the bear's position as fractions of the whole
    equirectangular panorama's width (x, to the right) and height (y, downwards); ``-1`` means the bear is not
    visible in that panorama: such examples are skipped and counted, as in the Touchdown code.
    ``*_original_width/height`` and ``*_center`` refer to the perspective crop the annotator saw, not the
    panorama, and are not used.

Target
    A Gaussian over the feature-map cells, centred on the centre of the cell containing the bear, evaluated at
    cell centres with standard deviation ``sigma_px`` (pixels of the 3712 x 800 panorama of
    :mod:`valan.problems.sdr.metrics`, isotropic; default 24, i.e. 3 cells of the Touchdown grid) and normalised
    to sum to 1. Its unique most probable cell is the bear's cell. The panorama's horizontal wrap-around is
    ignored, as in the Touchdown and VALAN code.

Feature maps
    ``PanoramaFeatureMaps.get(panoid)`` gives a ``(C, H, W)`` float32 map, row 0 at the top, column 0 at the
    panorama's left edge (x = 0), covering the whole panorama. Sources: ``NpyFeatureMaps`` (one
    ``{panoid}.npy`` per panorama, the layout of the Touchdown SDR code's feature files, e.g. ResNet-18 maps of
    the eight perspective slices side by side, 100 x 464 x 128) and ``SyntheticFeatureMaps``, which carry **no
    visual information**: results with them come from the language and the target positions' statistics
    alone. Synthetic maps are unique per panorama, so a model can also memorise the targets of the panoramas
    it trained on: score held-out panoramas. The pooled per-view vectors of ``valan.features.stores`` stores (8 or
    36 views) are too coarse for SDR and are not used here.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from valan.errors import InputError
from valan.features.stores import SyntheticFeatures
from valan.io import read_jsonl
from valan.problems.sdr.metrics import PANORAMA_HEIGHT_PX, PANORAMA_WIDTH_PX, PixelSpace, target_cell
from valan.text import Vocabulary

PANORAMA_PREFIXES = ("main", "pre", "post")


# ----------------------------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class SDRExample:
    """One SDR example: a description and the bear's position in one panorama.

    ``example_id`` is ``"{route_id}"`` for the main panorama and ``"{route_id}/{prefix}"`` for pre/post.
    ``x``, ``y`` are fractions of the panorama's width and height in ``[0, 1]``.
    """

    example_id: str
    route_id: str
    panorama: str
    panoid: str
    text: str
    x: float
    y: float

    @property
    def propagated(self) -> bool:
        return self.panorama != "main"


def parse_static_center(value: Any, source: str | None = None, record: str | None = None,
                        field: str = "main_static_center") -> tuple[float, float] | None:
    """``(x, y)`` ratios from a static-centre field (JSON string or dict); ``None`` when not visible (-1)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{field} is not valid JSON: {value[:60]!r}", source=source, record=record) from None
    if not isinstance(value, dict) or not {"x", "y"} <= value.keys():
        raise InputError(f"{field} must be {{\"x\": width_ratio, \"y\": height_ratio}}, got {value!r}",
                         source=source, record=record)
    try:
        x, y = float(value["x"]), float(value["y"])
    except (TypeError, ValueError):
        raise InputError(f"{field} has non-numeric x/y: {value!r}", source=source, record=record) from None
    if x == -1 or y == -1:
        return None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise InputError(f"{field} ratios must lie in [0, 1] (or be -1), got x={x}, y={y}",
                         source=source, record=record)
    return x, y


def parse_sdr(records: Iterable[Any], source: str | None = None,
              panoramas: Sequence[str] = ("main",)) -> tuple[list[SDRExample], int]:
    """SDR examples from Touchdown records; returns ``(examples, number skipped as not visible)``."""
    unknown = [p for p in panoramas if p not in PANORAMA_PREFIXES]
    if unknown or not panoramas:
        raise InputError(f"panoramas must be a non-empty subset of {list(PANORAMA_PREFIXES)}, got {list(panoramas)}",
                         source=source)
    examples: list[SDRExample] = []
    skipped = 0
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(f"record {i} is not a JSON object", source=source)
        if "route_id" not in rec:
            raise InputError(f"record {i} has no route_id", source=source)
        route_id = str(rec["route_id"])
        text = rec.get("td_location_text")
        if not isinstance(text, str) or not text.strip():
            raise InputError("missing or empty td_location_text", source=source, record=route_id)
        for prefix in panoramas:
            panoid = rec.get(f"{prefix}_pano")
            if not isinstance(panoid, str) or not panoid:
                raise InputError(f"missing {prefix}_pano", source=source, record=route_id)
            field = f"{prefix}_static_center"
            if field not in rec:
                raise InputError(f"missing {field}", source=source, record=route_id)
            center = parse_static_center(rec[field], source, route_id, field)
            if center is None:
                skipped += 1
                continue
            example_id = route_id if prefix == "main" else f"{route_id}/{prefix}"
            if example_id in seen:
                raise InputError("duplicate route_id", source=source, record=route_id)
            seen.add(example_id)
            examples.append(SDRExample(example_id, route_id, prefix, panoid, text, *center))
    return examples, skipped


def load_sdr(path: str | os.PathLike, panoramas: Sequence[str] = ("main",)) -> tuple[list[SDRExample], int]:
    """Read SDR examples from a Touchdown JSON-lines file; see :func:`parse_sdr`."""
    examples, skipped = parse_sdr(read_jsonl(path), str(path), panoramas)
    if not examples:
        raise InputError("no SDR example with a visible target", source=str(path))
    return examples, skipped


def split_by_route(examples: Sequence[SDRExample], eval_fraction: float,
                   seed: int = 0) -> tuple[list[SDRExample], list[SDRExample]]:
    """Hold out ``eval_fraction`` of the routes (all of a route's panoramas go to the same side)."""
    if not 0.0 < eval_fraction < 1.0:
        raise InputError(f"eval_fraction must lie strictly between 0 and 1, got {eval_fraction}")
    routes = sorted({e.route_id for e in examples})
    if len(routes) < 2:
        raise InputError("need at least two routes to hold some out for evaluation")
    rng = np.random.default_rng(seed)
    n_eval = min(len(routes) - 1, max(1, round(eval_fraction * len(routes))))
    held_out = set(rng.permutation(routes)[:n_eval].tolist())
    return [e for e in examples if e.route_id not in held_out], [e for e in examples if e.route_id in held_out]


def sample_data_path() -> Path:
    """The bundled Touchdown sample, or an ``InputError`` saying how to name a file when it is not installed."""
    from valan.data import sample_path

    folder = sample_path("streetview")
    found = sorted(folder.glob("touchdown*.jsonl")) if folder.is_dir() else []
    if not found:
        raise InputError("no bundled Touchdown sample in valan/data/streetview; pass --set data.train=FILE "
                         "(e.g. ../shared/data/streetview/touchdown_unseen_dev_sample.jsonl)")
    return found[0]


def resolve_data_path(name: str) -> Path:
    """``sample`` -> the bundled sample; anything else is a path."""
    return sample_data_path() if name == "sample" else Path(os.path.expanduser(name))


# ------------------------------------------------------------------------------------------------ targets


def gaussian_heatmap(x: float, y: float, space: PixelSpace, sigma_px: float) -> np.ndarray:
    """Target distribution ``(H, W)`` float32 summing to 1: an isotropic Gaussian (std ``sigma_px`` pixels)
    centred on the centre of the cell containing the point at ratios ``(x, y)``, evaluated at the cell centres.

    Centring on the cell (rather than the exact point) makes that cell the unique peak, also for points on a
    cell boundary, so the target's argmax is always :func:`target_cell`.
    """
    if sigma_px <= 0:
        raise InputError(f"target sigma must be positive (pixels), got {sigma_px}")
    row, col = target_cell(x, y, space.grid_height, space.grid_width)
    dx = (np.arange(space.grid_width) - col) * space.cell_width_px
    dy = (np.arange(space.grid_height) - row) * space.cell_height_px
    heat = np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2.0 * sigma_px ** 2))  # 1 at the peak: no underflow
    return (heat / heat.sum()).astype(np.float32)


# ------------------------------------------------------------------------------------------ feature maps


class PanoramaFeatureMaps(ABC):
    """Per-panorama feature maps ``(channels, height, width)``: row 0 at the top, column 0 at x = 0."""

    channels: int
    height: int
    width: int
    synthetic: bool = False

    @abstractmethod
    def get(self, panoid: str) -> np.ndarray:
        """The ``(C, H, W)`` float32 map of ``panoid``; ``InputError`` when missing or of the wrong shape."""

    def check_covers(self, panoids: Sequence[str]) -> None:
        """``InputError`` when a panorama of ``panoids`` has no map (checked before training starts; synthetic
        maps cover every panorama)."""

    def batch(self, panoids: Sequence[str]) -> np.ndarray:
        """``(len(panoids), C, H, W)`` float32."""
        out = np.empty((len(panoids), self.channels, self.height, self.width), dtype=np.float32)
        for i, panoid in enumerate(panoids):
            out[i] = self.get(panoid)
        return out


class SyntheticFeatureMaps(PanoramaFeatureMaps):
    """Deterministic Gaussian maps seeded by the panorama id (via ``SyntheticFeatures``).

    They carry **no visual information**: whatever a model learns with them comes from the text and from where
    targets tend to lie.
    """

    synthetic = True

    def __init__(self, channels: int = 16, height: int = 25, width: int = 116, seed: int = 0):
        self.channels, self.height, self.width = channels, height, width
        self._store = SyntheticFeatures(dim=channels, views=height * width, seed=seed)

    def get(self, panoid: str) -> np.ndarray:
        views = self._store.get("touchdown-sdr", panoid)  # (H*W, C)
        return np.ascontiguousarray(views.T.reshape(self.channels, self.height, self.width))


class NpyFeatureMaps(PanoramaFeatureMaps):
    """One NumPy file per panorama: ``{directory}/{panoid}.npy``, memory-mapped.

    ``layout="hwc"`` (default) reads ``(H, W, C)`` arrays, as the Touchdown SDR code stores its ResNet-18 maps
    (``100 x 464 x 128``); ``layout="chw"`` reads ``(C, H, W)``. All panoramas must share one shape; any float
    dtype is converted to float32.
    """

    def __init__(self, directory: str | os.PathLike, layout: str = "hwc"):
        if layout not in ("hwc", "chw"):
            raise InputError(f"feature map layout must be 'hwc' or 'chw', got {layout!r}")
        self.directory, self.layout = Path(directory), layout
        if not self.directory.is_dir():
            raise InputError("feature map directory not found", source=str(self.directory))
        first = next(iter(sorted(self.directory.glob("*.npy"))), None)
        if first is None:
            raise InputError("no .npy feature maps in the directory", source=str(self.directory))
        shape = self._load(first).shape
        self.channels, self.height, self.width = (shape[2], shape[0], shape[1]) if layout == "hwc" else shape

    def _load(self, path: Path) -> np.ndarray:
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(f"not a readable .npy array ({e})", source=str(path)) from None
        if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
            raise InputError(f"expected a 3-d float array, got shape {array.shape} dtype {array.dtype}",
                             source=str(path))
        return array

    def check_covers(self, panoids: Sequence[str]) -> None:
        missing = [p for p in panoids if not (self.directory / f"{p}.npy").is_file()]
        if missing:
            raise InputError(f"no feature map ({missing[0]}.npy) for {len(missing)} of the data's {len(panoids)} "
                             "panoramas", source=str(self.directory))

    def get(self, panoid: str) -> np.ndarray:
        path = self.directory / f"{panoid}.npy"
        if not path.is_file():
            raise InputError(f"no feature map for panorama {panoid}", source=str(path))
        array = self._load(path)
        chw = array.transpose(2, 0, 1) if self.layout == "hwc" else array
        if chw.shape != (self.channels, self.height, self.width):
            raise InputError(f"feature map shape {array.shape} differs from the first map's "
                             f"(C, H, W) = {(self.channels, self.height, self.width)} in layout {self.layout}",
                             source=str(path))
        return np.asarray(chw, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- batches


@dataclass
class SDRBatch:
    """Arrays for one batch: ``features`` (B, C, H, W) float32, ``text`` (B, L) int64, ``text_length`` (B,)
    int64, ``target`` (B, H, W) float32 distributions, ``target_cell`` (B, 2) int64 ``(row, col)``."""

    example_ids: list[str]
    features: np.ndarray
    text: np.ndarray
    text_length: np.ndarray
    target: np.ndarray
    target_cell: np.ndarray


class SDRDataset:
    """Examples + vocabulary + feature maps -> :class:`SDRBatch` es (text encoded once, maps read per batch)."""

    def __init__(self, examples: Sequence[SDRExample], vocab: Vocabulary, feature_maps: PanoramaFeatureMaps,
                 max_text_length: int = 80, sigma_px: float = 24.0,
                 width_px: float = PANORAMA_WIDTH_PX, height_px: float = PANORAMA_HEIGHT_PX):
        if not examples:
            raise InputError("an SDR dataset needs at least one example")
        self.examples = list(examples)
        self.feature_maps = feature_maps
        self.space = PixelSpace(feature_maps.height, feature_maps.width, width_px, height_px)
        self.sigma_px = sigma_px
        encoded = [vocab.encode(e.text, max_text_length) for e in self.examples]
        self.text = np.stack([ids for ids, _ in encoded])
        self.text_length = np.array([n for _, n in encoded], dtype=np.int64)
        self.cells = np.array([target_cell(e.x, e.y, self.space.grid_height, self.space.grid_width)
                               for e in self.examples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices: Sequence[int]) -> SDRBatch:
        examples = [self.examples[i] for i in indices]
        return SDRBatch(
            example_ids=[e.example_id for e in examples],
            features=self.feature_maps.batch([e.panoid for e in examples]),
            text=self.text[list(indices)],
            text_length=self.text_length[list(indices)],
            target=np.stack([gaussian_heatmap(e.x, e.y, self.space, self.sigma_px) for e in examples]),
            target_cell=self.cells[list(indices)],
        )

    def batches(self, batch_size: int) -> Iterator[SDRBatch]:
        """Every example once, in order."""
        for start in range(0, len(self), batch_size):
            yield self.batch(range(start, min(start + batch_size, len(self))))

    def sample_batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[SDRBatch]:
        """Endless shuffled epochs."""
        while True:
            order = rng.permutation(len(self))
            for start in range(0, max(len(self) - batch_size, 0) + 1, batch_size):  # drops a short last batch
                yield self.batch(order[start:start + batch_size].tolist())
