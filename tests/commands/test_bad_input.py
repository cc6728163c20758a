"""Bad input to every subcommand: exit status 2, exactly one line on stderr naming the file (or option) at fault,
no traceback, and nothing written to the output path (an output already there is left as it was).

The corpus (built once per module under a temporary folder) holds files that cannot be read as what they claim
to be (missing, truncated or malformed, not UTF-8, nested too deeply, a directory, unreadable), data that reads
but is invalid (non-adjacent path steps, unknown viewpoints, scans and panoramas, headings that are NaN or
strings), checkpoints of the wrong kind, and outputs that cannot be written (parent path is a file, a directory
in the file's place, an unwritable folder, a full disk). Each case runs ``valan.cli.main`` in-process; a closed
stdout (``valan ... | head``) needs a real pipe, so that case runs a subprocess. ``valan train`` cases fail in
``Problem.check_inputs``, before Ray starts (``ray.init`` is replaced by a failure to make sure).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from valan.cli import main
from valan.data import sample_path

UNWRITABLE_SYSTEM_FOLDER = Path("/sys")  # not writable even by root in containers and on ordinary systems

R2R_VAL = sample_path("R2R_sample_val_seen.json")
CONNECTIVITY = sample_path("connectivity")
TOUCHDOWN = sample_path("streetview/touchdown_sample.jsonl")
SV_GRAPH = sample_path("streetview/graph")

# Files that cannot be read as what they claim to be: name -> how the corpus makes it.
UNREADABLE = ("missing", "truncated", "non_utf8", "deep", "directory", "no_permission")


@dataclass(frozen=True)
class Case:
    """``argv`` (``{name}`` placeholders are corpus paths), the corpus entry the error line must name (or a literal
    fragment such as an option), and the output that must stay as it was (absent, or an existing file's bytes)."""

    id: str
    argv: str
    names: str
    output: str | None = None
    disk_full: bool = False  # every fsync fails with ENOSPC (a full disk) while the command runs


# --------------------------------------------------------------------------------------------------- corpus


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _unreadable_files(folder: Path, stem: str, suffix: str, good: bytes) -> dict[str, Path]:
    """The :data:`UNREADABLE` variants of a file whose valid content is ``good``."""
    files = {  # the missing file and the directory are made below
        "missing": folder / f"{stem}_missing{suffix}",
        "truncated": _write(folder / f"{stem}_truncated{suffix}", good[: len(good) // 2]),
        "non_utf8": _write(folder / f"{stem}_non_utf8{suffix}", good.replace(b"e", b"\xe9", 1) + b"\xff"),
        "deep": _write(folder / f"{stem}_deep{suffix}", b"[" * 50_000 + b"]" * 50_000),
        "directory": folder / f"{stem}_directory{suffix}",
        "no_permission": _write(folder / f"{stem}_no_permission{suffix}", good),
    }
    files["directory"].mkdir()
    files["no_permission"].chmod(0)
    return {f"{stem}_{kind}": path for kind, path in files.items()}


def _feature_stores(folder: Path) -> dict[str, Path]:
    """Feature sources that read but lack nodes the data needs: a store with one R2R viewpoint, an SDR folder
    with the map of one unrelated panorama."""
    import numpy as np

    from valan.features.stores import StoreWriter

    with StoreWriter(folder / "store_one_viewpoint", count=1, views=36, dim=8) as writer:
        writer.write("no-scan", "no-viewpoint", np.zeros((36, 8), np.float32))
    maps = folder / "sdr_maps_one_panorama"
    maps.mkdir()
    np.save(maps / "not-a-touchdown-panorama.npy", np.zeros((4, 8, 3), np.float32))
    return {"store_one_viewpoint": folder / "store_one_viewpoint", "sdr_maps_one_panorama": maps}


def _r2r_variants(folder: Path) -> dict[str, Path]:
    """R2R data that parses but is invalid on the sample's graphs, one defect per file."""
    from valan.envs.r2r.graph import Connectivity

    records = json.loads(R2R_VAL.read_text())
    graph = Connectivity(CONNECTIVITY).graph(records[0]["scan"])
    start = records[0]["path"][0]
    far = next(vp for vp in graph.viewpoints if vp != start and not graph.adjacent(start, vp))
    defects = {
        "non_adjacent": lambda r: r[0].update(path=[start, far]),
        "unknown_viewpoint": lambda r: r[1]["path"].__setitem__(1, "feedface"),
        "unknown_scan": lambda r: r[2].update(scan="NoSuchScan"),
        "nan_heading": lambda r: r[3].update(heading=float("nan")),
        "string_heading": lambda r: r[4].update(heading="north"),
    }
    out = {}
    for name, defect in defects.items():
        changed = json.loads(R2R_VAL.read_text())
        defect(changed)
        out[f"r2r_{name}"] = _write(folder / f"r2r_{name}.json", json.dumps(changed))  # NaN as JSON's NaN
    return out


def _r2r_prediction_variants(folder: Path) -> dict[str, Path]:
    """Shortest-path predictions for the sample, with one defective entry per file."""
    from valan.envs.r2r.dataset import load_r2r

    good = [{"instr_id": ep.instr_id, "trajectory": [[vp, 0.0, 0.0] for vp in ep.path]}
            for ep in load_r2r(R2R_VAL)]
    defects = {
        "nan_heading": lambda p: p[0]["trajectory"][1].__setitem__(1, float("nan")),
        "string_heading": lambda p: p[1]["trajectory"][0].__setitem__(1, "east"),
        "inf_elevation": lambda p: p[2]["trajectory"][0].__setitem__(2, float("inf")),
        "unknown_instr_id": lambda p: p[3].update(instr_id="999999_0"),
        "off_graph_step": lambda p: p[4]["trajectory"].append(["feedface", 0.0, 0.0]),
    }
    out = {"r2r_predictions": _write(folder / "r2r_predictions.json", json.dumps(good))}
    for name, defect in defects.items():
        changed = json.loads(json.dumps(good))
        defect(changed)
        out[f"r2r_pred_{name}"] = _write(folder / f"r2r_pred_{name}.json", json.dumps(changed))
    return out


def _streetview_variants(folder: Path) -> dict[str, Path]:
    """Touchdown routes that parse but are invalid on the sample's graph, and predictions for the good routes."""
    from valan.envs.streetview.graph import load_graph

    lines = [json.loads(line) for line in TOUCHDOWN.read_text().splitlines() if line.strip()]
    graph = load_graph(SV_GRAPH)
    first = lines[0]["route_panoids"][0]
    unlinked = next(p for p in graph.panoids if p != first and not graph.has_link(graph.index[first], graph.index[p]))
    defects = {
        "unknown_panoid": lambda r: r[0]["route_panoids"].__setitem__(1, "no-such-pano"),
        "unlinked_step": lambda r: r[0].update(route_panoids=[first, unlinked]),
        "nan_heading": lambda r: r[1].update(start_heading=float("nan")),
        "string_heading": lambda r: r[1].update(start_heading="north"),
    }
    out = {"td_predictions": _write(folder / "td_predictions.json", json.dumps(
        [{"route_id": r["route_id"], "trajectory": r["route_panoids"]} for r in lines]))}
    for name, defect in defects.items():
        changed = json.loads(json.dumps(lines))
        defect(changed)
        out[f"td_{name}"] = _write(folder / f"td_{name}.jsonl", "".join(json.dumps(r) + "\n" for r in changed))
    return out


def _checkpoints(folder: Path) -> dict[str, Path]:
    """A tiny R2R training checkpoint, a Touchdown one, a discriminator and an SDR run (trained for a step or
    a few), and a file that is no checkpoint at all."""
    import torch

    from valan.checkpoint import save_checkpoint
    from valan.config import to_dict
    from valan.configs import config_path
    from valan.problems import get_problem, load_train_config

    torch.set_num_threads(1)
    out = {}
    for name, config_file in (("r2r", None), ("touchdown", "touchdown_sample.yaml")):
        config = load_train_config(config_file and config_path(config_file),
                                   ["agent.hidden_dim=8", "agent.embed_dim=4", "agent.core_layers=1"])
        problem = get_problem(config.problem)
        agent = problem.make_agent(config)
        out[f"{name}_ckpt"] = save_checkpoint(folder / f"{name}.pt", {
            "model": agent.state_dict(), "config": to_dict(config), "problem": config.problem, "step": 0,
            "vocab": problem.vocabulary(config).tokens})
    tiny = ["--set", "run.total_steps=1", "--set", "run.eval_every_steps=1", "--set", "run.num_threads=1"]
    disc = ["--set", "model.hidden_dim=8", "--set", "model.embed_dim=4", "--set", "learning.batch_size=8",
            "--set", "data.synthetic_dim=8"]
    assert main(["train-discriminator", "--out", str(folder / "disc"), *tiny, *disc]) == 0
    out["disc_ckpt"] = folder / "disc" / "checkpoints" / "ckpt-000000001.pt"
    assert main(["train-sdr", "--out", str(folder / "sdr"), *tiny]) == 0
    out["sdr_ckpt"] = folder / "sdr" / "checkpoints" / "ckpt-000000001.pt"
    out["garbage_ckpt"] = _write(folder / "garbage.pt", b"PK\x03\x04 not really a zip archive")
    return out


def _outputs(folder: Path) -> dict[str, Path]:
    """Output paths (fresh ones, ``out_file`` and ``out_dir``, are made per case): one under a file, a directory in a file's place, an existing file (to stay
    intact), an unwritable folder."""
    a_file = _write(folder / "a_file.txt", "not a folder\n")
    read_only = folder / "read_only"
    read_only.mkdir()
    _write(read_only / "existing.json", "old content\n")
    read_only.chmod(0o555)
    out = {
        "a_file": a_file,
        "under_a_file": a_file / "result.json",
        "under_a_file_dir": a_file / "run",
        "a_directory": folder / "a_directory",
        "existing": _write(folder / "existing.json", "old content\n"),
        "read_only_existing": read_only / "existing.json",
        "system_folder_file": UNWRITABLE_SYSTEM_FOLDER / "valan-bad-input-test.json",
    }
    out["a_directory"].mkdir()
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_input")
    r2r_good = R2R_VAL.read_bytes()
    files: dict[str, Path] = {}
    files.update(_unreadable_files(folder, "json", ".json", r2r_good))
    files.update(_unreadable_files(folder, "jsonl", ".jsonl", TOUCHDOWN.read_bytes()))
    files.update(_unreadable_files(folder, "yaml", ".yaml", b"problem: r2r\nrun:\n  total_steps: 3\n"))
    files["yaml_malformed"] = _write(folder / "yaml_malformed.yaml", "run: {total_steps: [3\n")
    files["tsv_malformed"] = _write(folder / "tsv_malformed.tsv", "scan\tviewpoint\tonly three columns\n")
    files["tsv_missing"] = folder / "tsv_missing.tsv"
    files["tsv_directory"] = folder / "tsv_directory.tsv"
    files["tsv_directory"].mkdir()
    files["images_missing"] = folder / "images_missing"
    files["model_garbage"] = _write(folder / "model_garbage.pt", b"\x00\x01 not a TorchScript archive")
    files["empty_images"] = folder / "empty_images"
    files["empty_images"].mkdir()
    files.update(_feature_stores(folder))
    files.update(_r2r_variants(folder))
    files.update(_r2r_prediction_variants(folder))
    files.update(_streetview_variants(folder))
    files.update(_outputs(folder))
    files.update(_checkpoints(folder / "checkpoints"))
    files["connectivity"] = CONNECTIVITY
    files["sv_graph"] = SV_GRAPH
    yield files
    for path in files.values():  # let pytest clean the folder up
        if path.exists() and not str(path).startswith(str(UNWRITABLE_SYSTEM_FOLDER)):
            path.chmod(0o755 if path.is_dir() else 0o644)


# ---------------------------------------------------------------------------------------------------- cases

# Commands that read one file, with ``{F}`` for it: each runs on every unreadable variant of the file's kind.
READERS = {
    "json": [
        "evaluate r2r --baseline stop --data {F}",
        "evaluate r2r --predictions {F}",
        "evaluate streetview --predictions {F}",
        "data check r2r --data {F} --connectivity {connectivity}",
        "score --checkpoint {disc_ckpt} --data {F} --output {out_file}",
        "filter --checkpoint {disc_ckpt} --data {F} --keep-top 0.5 --output {out_file}",
        "evaluate r2r --checkpoint {r2r_ckpt} --data {F}",
        "predict r2r --checkpoint {r2r_ckpt} --data {F} --output {out_file}",
        "data split r2r --data {F} --out {out_dir}",
        "train --set data.train=[{F}] --out {out_dir}",
        "train-discriminator --set data.train=[{F}] --out {out_dir}",
    ],
    "jsonl": [
        "evaluate streetview --predictions {td_predictions} --data {F}",
        "data check streetview --data {F}",
        "evaluate sdr --checkpoint {sdr_ckpt} --data {F}",
        "train-sdr --set data.train={F} --out {out_dir}",
    ],
    "yaml": [
        "train --config {F} --out {out_dir}",
        "train-discriminator --config {F} --out {out_dir}",
        "pretrain-alignment --config {F} --out {out_dir}",
        "train-sdr --config {F} --out {out_dir}",
    ],
}
# Which variants each reader gets (all but the deepest nesting for the slower YAML parser is the same set).
VARIANTS = {"json": UNREADABLE, "jsonl": UNREADABLE, "yaml": ("missing", "non_utf8", "directory", "no_permission")}

INVALID_DATA = [
    Case(f"{cmd.split(' --')[0].replace(' ', '-')}/{name}", cmd.replace("{F}", "{" + name + "}").replace("{out}", "{out_file}"), name,
         "out_file")
    for name in ("r2r_non_adjacent", "r2r_unknown_viewpoint", "r2r_unknown_scan", "r2r_nan_heading",
                 "r2r_string_heading")
    for cmd in ("evaluate r2r --baseline all --data {F}", "train --set data.train=[{F}] --out {out}")
] + [
    Case(f"data-check-r2r/{name}", f"data check r2r --data {{{name}}} --connectivity {{connectivity}}", name)
    for name in ("r2r_non_adjacent", "r2r_nan_heading")
] + [
    Case(f"train-discriminator/{name}", f"train-discriminator --set data.train=[{{{name}}}] --out {{out_dir}}", name,
         "out_dir")
    for name in ("r2r_non_adjacent", "r2r_unknown_viewpoint", "r2r_string_heading")
] + [
    Case(f"train-discriminator/eval-{name}", f"train-discriminator --set 'data.eval={{{{val_seen: {{{name}}}}}}}' "
         "--out {out_dir}", name, "out_dir")
    for name in ("r2r_non_adjacent",)
] + [
    Case("score/r2r_non_adjacent", "score --checkpoint {disc_ckpt} --data {r2r_non_adjacent} --output {out_file}",
         "r2r_non_adjacent", "out_file"),
    Case("filter/r2r_unknown_scan", "filter --checkpoint {disc_ckpt} --data {r2r_unknown_scan} --keep-top 0.5 "
         "--output {out_file}", "r2r_unknown_scan", "out_file"),
    Case("evaluate-r2r-checkpoint/r2r_non_adjacent", "evaluate r2r --checkpoint {r2r_ckpt} --data {r2r_non_adjacent}",
         "r2r_non_adjacent"),
    Case("predict/r2r_unknown_viewpoint", "predict r2r --checkpoint {r2r_ckpt} --data {r2r_unknown_viewpoint} "
         "--output {out_file}", "r2r_unknown_viewpoint", "out_file"),
] + [
    Case(f"evaluate-r2r-predictions/{name}", f"evaluate r2r --predictions {{{name}}} --plot-dir {{out_dir}}", name,
         "out_dir")
    for name in ("r2r_pred_nan_heading", "r2r_pred_string_heading", "r2r_pred_inf_elevation",
                 "r2r_pred_unknown_instr_id", "r2r_pred_off_graph_step")
] + [
    Case(f"evaluate-streetview/{name}", f"evaluate streetview --predictions {{td_predictions}} --data {{{name}}}", name)
    for name in ("td_unknown_panoid", "td_unlinked_step", "td_nan_heading", "td_string_heading")
] + [
    Case(f"train-touchdown/{name}", f"train --set problem=touchdown --set data.train=[{{{name}}}] --out {{out_dir}}",
         name, "out_dir")
    for name in ("td_unknown_panoid", "td_unlinked_step")
] + [
    Case("data-check-streetview/td_nan_heading", "data check streetview --data {td_nan_heading}", "td_nan_heading"),
]

WRONG_CHECKPOINTS = [
    Case("evaluate-r2r/touchdown-checkpoint", "evaluate r2r --checkpoint {touchdown_ckpt}", "touchdown_ckpt"),
    Case("evaluate-r2r/discriminator-checkpoint", "evaluate r2r --checkpoint {disc_ckpt}", "disc_ckpt"),
    Case("evaluate-streetview/r2r-checkpoint", "evaluate streetview --checkpoint {r2r_ckpt}", "r2r_ckpt"),
    Case("evaluate-sdr/r2r-checkpoint", "evaluate sdr --checkpoint {r2r_ckpt} --data " + str(TOUCHDOWN), "r2r_ckpt"),
    Case("score/r2r-checkpoint", "score --checkpoint {r2r_ckpt} --data {json_truncated} --output {out_file}",
         "r2r_ckpt", "out_file"),
    Case("predict/sdr-checkpoint", "predict r2r --checkpoint {sdr_ckpt} --data {r2r_predictions} --output {out_file}",
         "sdr_ckpt", "out_file"),
] + [
    Case(f"{cmd.split(' --')[0].replace(' ', '-')}/checkpoint-{kind}", cmd.replace("{C}", "{" + kind + "}"), kind)
    for kind in ("garbage_ckpt", "json_missing", "json_directory")
    for cmd in ("evaluate r2r --checkpoint {C}", "score --checkpoint {C} --data " + str(R2R_VAL) + " --output {out_file}")
]

UNWRITABLE = [
    Case("score/parent-is-a-file", "score --checkpoint {disc_ckpt} --data " + str(R2R_VAL) + " --output {under_a_file}",
         "a_file", "under_a_file"),
    Case("filter/output-is-a-directory", "filter --checkpoint {disc_ckpt} --data " + str(R2R_VAL)
         + " --keep-top 0.5 --output {a_directory}", "a_directory"),
    Case("evaluate-r2r/plot-dir-is-a-file", "evaluate r2r --predictions {r2r_predictions} --plot-dir {a_file}",
         "a_file", "a_file"),
    Case("evaluate-r2r/save-predictions-under-a-file", "evaluate r2r --checkpoint {r2r_ckpt} --save-predictions "
         "{under_a_file}", "a_file", "under_a_file"),
    Case("predict/output-is-a-directory", "predict r2r --checkpoint {r2r_ckpt} --data " + str(R2R_VAL)
         + " --output {a_directory} --no-progress", "a_directory"),
    Case("features-convert/out-under-a-file", "features convert --tsv {tsv_malformed} --out {under_a_file_dir}",
         "tsv_malformed", "under_a_file_dir"),
    Case("train-discriminator/out-is-a-file", "train-discriminator --set run.total_steps=1 --out {a_file}",
         "a_file", "a_file"),
    Case("score/read-only-folder", "score --checkpoint {disc_ckpt} --data " + str(R2R_VAL)
         + " --output {read_only_existing}", "read_only_existing", "read_only_existing"),
    Case("score/unwritable-system-folder", "score --checkpoint {disc_ckpt} --data " + str(R2R_VAL)
         + " --output {system_folder_file}", "system_folder_file", "system_folder_file"),
    Case("score/disk-full", "score --checkpoint {disc_ckpt} --data " + str(R2R_VAL) + " --output {existing}",
         "existing", "existing", disk_full=True),
    Case("filter/disk-full", "filter --checkpoint {disc_ckpt} --data " + str(R2R_VAL)
         + " --keep-top 0.5 --output {existing}", "existing", "existing", disk_full=True),
    Case("evaluate-r2r/disk-full-plots", "evaluate r2r --baseline stop --plot-dir {out_dir}", "out_dir",
         disk_full=True),
]

OTHER = [
    Case("features-convert/tsv-malformed", "features convert --tsv {tsv_malformed} --out {out_dir}", "tsv_malformed",
         "out_dir"),
    Case("features-convert/tsv-missing", "features convert --tsv {tsv_missing} --out {out_dir}", "tsv_missing",
         "out_dir"),
    Case("features-convert/tsv-directory", "features convert --tsv {tsv_directory} --out {out_dir}", "tsv_directory",
         "out_dir"),
    Case("features-extract/images-missing", "features extract --images {images_missing} --model {model_garbage} "
         "--out {out_dir}", "images_missing", "out_dir"),
    Case("features-extract/images-empty", "features extract --images {empty_images} --model {model_garbage} "
         "--out {out_dir}", "empty_images", "out_dir"),
    Case("train-discriminator/features-missing-viewpoints", "train-discriminator --set data.features="
         "{store_one_viewpoint} --out {out_dir}", "store_one_viewpoint", "out_dir"),
    Case("pretrain-alignment/features-missing-viewpoints", "pretrain-alignment --set data.features="
         "{store_one_viewpoint} --out {out_dir}", "store_one_viewpoint", "out_dir"),
    Case("train/features-missing-viewpoints", "train --set data.features={store_one_viewpoint} --out {out_dir}",
         "store_one_viewpoint", "out_dir"),
    Case("train-sdr/feature-maps-missing-panoramas", "train-sdr --set features.source=npy --set "
         "features.path={sdr_maps_one_panorama} --out {out_dir}", "sdr_maps_one_panorama", "out_dir"),
    Case("pretrain-alignment/unknown-task", "pretrain-alignment --tasks foo --out {out_dir}", "--tasks", "out_dir"),
    Case("evaluate-r2r/connectivity-missing", "evaluate r2r --baseline stop --connectivity {json_missing}",
         "json_missing"),
    Case("evaluate-streetview/graph-missing", "evaluate streetview --predictions {td_predictions} --graph "
         "{json_missing}", "json_missing"),
    Case("data-split-streetview/data-non-utf8", "data split streetview --data {jsonl_non_utf8} --graph {sv_graph} "
         "--out {out_dir}", "jsonl_non_utf8", "out_dir"),
]

def _reader_id(cmd: str) -> str:
    """``evaluate-r2r--data``: the command words and the option that takes the bad file."""
    words, parts = cmd.split(" --")[0].replace(" ", "-"), cmd.split()
    at = next(k for k, part in enumerate(parts) if "{F}" in part)
    flags = [part for part in parts[:at] if part.startswith("--") and part != "--set"]
    return words + "".join(flags) + ("-" + parts[at].split("=")[0] if parts[at - 1] == "--set" else "")


CASES = [
    Case(f"{_reader_id(cmd)}/{kind}-{variant}", cmd.replace("{F}", f"{{{kind}_{variant}}}"),
         f"{kind}_{variant}", next((o for o in ("out_file", "out_dir") if "{" + o + "}" in cmd), None))
    for kind, commands in READERS.items() for cmd in commands for variant in VARIANTS[kind]
] + INVALID_DATA + WRONG_CHECKPOINTS + UNWRITABLE + OTHER


def test_the_corpus_is_large_and_covers_every_subcommand():
    from valan.cli import COMMANDS

    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    words = {" ".join(w) for w in COMMANDS}
    covered = {next(w for w in sorted(words, key=len, reverse=True) if c.argv.startswith(w)) for c in CASES}
    assert {"train", "evaluate r2r", "evaluate streetview", "evaluate sdr", "data check r2r", "data check streetview",
            "data split r2r", "data split streetview", "features convert", "features extract", "train-sdr",
            "train-discriminator", "score", "filter", "pretrain-alignment", "predict"} <= covered


def _writable(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (tried: permission bits do not tell for root or for /sys)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _permissions_bind() -> bool:
    """Whether file permissions stop this process (not for root with its usual capabilities): tried."""
    fd, name = tempfile.mkstemp()
    os.close(fd)
    os.chmod(name, 0)
    try:
        with open(name, "rb"):
            return False
    except PermissionError:
        return True
    finally:
        os.unlink(name)


def _skip_reason(case: Case) -> str | None:
    if ("no_permission" in case.names or "read_only" in case.names) and not _permissions_bind():
        return "file permissions do not stop this process (root): reads and writes go through"
    if "system_folder" in case.names and _writable(UNWRITABLE_SYSTEM_FOLDER):
        return f"{UNWRITABLE_SYSTEM_FOLDER} is writable here"
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_naming_the_file_and_writes_nothing(case, corpus, capsys, monkeypatch, tmp_path):
    if reason := _skip_reason(case):
        pytest.skip(reason)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started: bad input must be rejected before")

    monkeypatch.setattr("ray.init", no_ray)
    if case.disk_full:
        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "fsync", full)
    paths = {**corpus, "out_file": tmp_path / "out" / "result.json", "out_dir": tmp_path / "out" / "run"}
    output = paths[case.output] if case.output else None
    before = output.read_bytes() if output is not None and output.is_file() else None
    existed = output is not None and output.exists()
    argv = [part.format(**{k: str(v) for k, v in paths.items()}) for part in shlex.split(case.argv)]

    status = main(argv)

    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    named = str(paths[case.names]) if case.names in paths else case.names
    assert named in lines[0], (named, lines[0])
    if output is not None:
        if before is not None:
            assert output.read_bytes() == before, "the existing output was changed"
        elif not existed:
            assert not output.exists(), f"{output} was written"
        assert not list(output.parent.glob(f".{output.name}.*")) if output.parent.is_dir() else True


@pytest.mark.parametrize("argv", [["evaluate", "r2r", "--baseline", "stop", "--per-episode"],
                                  ["data", "check", "r2r", "--data", str(R2R_VAL), "--connectivity", str(CONNECTIVITY)]],
                         ids=["evaluate-r2r", "data-check-r2r"])
def test_closed_stdout_ends_quietly(argv):
    """``valan ... | head -1``: the reader is gone before the first line; no traceback, no message, status 141."""
    process = subprocess.Popen([sys.executable, "-m", "valan.cli", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err.decode()
    assert err == b""
