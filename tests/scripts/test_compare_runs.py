"""scripts/compare_runs.py: one row per run at its last (or a chosen) evaluation; bad folders are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_runs.py"


def write_run(folder: Path, evaluations: list[tuple[int, str, float]]) -> Path:
    (folder / "eval").mkdir(parents=True)
    lines = [json.dumps({"split": split, "env_steps": steps, "success_rate": sr, "spl": sr / 2, "ndtw": 0.5})
             for steps, split, sr in evaluations]
    (folder / "eval" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_rows_hold_each_runs_last_evaluation_per_split(tmp_path):
    a = write_run(tmp_path / "a", [(0, "unseen", 0.05), (100, "unseen", 0.2), (100, "seen", 0.3),
                                   (200, "unseen", 0.4), (200, "seen", 0.5)])
    b = write_run(tmp_path / "b", [(0, "unseen", 0.05), (100, "unseen", 0.25), (100, "seen", 0.35)])
    result = compare(str(a), str(b), "--splits", "unseen", "seen")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2] == "| a | 200 | 0.400 / 0.200 / 0.500 | 0.500 / 0.250 / 0.500 |"
    assert lines[3] == "| b | 100 | 0.250 / 0.125 / 0.500 | 0.350 / 0.175 / 0.500 |"
    table = json.loads(lines[-1])
    assert table[str(a)]["unseen"]["success_rate"] == 0.4 and table[str(b)]["env_steps"] == 100
    at_100 = compare(str(a), str(b), "--env-steps", "100", "--splits", "unseen")
    assert "| a | 100 | 0.200 / 0.100 / 0.500 |" in at_100.stdout


def test_a_folder_without_metrics_or_without_that_step_is_a_one_line_error(tmp_path):
    missing = compare(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr
    run = write_run(tmp_path / "a", [(0, "unseen", 0.05), (100, "unseen", 0.2)])
    wrong_step = compare(str(run), "--env-steps", "150")
    assert wrong_step.returncode == 2 and "no evaluation at 150 env steps (evaluated at: [100])" in wrong_step.stderr
    no_split = compare(str(run), "--splits", "seen")
    assert no_split.returncode == 2 and "split 'seen' was not evaluated" in no_split.stderr and not no_split.stdout
