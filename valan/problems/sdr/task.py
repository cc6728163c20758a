"""Touchdown spatial description resolution (SDR): examples, panorama feature maps, targets and metrics.

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

Pixel space
    Distances are reported in pixels of the panorama as the published SDR models see it: **3712 x 800 pixels**
    (width x height). This is the space of Chen et al.'s and VALAN's SDR code: eight perspective slices of the
    panorama, each 800 pixels high, go through a ResNet-18 to a 128 x 100 x 464 feature map, and a feature
    cell spans 8 x 8 pixels (VALAN ``touchdown/sdr/train_eager.py``: ``RESOLUTION_MULTIPLIER = 8``; the Touchdown
    ``sdr/predict.py`` multiplies cell distances by 8 likewise). A static centre ``(x, y)`` is the pixel
    ``(x * 3712, y * 800)``. Other feature-map sizes keep this pixel space: a cell spans ``3712 / W`` by
    ``800 / H`` pixels.

Target
    A Gaussian over the feature-map cells, centred on the centre of the cell containing the bear, evaluated at
    cell centres with standard deviation ``sigma_px`` (pixels of the 3712 x 800 panorama, isotropic; default 24,
    i.e. 3 cells of the Touchdown grid) and normalised to sum to 1. Its unique most probable cell is the bear's
    cell. The panorama's horizontal wrap-around is ignored, as in the Touchdown and VALAN code.

Metrics (Chen et al.)
    The prediction is the most probable cell. Its distance to the bear's cell, in pixels (cell offsets times
    the cell size in pixels, as in the Touchdown and VALAN code), gives ``acc@40``, ``acc@80``, ``acc@120``:
    the fraction of examples with distance strictly below 40 / 80 / 120 pixels, and ``mean_distance`` (pixels).

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

import dataclasses
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from valan.errors import InputError
from valan.features.stores import SyntheticFeatures
from valan.io import read_jsonl
from valan.text import Vocabulary

PANORAMA_WIDTH_PX = 3712
PANORAMA_HEIGHT_PX = 800
THRESHOLDS_PX = (40, 80, 120)
PANORAMA_PREFIXES = ("main", "pre", "post")
METRIC_NAMES = tuple(f"acc@{t}" for t in THRESHOLDS_PX) + ("mean_distance", "num_examples")
SYNTHETIC_NOTE = ("note: synthetic feature maps carry no visual information; these SDR results come from the text "
                  "and from where targets tend to lie, not from seeing the panorama")


@dataclass(frozen=True)
class PixelSpace:
    """The panorama's size in pixels (width x height) and the feature grid's size in cells (height x width)."""

    grid_height: int
    grid_width: int
    width_px: float = PANORAMA_WIDTH_PX
    height_px: float = PANORAMA_HEIGHT_PX

    @property
    def cell_width_px(self) -> float:
        return self.width_px / self.grid_width

    @property
    def cell_height_px(self) -> float:
        return self.height_px / self.grid_height


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


# ------------------------------------------------------------------------------------- targets and metrics


def target_cell(x: float, y: float, grid_height: int, grid_width: int) -> tuple[int, int]:
    """``(row, col)`` of the feature cell containing the point at ratios ``(x, y)`` (x = 1 falls in the last column)."""
    return min(int(y * grid_height), grid_height - 1), min(int(x * grid_width), grid_width - 1)


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


def cell_distance_px(pred_cells: np.ndarray, target_cells: np.ndarray, space: PixelSpace) -> np.ndarray:
    """Euclidean distances in pixels between ``(N, 2)`` ``(row, col)`` cells: cell offsets times the cell size."""
    pred_cells, target_cells = np.asarray(pred_cells), np.asarray(target_cells)
    dy = (pred_cells[:, 0] - target_cells[:, 0]) * space.cell_height_px
    dx = (pred_cells[:, 1] - target_cells[:, 1]) * space.cell_width_px
    return np.sqrt(dx ** 2 + dy ** 2)


def sdr_metrics(distances_px: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``acc@40``, ``acc@80``, ``acc@120`` (fraction with distance < threshold), ``mean_distance`` (pixels)."""
    d = np.asarray(distances_px, dtype=np.float64)
    if d.size == 0:
        raise InputError("no examples to score")
    out = {f"acc@{t}": float(np.mean(d < t)) for t in THRESHOLDS_PX}
    out["mean_distance"] = float(d.mean())
    out["num_examples"] = int(d.size)
    return out


