"""Street View panorama features rolled so that the agent's heading is at the centre.

Feature convention (shared with ``valan features extract`` for equirectangular panoramas): a panorama's
``V = P * H`` views are ``P`` pitch rows of ``H`` headings, view index ``p * H + j``; view ``j`` of a row is
centred on the panorama-relative heading ``j * 360 / H`` (clockwise), i.e. on the world heading
``pano_yaw_angle + j * 360 / H`` (``pano_yaw_angle`` from ``nodes.txt``). The default Street View layout is one
row of ``H = 8`` views of 45 degrees, like Touchdown's and VALAN's ``(1, 8, 2048)`` ResNet features.

Rolling shifts each row circularly so that position ``H // 2`` holds the view nearest the agent's heading and
position ``H // 2 + m`` the view ``m`` steps clockwise of it. Touchdown's navigator shifts by
``int(H * (157.5 + pano_yaw_angle - heading) / 360)``, which truncates where this rounds: the two place the
same views at most one position apart. Works on numpy arrays and torch tensors alike (same rounding: half to
even), so the environment and the agents share one definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_VIEWS = 8
"""Views per Street View panorama (one row of 45-degree views) unless a feature store says otherwise."""


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def view_shift(heading: Any, pano_yaw: Any, headings: int = DEFAULT_VIEWS) -> Any:
    """Circular shift (int64, in ``[0, headings)``) that centres the view nearest ``heading``.

    ``heading`` and ``pano_yaw`` are degrees (scalars or arrays/tensors of the same shape).
    """
    step = 360.0 / headings
    if _is_torch(heading):
        import torch

        nearest = torch.round(torch.remainder(heading - pano_yaw, 360.0) / step).long() % headings
        return torch.remainder(headings // 2 - nearest, headings)
    nearest = np.rint(np.mod(np.asarray(heading, np.float64) - pano_yaw, 360.0) / step).astype(np.int64) % headings
    return np.mod(headings // 2 - nearest, headings)


def roll_views(features: Any, shift: Any, headings: int | None = None) -> Any:
    """Roll ``features`` ``(..., V, D)`` by ``shift`` ``(...)`` along each row of ``headings`` views.

    ``result[..., p * H + k, :] = features[..., p * H + (k - shift) % H, :]`` (``np.roll`` semantics per row);
    ``headings`` defaults to ``V`` (a single row).
    """
    v, d = features.shape[-2], features.shape[-1]
    h = v if headings is None else headings
    if v % h:
        raise ValueError(f"{v} views are not whole rows of {h} headings")
    rows = features.reshape(*features.shape[:-2], v // h, h, d)
    if _is_torch(features):
        import torch

        k = torch.arange(h, device=features.device)
        index = torch.remainder(k - shift.long().unsqueeze(-1), h)  # (..., H)
        index = index.unsqueeze(-2).unsqueeze(-1).expand(*rows.shape)
        return torch.gather(rows, -2, index).reshape(features.shape)
    index = np.mod(np.arange(h) - np.asarray(shift, np.int64)[..., None], h)
    index = np.broadcast_to(index[..., None, :, None], rows.shape)
    return np.take_along_axis(rows, index, axis=-2).reshape(features.shape)


def rolled_features(features: Any, heading: Any, pano_yaw: Any, headings: int | None = None) -> Any:
    """``features`` ``(..., V, D)`` rolled so that the view nearest ``heading`` sits at position ``H // 2``."""
    h = features.shape[-2] if headings is None else headings
    return roll_views(features, view_shift(heading, pano_yaw, h), h)
