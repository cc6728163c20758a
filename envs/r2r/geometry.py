"""Geometry of a move on a Matterport3D graph as every R2R model sees it, and the nearest of the 36 R2R views.

A move's geometry is five numbers: sin and cos of its heading relative to the agent's heading, sin and cos of
its elevation relative to the agent's, and its length in metres. Headings are radians clockwise from +y,
elevations radians up from the horizontal. The environment's candidates, the discriminator's path steps and the
alignment model's next-viewpoint candidates all use this layout.
"""

from __future__ import annotations

import math

import numpy as np

from valan.features.stores import R2R_HEADINGS, r2r_view_index

GEOMETRY_DIM = 5
ODOMETRY_DIM = 4
"""The ``odometry`` observation (dead reckoning, metres): the length walked, and the start ahead of, to the right
of and above the agent."""
NO_MOVE_GEOMETRY = np.array([0.0, 1.0, 0.0, 1.0, 0.0], dtype=np.float32)
"""Geometry of staying put (slot 0, STOP) and of the start of a path."""
VIEW_STEP = 2 * math.pi / R2R_HEADINGS
"""Heading (and elevation) step between adjacent R2R views: 30 degrees, in radians."""


def nearest_view(heading: np.ndarray | float, elevation: np.ndarray | float) -> np.ndarray:
    """Index (0..35, ``12 * elevation_level + heading_step``) of the R2R view nearest each direction.

    Heading and elevation in radians, rounded to the nearest 30 degrees (halves to even); elevations beyond
    +-30 degrees take the top or bottom row.
    """
    step = np.rint(np.asarray(heading) / VIEW_STEP).astype(np.int64) % R2R_HEADINGS
    level = np.clip(np.rint(np.asarray(elevation) / VIEW_STEP).astype(np.int64), -1, 1) + 1
    return r2r_view_index(level, step)
