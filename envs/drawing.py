"""Top-down pictures of navigation episodes, drawn with Pillow: what ``env.render()`` returns and what evaluations
write as PNG files (one drawing code for both).

A picture is a header (title, a subtitle with the scale, the instruction wrapped to the width), one map panel or
several side by side (R2R: one per floor the paths visit) and a legend. A task supplies its nodes' positions in
metres on a plane (R2R: pose translations; Street View: latitude/longitude projected), the graph's edges, the
reference path and the trajectory as node indices, and optionally the radius in metres around the goal within
which an episode succeeds. Every panel shares one window (square, around both paths), so panels compare.

Colours: light grey graph; blue reference path; orange trajectory; green ring start; red ring goal (a thin red
circle: the success radius); purple square the trajectory's end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from valan.io import atomic_write

BACKGROUND = (255, 255, 255)
GRAPH = (205, 205, 205)
REFERENCE = (100, 149, 237)
TRAJECTORY = (255, 140, 0)
START = (34, 160, 60)
GOAL = (215, 40, 40)
END = (120, 50, 170)
TEXT = (20, 20, 20)

MAX_INSTRUCTION_LINES = 6
"""Longer instructions end in an ellipsis."""


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels (the fixed bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def wrap(text: str, width: float, face: ImageFont.ImageFont | ImageFont.FreeTypeFont,
         max_lines: int = MAX_INSTRUCTION_LINES) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` pixels wide in ``face`` (a longer word stands
    alone); after ``max_lines`` lines the last ends in "…"."""
    lines: list[str] = []
    for word in text.split():
        if lines and face.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + " …"
    return lines


@dataclass(frozen=True)
class Panel:
    """One map of the picture: the nodes it shows (a boolean mask over all nodes) and its caption."""

    nodes: np.ndarray
    caption: str = ""


def draw_map(xy: np.ndarray, edges: np.ndarray, reference: Sequence[int], trajectory: Sequence[int], *,
             title: str, subtitle: str = "", instruction: str = "", goal_radius: float | None = None,
             panels: Sequence[Panel] | None = None, min_extent: float = 6.0, size: int = 512) -> Image.Image:
    """An RGB picture of one episode (see the module docstring).

    Args:
        xy: ``(N, 2)`` node positions in metres (x right, y up).
        edges: ``(E, 2)`` node index pairs of the graph.
        reference: node indices of the reference path (its last node is the goal; one node: no known goal).
        trajectory: node indices of the agent's path so far (its first node is the start).
        title, subtitle: header lines; the scale ("N m across") is appended to the subtitle.
        instruction: wrapped under the subtitle.
        goal_radius: metres; a circle of this radius is drawn around the goal when the goal is known.
        panels: the maps side by side; default one showing every node.
        min_extent: metres; the window spans at least this much.
        size: pixels of each square map panel.
    """
    xy = np.asarray(xy, np.float64)
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    panels = list(panels) if panels else [Panel(np.ones(len(xy), bool))]
    margin = 24
    on_paths = np.array(sorted(set(reference) | set(trajectory)), np.int64)
    lo, hi = xy[on_paths].min(axis=0), xy[on_paths].max(axis=0)
    centre = (lo + hi) / 2
    extent = max(1.3 * float((hi - lo).max()), min_extent)
    scale = (size - 2 * margin) / extent
    pixels = np.empty_like(xy)
    pixels[:, 0] = size / 2 + (xy[:, 0] - centre[0]) * scale
    pixels[:, 1] = size / 2 - (xy[:, 1] - centre[1]) * scale
    visible = np.all((pixels > -size) & (pixels < 2 * size), axis=1)  # near enough to the window to matter

    def point(i: int) -> tuple[float, float]:
        return float(pixels[i, 0]), float(pixels[i, 1])

    title_font, small = font(14), font(12)
    width = size * len(panels)
    lines = wrap(instruction, width - 16, small) if instruction else []
    header, footer = 44 + 16 * len(lines) + (6 if lines else 0), 26
    image = Image.new("RGB", (width, header + size + footer), BACKGROUND)
    goal_known = len(reference) > 1
    for k, panel in enumerate(panels):
        # Each map is drawn on its own square canvas, so edges leaving the window are clipped at its border.
        canvas = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        shown = panel.nodes & visible
        for i, j in edges[shown[edges[:, 0]] & shown[edges[:, 1]]]:
            draw.line([point(i), point(j)], fill=GRAPH, width=1)
        for x, y in pixels[shown]:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=GRAPH)
        if goal_known and goal_radius is not None and panel.nodes[reference[-1]]:
            x, y = point(reference[-1])
            r = goal_radius * scale
            draw.ellipse([x - r, y - r, x + r, y + r], outline=GOAL, width=1)
        for path, colour, line_width in ((reference, REFERENCE, 7), (trajectory, TRAJECTORY, 3)):
            for a, b in zip(path[:-1], path[1:]):
                if panel.nodes[a] or panel.nodes[b]:
                    draw.line([point(a), point(b)], fill=colour, width=line_width)
            r = line_width / 2 + 1
            for i in path:
                if panel.nodes[i]:
                    x, y = point(i)
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        markers = [(trajectory[0], START)] + ([(reference[-1], GOAL)] if goal_known else [])
        for i, colour in markers:
            if panel.nodes[i]:
                x, y = point(i)
                draw.ellipse([x - 7, y - 7, x + 7, y + 7], outline=colour, width=3)
        if panel.nodes[trajectory[-1]]:
            x, y = point(trajectory[-1])
            draw.rectangle([x - 4, y - 4, x + 4, y + 4], fill=END, outline=TEXT)
        if panel.caption:
            draw.text((6, 4), panel.caption, fill=TEXT, font=small)
        image.paste(canvas, (k * size, header))
    draw = ImageDraw.Draw(image)
    draw.line([(0, header - 1), (width, header - 1)], fill=GRAPH)
    draw.line([(0, header + size), (width, header + size)], fill=GRAPH)
    for k in range(1, len(panels)):
        draw.line([(k * size, header), (k * size, header + size)], fill=GRAPH)
    draw.text((8, 6), title, fill=TEXT, font=title_font)
    draw.text((8, 24), f"{subtitle}   scale: {extent:.1f} m across".strip(), fill=TEXT, font=small)
    for n, line in enumerate(lines):
        draw.text((8, 44 + 16 * n), line, fill=TEXT, font=small)
    legend = [("reference", REFERENCE, True), ("trajectory", TRAJECTORY, True), ("start", START, False),
              ("goal", GOAL, False), ("end", END, True)]
    if goal_radius is not None and goal_known:
        legend.append((f"within {goal_radius:g} m of the goal", GOAL, False))
    cursor, legend_y = 8, header + size + 6
    for label, colour, filled in legend:
        box = [cursor, legend_y + 2, cursor + 12, legend_y + 14]
        if filled:
            draw.rectangle(box, fill=colour)
        else:
            draw.ellipse(box, outline=colour, width=2)
        draw.text((cursor + 16, legend_y), label, fill=TEXT, font=small)
        cursor += int(small.getlength(label)) + 30
    return image


def file_stem(episode_id: object) -> str:
    """The name of an episode's picture file without ``.png``: the id with unsafe characters replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(episode_id))


def save_png(image: Image.Image, directory: str | os.PathLike, episode_id: object) -> Path:
    """Write ``image`` as ``{file_stem(episode_id)}.png`` into ``directory``, atomically; returns the path."""
    path = Path(directory) / f"{file_stem(episode_id)}.png"
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG")
    return path
