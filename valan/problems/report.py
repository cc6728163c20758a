"""``valan report RUN_DIR``: one self-contained HTML page about a run folder, for reading in a browser.

The page holds (images inlined as ``data:`` URIs, so the file can be moved or mailed alone):

- the run's ``config.yaml``;
- learning curves, one PNG chart per metric with a line per split, from ``metrics.jsonl`` (the supervised loop)
  and ``eval/metrics.jsonl`` (``valan train``'s evaluations); x axis: env steps where recorded, else steps;
- the latest metrics of every split, as a table;
- for a navigation run (``problem`` in ``valan.problems.PROBLEMS``), each evaluation split's latest predictions
  (``eval/<split>/predictions-<step>.json``) scored per episode (:meth:`Problem.episode_scores`) and listed
  failures first, each with its thumbnail (:meth:`Problem.write_plots`), instruction and metrics; a search box
  and a failures-only switch filter the list.

Charts are drawn with Pillow like the trajectory pictures.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from valan.envs.drawing import file_stem, font
from valan.errors import InputError
from valan.io import atomic_write, read_jsonl, read_text

NOT_METRICS = frozenset({"split", "step", "env_steps", "elapsed_s", "cpu_s", "num_episodes"})
"""Fields of a metrics line that are not metrics."""
MAX_CHARTS = 12
SPLIT_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
PREDICTIONS = re.compile(r"predictions-(\d+)\.json$")


@dataclass
class SplitEpisodes:
    """One evaluation split's episodes as the report lists them (or why they are missing)."""

    split: str
    step: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # episode_scores rows, failures first
    thumbnails: dict[str, bytes] = field(default_factory=dict)  # episode id -> PNG
    note: str = ""


