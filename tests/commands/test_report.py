"""``valan report RUN_DIR``: the HTML page's content (config, curves, latest metrics, episodes failures first) and,
where a Chromium-family browser is installed, a headless screenshot of it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from valan.cli import main
from valan.config import save_config
from valan.data import sample_path
from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.problems.r2r.baselines import baseline_predictions
from valan.problems.r2r.config import R2RConfig

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as ``valan train`` leaves it: config, two evaluations of val_seen, predictions of each."""
    run = tmp_path_factory.mktemp("run")
    save_config(run / "config.yaml", R2RConfig())
    episodes = load_r2r(sample_path("R2R_sample_val_seen.json"))
    connectivity = Connectivity(sample_path("connectivity"))
    lines = []
    for step, agent in ((0, "stop"), (100, "random")):
        predictions = baseline_predictions(agent, episodes, connectivity, seed=0)
        (run / "eval" / "val_seen").mkdir(parents=True, exist_ok=True)
        (run / "eval" / "val_seen" / f"predictions-{step:09d}.json").write_text(json.dumps(predictions))
        lines.append({"split": "val_seen", "step": step, "env_steps": 20 * step, "success_rate": step / 1000,
                      "spl": step / 2000, "num_episodes": len(episodes)})
    (run / "eval" / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run, episodes, connectivity


def images_of(page: str) -> list[Image.Image]:
    import io

    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


def test_report_content(run_dir, capsys):
    run, episodes, connectivity = run_dir
    assert main(["report", str(run), "--thumbnails", "5"]) == 0
    page = (run / "report.html").read_text()
    assert "wrote" in capsys.readouterr().out
    # config, latest metrics (step 100, not 0), synthetic-features note
    assert "connectivity" in page and "R2R_sample_val_seen.json" in page
    table = page[page.index("Latest metrics"):page.index("Learning curves")]
    assert "<td>val_seen</td><td>100</td>" in table and "<td>0.100</td>" in table
    assert "no visual information" in page
    # curves for both metrics and 5 thumbnails, all real PNGs, nothing linked from outside the page
    pictures = images_of(page)
    assert len(pictures) == 2 + 5 and all(p.format == "PNG" for p in pictures)
    assert "src='http" not in page and "href=" not in page
    # the step-100 (random) predictions, every episode listed, failures first
    random = {p["instr_id"]: p for p in baseline_predictions("random", episodes, connectivity, seed=0)}
    listed = re.findall(r"<h4>([^<:]+): (success|failure)</h4>", page)
    assert sorted(i for i, _ in listed) == sorted(random)
    outcomes = [o for _, o in listed]
    assert outcomes == sorted(outcomes)  # "failure" < "success"
    assert "success" in outcomes and "failure" in outcomes
    first = next(ep for ep in episodes if ep.instr_id == listed[0][0])
    assert first.instruction.strip()[:40] in page


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "config.yaml" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "report.html").exists()


def test_moved_data_leaves_a_note(tmp_path, capsys):
    run = tmp_path / "run"
    save_config(run / "config.yaml", R2RConfig(data=R2RConfig().data.__class__(root=str(tmp_path / "gone"))))
    (run / "eval" / "val_seen").mkdir(parents=True)
    (run / "eval" / "val_seen" / "predictions-000000000.json").write_text("[]")
    assert main(["report", str(run)]) == 0
    assert "episodes not listed" in (run / "report.html").read_text()


def test_headless_browser_renders_the_page(run_dir, tmp_path):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip(f"no headless browser ({', '.join(BROWSERS)}) on PATH")
    run, _, _ = run_dir
    page = tmp_path / "report.html"
    assert main(["report", str(run), "--output", str(page), "--thumbnails", "3"]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,1600", page.as_uri()], capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == (1200, 1600)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or ()) > 50  # text and pictures, not blank
