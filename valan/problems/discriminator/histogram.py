"""Score distributions of instruction groups (e.g. human vs speaker instructions) drawn with Pillow.

``valan score --histogram PNG`` groups the scored pairs by their record's ``source`` (``"speaker"`` for
``valan speak`` output, ``"human"`` for records without one) and draws one outlined histogram per group over
shared bins, each normalised to its own count (the y axis is the share of the group's pairs per bin), with the
ROC-AUC of human over speaker instructions in the title when both groups are present.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from valan.io import atomic_write
from valan.problems.discriminator.metrics import roc_auc

HUMAN, SPEAKER = "human", "speaker"
COLOURS = [(100, 149, 237), (255, 140, 0), (34, 160, 60), (215, 40, 40), (150, 80, 200)]
TEXT, AXIS = (20, 20, 20), (120, 120, 120)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def human_vs_speaker_auc(groups: Mapping[str, Sequence[float]]) -> float | None:
    """ROC-AUC of human instructions (positives) over speaker ones: the chance that a random human instruction
    scores above a random speaker instruction; ``None`` unless both groups have scores."""
    human, speaker = groups.get(HUMAN, []), groups.get(SPEAKER, [])
    if not len(human) or not len(speaker):
        return None
    return roc_auc(np.concatenate([human, speaker]), np.r_[np.ones(len(human)), np.zeros(len(speaker))])


def draw_histogram(groups: Mapping[str, Sequence[float]], title: str, bins: int = 40, width: int = 720,
                   height: int = 420) -> Image.Image:
    """An RGB histogram of each group's scores (logits) over shared bins, with a legend of group sizes."""
    values = np.concatenate([np.asarray(v, np.float64) for v in groups.values()])
    low, high = float(values.min()), float(values.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    shares = {name: np.histogram(v, edges)[0] / max(len(v), 1) for name, v in groups.items()}
    top = max(float(s.max()) for s in shares.values()) or 1.0
    left, right, upper, lower = 56, 16, 48, 40
    plot_w, plot_h = width - left - right, height - upper - lower
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = _font(14)

    def x(score: float) -> float:
        return left + (score - low) / (high - low) * plot_w

    def y(share: float) -> float:
        return upper + plot_h - share / top * plot_h

    draw.line([(left, upper), (left, upper + plot_h), (left + plot_w, upper + plot_h)], fill=AXIS)
    for tick in np.linspace(low, high, 5):
        draw.text((x(tick) - 14, upper + plot_h + 6), f"{tick:.1f}", fill=TEXT, font=font)
    draw.text((4, upper - 18), f"{top:.2f}", fill=TEXT, font=font)
    draw.text((left + plot_w // 2 - 60, height - 18), "discriminator score (logit)", fill=TEXT, font=font)
    for n, (name, share) in enumerate(shares.items()):
        colour = COLOURS[n % len(COLOURS)]
        outline = [(x(edges[0]), y(0.0))]
        for i, s in enumerate(share):
            outline += [(x(edges[i]), y(s)), (x(edges[i + 1]), y(s))]
        outline.append((x(edges[-1]), y(0.0)))
        draw.line(outline, fill=colour, width=2)
        draw.text((left + plot_w - 170, upper + 4 + 18 * n), f"{name} ({len(groups[name])})", fill=colour, font=font)
    draw.text((left, 12), title, fill=TEXT, font=font)
    return image


def write_histogram(path: str | os.PathLike, groups: Mapping[str, Sequence[float]]) -> float | None:
    """Draw ``groups`` (name -> scores) to the PNG ``path`` atomically; returns the human-vs-speaker ROC-AUC."""
    auc = human_vs_speaker_auc(groups)
    title = "scores by instruction source" + ("" if auc is None or math.isnan(auc) else
                                               f"; ROC-AUC human vs speaker {auc:.3f}")
    image = draw_histogram(groups, title)
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG")
    return auc