def metric_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every metrics line of the run: ``metrics.jsonl`` then ``eval/metrics.jsonl`` (those that exist)."""
    lines: list[dict[str, Any]] = []
    for path in (run_dir / "metrics.jsonl", run_dir / "eval" / "metrics.jsonl"):
        if path.is_file():
            lines.extend(line for line in read_jsonl(path) if isinstance(line, dict) and "split" in line)
    return lines


def latest_by_split(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last line of each split (by step, then file order)."""
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        previous = latest.get(line["split"])
        if previous is None or line.get("step", 0) >= previous.get("step", 0):
            latest[line["split"]] = line
    return latest


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def chart(name: str, series: dict[str, list[tuple[float, float]]], x_label: str, width: int = 420,
          height: int = 260) -> bytes:
    """A PNG line chart of ``series`` (split -> ``(x, y)`` points) titled ``name``."""
    left, right, top, bottom = 56, 12, 26, 40
    points = [p for values in series.values() for p in values]
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    small = font(11)

    def pixel(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (width - left - right),
                height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

    draw.rectangle([left, top, width - right, height - bottom], outline=(160, 160, 160))
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        _, py = pixel(x0, y)
        draw.line([(left - 3, py), (left, py)], fill=(120, 120, 120))
        draw.text((4, py - 6), f"{y:.3g}", fill=(60, 60, 60), font=small)
        x = x0 + (x1 - x0) * k / 4
        px, _ = pixel(x, y0)
        label = f"{x / 1000:.4g}k" if abs(x) >= 10_000 else f"{x:.4g}"
        draw.line([(px, height - bottom), (px, height - bottom + 3)], fill=(120, 120, 120))
        draw.text((min(px - small.getlength(label) / 2, width - 2 - small.getlength(label)), height - bottom + 5),
                  label, fill=(60, 60, 60), font=small)
    draw.text((left, height - 16), x_label, fill=(60, 60, 60), font=small)
    draw.text((left, 6), name, fill=(20, 20, 20), font=font(13))
    cursor = width - right
    for k, (split, values) in enumerate(series.items()):
        colour = SPLIT_COLOURS[k % len(SPLIT_COLOURS)]
        line = [pixel(x, y) for x, y in sorted(values)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for px, py in line:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        cursor -= int(small.getlength(split)) + 18
        draw.rectangle([cursor, 9, cursor + 9, 18], fill=colour)
        draw.text((cursor + 12, 7), split, fill=(20, 20, 20), font=small)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def learning_curves(lines: list[dict[str, Any]]) -> dict[str, bytes]:
    """Metric name -> PNG chart with one line per split (at most ``MAX_CHARTS`` metrics, in first-seen order)."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    env_steps = any("env_steps" in line for line in lines)
    for line in lines:
        x = line.get("env_steps", line.get("step")) if env_steps else line.get("step")
        if not _number(x):
            continue
        for name, value in line.items():
            if name not in NOT_METRICS and _number(value):
                series.setdefault(name, {}).setdefault(line["split"], []).append((float(x), float(value)))
    x_label = "env steps" if env_steps else "steps"
    return {name: chart(name, by_split, x_label) for name, by_split in list(series.items())[:MAX_CHARTS]}


def latest_predictions(run_dir: Path, split: str) -> tuple[int, Path] | None:
    """``(step, file)`` of the split's newest ``eval/<split>/predictions-<step>.json``, or None."""
    found = [(int(m.group(1)), p) for p in (run_dir / "eval" / split).glob("predictions-*.json")
             if (m := PREDICTIONS.search(p.name))]
    return max(found) if found else None


def split_episodes(run_dir: Path, config: Any, split: str, thumbnails: int) -> SplitEpisodes:
    """The latest predictions of ``split`` scored per episode, failures first, with up to ``thumbnails``
    pictures; a note instead when they cannot be listed (no predictions, data gone, no per-episode scores)."""
    from valan.io import read_json
    from valan.problems import get_problem

    result = SplitEpisodes(split)
    latest = latest_predictions(run_dir, split)
    if latest is None:
        result.note = f"no eval/{split}/predictions-*.json in the run folder"
        return result
    result.step, path = latest
    problem = get_problem(config.problem)
    predictions = read_json(path)
    try:
        rows = problem.episode_scores(config, split, predictions)
    except NotImplementedError:
        result.note = f"the {problem.name} problem does not score single episodes"
        return result
    except InputError as e:  # the split's data moved or changed since the run: say so on the page
        result.note = f"episodes not listed: {e}"
        return result
    result.rows = sorted(rows, key=lambda row: row["success"])  # stable: failures first, then data order
    shown = {str(row["id"]) for row in result.rows[:thumbnails]}
    chosen = [p for p in predictions if str(p[problem.prediction_key]) in shown]
    with tempfile.TemporaryDirectory(prefix="valan-report-") as scratch:
        for picture in problem.write_plots(config, split, chosen, Path(scratch), len(chosen)):
            result.thumbnails[picture.stem] = picture.read_bytes()
    return result


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _number(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    return html.escape(str(value))


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.curves img { margin: 4px; border: 1px solid #ddd; }
.episode { display: flex; gap: 12px; border-top: 1px solid #ddd; padding: 8px 0; }
.episode img { width: 240px; cursor: zoom-in; border: 1px solid #ddd; }
.episode img.large { width: auto; max-width: 95vw; cursor: zoom-out; }
.failure h4 { color: #b02020; } .success h4 { color: #207020; }
.note { color: #777; }
pre { background: #f6f6f6; padding: 8px; overflow: auto; max-height: 30em; }
"""

SCRIPT = """
function filterEpisodes(split) {
  const text = document.getElementById('search-' + split).value.toLowerCase();
  const failuresOnly = document.getElementById('failures-' + split).checked;
  for (const row of document.querySelectorAll('#episodes-' + split + ' .episode')) {
    const hit = row.textContent.toLowerCase().includes(text);
    row.style.display = hit && (!failuresOnly || row.classList.contains('failure')) ? '' : 'none';
  }
}
"""


def render_html(run_dir: Path, config_text: str, lines: list[dict[str, Any]], curves: dict[str, bytes],
                episodes: list[SplitEpisodes], synthetic: bool) -> str:
    """The page (see the module docstring)."""
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>valan run {e(run_dir.name)}</title>",
           f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
           f"<h1>Run {e(str(run_dir))}</h1>"]
    if synthetic:
        out.append("<p class='note'>Synthetic features: they carry no visual information, so these results come "
                   "from language and path geometry alone.</p>")
    latest = latest_by_split(lines)
    out.append("<h2>Latest metrics</h2>")
    if latest:
        names = [n for n in dict.fromkeys(k for line in latest.values() for k in line) if n not in NOT_METRICS]
        out.append("<table><tr><th>split</th><th>step</th>" + "".join(f"<th>{e(n)}</th>" for n in names) + "</tr>")
        for split, line in latest.items():
            out.append(f"<tr><td>{e(split)}</td><td>{line.get('step', '')}</td>"
                       + "".join(f"<td>{_format(line.get(n, ''))}</td>" for n in names) + "</tr>")
        out.append("</table>")
    else:
        out.append("<p class='note'>no metrics.jsonl lines yet</p>")
    out.append("<h2>Learning curves</h2><div class='curves'>")
    out.extend(f"<img alt='{e(name)}' src='{_data_uri(png)}'>" for name, png in curves.items())
    out.append("</div>" if curves else "<p class='note'>no curves yet</p></div>")
    for split in episodes:
        failures = sum(not row["success"] for row in split.rows)
        step = f" at step {split.step}" if split.step is not None else ""
        out.append(f"<h2>Episodes: {e(split.split)}{step}</h2>")
        if split.note:
            out.append(f"<p class='note'>{e(split.note)}</p>")
            continue
        out.append(f"<p>{len(split.rows)} episodes, {failures} failures (listed first; pictures for the first "
                   f"{len(split.thumbnails)}). <input id='search-{e(split.split)}' placeholder='search' "
                   f"oninput=\"filterEpisodes('{e(split.split)}')\"> <label><input type='checkbox' "
                   f"id='failures-{e(split.split)}' onchange=\"filterEpisodes('{e(split.split)}')\"> failures only"
                   f"</label></p><div id='episodes-{e(split.split)}'>")
        for row in split.rows:
            metrics = "  ".join(f"{e(k)} {_format(v)}" for k, v in row.items()
                                if k not in ("id", "instruction", "success"))
            png = split.thumbnails.get(file_stem(row["id"]))
            picture = (f"<img alt='episode {e(str(row['id']))}' src='{_data_uri(png)}' "
                       "onclick=\"this.classList.toggle('large')\">" if png else "")
            outcome = "success" if row["success"] else "failure"
            out.append(f"<div class='episode {outcome}'>{picture}<div><h4>{e(str(row['id']))}: {outcome}</h4>"
                       f"<p>{e(row['instruction'])}</p><p>{metrics}</p></div></div>")
        out.append("</div>")
    out.append(f"<h2>Config</h2><pre>{e(config_text)}</pre></body></html>")
    return "\n".join(out)


def write_report(run_dir: str | Path, output: str | Path | None = None, thumbnails: int = 50) -> Path:
    """Write the report of ``run_dir`` to ``output`` (default ``RUN_DIR/report.html``) atomically; returns its
    path. ``InputError`` (one line) when ``run_dir`` is not a run folder (no ``config.yaml``)."""
    import yaml

    from valan.problems import PROBLEMS, load_train_config

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise InputError("not a run folder (no config.yaml)", source=str(run_dir))
    config_text = read_text(config_path)
    raw = yaml.safe_load(config_text) or {}
    lines = metric_lines(run_dir)
    episodes: list[SplitEpisodes] = []
    synthetic = False
    if isinstance(raw, dict) and raw.get("problem", "r2r") in PROBLEMS:
        config = load_train_config(config_path)
        synthetic = config.data.features == "synthetic"
        episodes = [split_episodes(run_dir, config, split, thumbnails) for split in config.data.eval]
    page = render_html(run_dir, config_text, lines, learning_curves(lines), episodes, synthetic)
    output = Path(output) if output is not None else run_dir / "report.html"
    with atomic_write(output) as f:
        f.write(page)
    return output
