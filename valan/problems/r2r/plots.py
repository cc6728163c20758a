"""Top-down pictures of R2R episodes drawn with Pillow: the scan's navigation graph, the reference path and the
agent's trajectory.

The view looks down the z axis at the pose translations (x right, y up), zoomed on the two paths; viewpoints and
edges more than ``FLOOR_MARGIN`` metres above or below the paths (other floors) are left out. Light grey: the
graph; blue: the reference path; orange: the trajectory; green disc: start; red disc: goal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from valan.envs.r2r.graph import ScanGraph
from valan.io import atomic_write

FLOOR_MARGIN = 1.5
"""Metres above/below the paths' height range within which other viewpoints are drawn."""

BACKGROUND = (255, 255, 255)
GRAPH = (205, 205, 205)
REFERENCE = (100, 149, 237)
TRAJECTORY = (255, 140, 0)
START = (34, 160, 60)
GOAL = (215, 40, 40)
TEXT = (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def draw_episode(graph: ScanGraph, reference: Sequence[str], trajectory: Sequence[str], title: str,
                 size: int = 512) -> Image.Image:
    """An RGB picture of one episode: a title band, a ``size`` x ``size`` pixel map and a legend (viewpoint ids in
    ``reference`` and ``trajectory``)."""
    header, footer, margin = 44, 26, 24
    ref = [graph.local_index(v) for v in reference]
    traj = [graph.local_index(v) for v in trajectory]
    on_paths = sorted(set(ref) | set(traj))
    xy = graph.positions[:, :2]
    z = graph.positions[:, 2]
    low, high = z[on_paths].min() - FLOOR_MARGIN, z[on_paths].max() + FLOOR_MARGIN
    shown = {i for i in range(len(graph)) if low <= z[i] <= high}
    # Square window around the paths, 30% wider than their extent and at least 6 m across.
    lo, hi = xy[on_paths].min(axis=0), xy[on_paths].max(axis=0)
    centre = (lo + hi) / 2
    extent = max(1.3 * float((hi - lo).max()), 6.0)
    scale = (size - 2 * margin) / extent

    def pixel(i: int) -> tuple[float, float]:
        x, y = (xy[i] - centre) * scale
        return size / 2 + x, size / 2 - y

    # The map is drawn on its own square canvas, so edges leaving the window are clipped at its border.
    canvas = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i in shown:
        for j in graph.neighbors[i]:
            if i < j and int(j) in shown:
                draw.line([pixel(i), pixel(int(j))], fill=GRAPH, width=1)
    for i in shown:
        x, y = pixel(i)
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=GRAPH)
    for path, colour, width in ((ref, REFERENCE, 7), (traj, TRAJECTORY, 3)):
        points = [pixel(i) for i in path]
        if len(points) > 1:
            draw.line(points, fill=colour, width=width, joint="curve")
        for x, y in points:
            r = width / 2 + 1
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    for i, colour in ((ref[0], START), (ref[-1], GOAL)):
        x, y = pixel(i)
        draw.ellipse([x - 7, y - 7, x + 7, y + 7], outline=colour, width=3)
    x, y = pixel(traj[-1])
    draw.rectangle([x - 4, y - 4, x + 4, y + 4], outline=TRAJECTORY, width=2)

    image = Image.new("RGB", (size, header + size + footer), BACKGROUND)
    image.paste(canvas, (0, header))
    draw = ImageDraw.Draw(image)
    draw.line([(0, header - 1), (size, header - 1)], fill=GRAPH)
    draw.line([(0, header + size), (size, header + size)], fill=GRAPH)
    font = _font(14)
    draw.text((8, 6), title, fill=TEXT, font=font)
    draw.text((8, 24), f"scan {graph.scan}   scale: {extent:.1f} m across", fill=TEXT, font=_font(12))
    legend_y = header + size + 6
    cursor = 8
    for label, colour in (("reference", REFERENCE), ("trajectory", TRAJECTORY), ("start", START), ("goal", GOAL)):
        draw.rectangle([cursor, legend_y + 3, cursor + 12, legend_y + 13], fill=colour)
        draw.text((cursor + 16, legend_y), label, fill=TEXT, font=_font(12))
        cursor += 110
    return image


def _file_name(instr_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", instr_id) + ".png"


def write_episode_plot(directory: str | os.PathLike, graph: ScanGraph, result: dict, reference: Sequence[str],
                       trajectory: Sequence[str]) -> Path:
    """Write ``{instr_id}.png`` for one scored episode (``result`` from ``valan.envs.r2r.metrics.score_episode`` plus
    ``instr_id``) into ``directory``, atomically; returns the path."""
    title = (f"{result['instr_id']}  {'success' if result['success'] else 'failure'}  SPL {result['spl']:.2f}  "
             f"NE {result['nav_error']:.2f} m  nDTW {result['ndtw']:.2f}")
    path = Path(directory) / _file_name(result["instr_id"])
    image = draw_episode(graph, reference, trajectory, title)
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG")
    return path