def argmax_cells(scores: np.ndarray) -> np.ndarray:
    """``(N, 2)`` ``(row, col)`` of the maximum of each ``(N, H, W)`` map (first maximum in row-major order)."""
    n, _, w = scores.shape
    flat = scores.reshape(n, -1).argmax(axis=1)
    return np.stack([flat // w, flat % w], axis=1)


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


def open_feature_maps(config: "SDRFeaturesConfig") -> PanoramaFeatureMaps:
    """The feature maps a config names (``source``: synthetic or npy)."""
    if config.source == "synthetic":
        return SyntheticFeatureMaps(config.channels, config.height, config.width, config.seed)
    if config.path is None:
        raise InputError(f"features.source={config.source} needs features.path")
    return NpyFeatureMaps(config.path, config.layout)


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


# ---------------------------------------------------------------------------------------------- config


@dataclass
class SDRDataConfig:
    """Touchdown JSON-lines files. ``train: sample`` = the bundled Touchdown sample (``valan/data/streetview``)."""

    train: str = "sample"
    eval: str | None = None  # None: hold out eval_fraction of the training file's routes
    eval_fraction: float = 0.2
    split_seed: int = 0
    panoramas: list[str] = field(default_factory=lambda: ["main"])  # add pre, post as the Touchdown SDR code does
    max_text_length: int = 80  # tokens, <EOS> included
    vocab_min_count: int = 1  # the vocabulary is built from the training texts

    def __post_init__(self) -> None:
        if not self.panoramas or any(p not in PANORAMA_PREFIXES for p in self.panoramas):
            raise InputError(f"data.panoramas must be a non-empty subset of {list(PANORAMA_PREFIXES)}")
        if self.max_text_length < 2 or self.vocab_min_count < 1:
            raise InputError("data.max_text_length must be >= 2 and data.vocab_min_count >= 1")


@dataclass
class SDRFeaturesConfig:
    """Panorama feature maps. ``synthetic`` maps carry no visual information."""

    source: Literal["synthetic", "npy"] = "synthetic"
    path: str | None = None  # npy: folder of {panoid}.npy
    layout: Literal["hwc", "chw"] = "hwc"  # npy only
    channels: int = 16  # synthetic only
    height: int = 25  # synthetic only: grid rows
    width: int = 116  # synthetic only: grid columns
    seed: int = 0  # synthetic only

    def __post_init__(self) -> None:
        if min(self.channels, self.height, self.width) < 1:
            raise InputError("features.channels, height and width must be >= 1")


@dataclass
class SDRTargetConfig:
    """Pixel space of the reported distances and the target's spread (pixels)."""

    panorama_width_px: float = PANORAMA_WIDTH_PX
    panorama_height_px: float = PANORAMA_HEIGHT_PX
    sigma_px: float = 24.0

    def __post_init__(self) -> None:
        if min(self.panorama_width_px, self.panorama_height_px, self.sigma_px) <= 0:
            raise InputError("target.panorama_width_px, panorama_height_px and sigma_px must be > 0")


@dataclass
class LingUNetConfig:
    """Sizes of ``valan.agents.lingunet.LingUNet``."""

    channels: int = 16
    levels: int = 2
    embedding_size: int = 32
    hidden_size: int = 32  # per LSTM direction
    kernel_size: int = 5
    stride: int = 1  # 1: Chen et al. / VALAN; 2: Misra et al.
    head_hidden_size: int = 16
    dropout: float = 0.0  # on word embeddings


@dataclass
class SDRTrainingConfig:
    steps: int = 200  # optimizer steps
    batch_size: int = 16
    lr: float = 1e-3  # Adam
    grad_clip: float = 5.0  # global gradient norm; 0 disables
    eval_every: int = 100  # steps
    checkpoint_every: int = 100  # steps
    keep_last: int = 3
    log_every: int = 10  # steps between training scalars
    eval_batch_size: int = 32
    seed: int = 0
    logdir: str = "runs/sdr"

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.eval_every, self.checkpoint_every, self.keep_last,
               self.log_every, self.eval_batch_size) < 1:
            raise InputError("training.steps, batch sizes, *_every and keep_last must be >= 1")
        if self.lr <= 0 or self.grad_clip < 0:
            raise InputError("training.lr must be > 0 and training.grad_clip >= 0")


@dataclass
class SDRConfig:
    """A whole ``valan train-sdr`` run."""

    problem: str = "sdr"
    data: SDRDataConfig = field(default_factory=SDRDataConfig)
    features: SDRFeaturesConfig = field(default_factory=SDRFeaturesConfig)
    target: SDRTargetConfig = field(default_factory=SDRTargetConfig)
    model: LingUNetConfig = field(default_factory=LingUNetConfig)
    training: SDRTrainingConfig = field(default_factory=SDRTrainingConfig)


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


def make_model(config: LingUNetConfig, vocab_size: int, in_channels: int) -> torch.nn.Module:
    """A LingUNet of the configured sizes."""
    from valan.agents.lingunet import LingUNet

    try:
        return LingUNet(vocab_size, in_channels, **dataclasses.asdict(config))
    except ValueError as e:
        raise InputError(f"model: {e}") from None


def load_sdr_model(path: str | os.PathLike, device: torch.device | str = "cpu"
                   ) -> tuple[SDRConfig, Vocabulary, torch.nn.Module, dict[str, Any]]:
    """Rebuild the config, vocabulary and LingUNet (in eval mode) of a ``valan train-sdr`` checkpoint."""
    from valan.checkpoint import load_checkpoint
    from valan.config import from_dict

    state = load_checkpoint(path)
    if state.get("problem") != "sdr" or not {"config", "vocab", "in_channels", "model"} <= state.keys():
        raise InputError(f"not an SDR checkpoint (problem {state.get('problem')!r}); train one with valan train-sdr",
                         source=str(path))
    config = from_dict(SDRConfig, state["config"], source=str(path))
    vocab = Vocabulary(state["vocab"])
    model = make_model(config.model, len(vocab), int(state["in_channels"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise InputError(f"model weights do not fit the checkpoint's config: {str(e).splitlines()[0]}",
                         source=str(path)) from None
    return config, vocab, model.to(device).eval(), state


# ------------------------------------------------------------------------------------ loss and evaluation


def kl_divergence(target: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``KL(target || prediction) = sum_cells t * (log t - log p)`` (``0 log 0 = 0``).

    ``target`` and ``log_probs`` are ``(B, H, W)``; ``target`` sums to 1 per example.
    """
    return F.kl_div(log_probs.flatten(1), target.flatten(1), reduction="batchmean")


def batch_tensors(batch: SDRBatch, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The batch's arrays as tensors on ``device``."""
    return {name: torch.from_numpy(getattr(batch, name)).to(device)
            for name in ("features", "text", "text_length", "target")}


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset: SDRDataset, batch_size: int = 32,
                   device: torch.device | str = "cpu") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score ``model`` (``(features, text, text_length) -> log-probs (B, H, W)``) on every example once.

    Returns the summary (``acc@40/80/120``, ``mean_distance`` in pixels, ``num_examples``, ``loss`` = mean KL)
    and per-example records ``{id, x, y, predicted_cell, target_cell, distance_px}`` where ``x``, ``y`` are the
    predicted cell's centre as ratios of the panorama's width and height (the static-centre convention) and
    cells are ``[row, col]``.
    """
    was_training = model.training
    model.eval()
    distances, records, loss_sum = [], [], 0.0
    for batch in dataset.batches(batch_size):
        t = batch_tensors(batch, device)
        log_probs = model(t["features"], t["text"], t["text_length"])
        loss_sum += float(kl_divergence(t["target"], log_probs)) * len(batch.example_ids)
        pred = argmax_cells(log_probs.cpu().numpy())
        dist = cell_distance_px(pred, batch.target_cell, dataset.space)
        distances.append(dist)
        for i, example_id in enumerate(batch.example_ids):
            records.append({"id": example_id, "x": float(pred[i, 1] + 0.5) / dataset.space.grid_width,
                            "y": float(pred[i, 0] + 0.5) / dataset.space.grid_height, "predicted_cell": pred[i].tolist(),
                            "target_cell": batch.target_cell[i].tolist(), "distance_px": float(dist[i])})
    model.train(was_training)
    summary = sdr_metrics(np.concatenate(distances))
    summary["loss"] = loss_sum / len(dataset)
    return summary, records
