"""Touchdown SDR metrics (Chen et al., CVPR 2019) in the pixel space of the published SDR models.

Pixel space
    Distances are reported in pixels of the panorama as the published SDR models see it: **3712 x 800 pixels**
    (width x height). This is the space of Chen et al.'s and VALAN's SDR code: eight perspective slices of the
    panorama, each 800 pixels high, go through a ResNet-18 to a 128 x 100 x 464 feature map, and a feature
    cell spans 8 x 8 pixels (VALAN ``touchdown/sdr/train_eager.py``: ``RESOLUTION_MULTIPLIER = 8``; the Touchdown
    ``sdr/predict.py`` multiplies cell distances by 8 likewise). A static centre ``(x, y)`` is the pixel
    ``(x * 3712, y * 800)``. Other feature-map sizes keep this pixel space: a cell spans ``3712 / W`` by
    ``800 / H`` pixels.

Metrics
    The prediction is the most probable cell. Its distance to the bear's cell, in pixels (cell offsets times
    the cell size in pixels, as in the Touchdown and VALAN code), gives ``acc@40``, ``acc@80``, ``acc@120``:
    the fraction of examples with distance strictly below 40 / 80 / 120 pixels, and ``mean_distance`` (pixels).
    The panorama's horizontal wrap-around is ignored, as in the Touchdown and VALAN code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from valan.errors import InputError

PANORAMA_WIDTH_PX = 3712
PANORAMA_HEIGHT_PX = 800
THRESHOLDS_PX = (40, 80, 120)
METRIC_NAMES = tuple(f"acc@{t}" for t in THRESHOLDS_PX) + ("mean_distance", "num_examples")


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


def target_cell(x: float, y: float, grid_height: int, grid_width: int) -> tuple[int, int]:
    """``(row, col)`` of the feature cell containing the point at ratios ``(x, y)`` (x = 1 falls in the last column)."""
    return min(int(y * grid_height), grid_height - 1), min(int(x * grid_width), grid_width - 1)


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
