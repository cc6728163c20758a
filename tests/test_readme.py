"""The README's and docs/*.md's shell commands run as written.

Every fenced ```bash block is read like a shell would (backslash continuations joined, ``&&``/``;``/``|``/``&``
separating commands, comments dropped, variables assigned in the block expanded). Every ``valan`` command must
parse with the real CLI parser, every ``valan train`` config must load with its ``--set`` overrides, every
repository file a command names must exist (and the documents' links), every ``python scripts/X.py`` must
answer ``--help``, every ``python -c`` must run, and the README's baseline table must be what ``valan evaluate r2r
--baseline all`` prints. The slow test then runs the README's R2R sample loop for real with a tiny budget:
``valan train``, then the commands that use its run folder or the bundled sample (evaluate, predict, report).
Failures name the document and line.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from valan.cli import build_parser, main
from valan.data import sample_path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REPO_FOLDERS = ("configs/", "scripts/", "data/", "tests/", "docs/", "valan/", "envs/", "agents/")
SHARED = "../shared/data/"  # the README's commands run from the repository root, beside ../shared
PLACEHOLDER = re.compile(r"^(?!LATEST$|BEST$)[A-Z]+(_[A-Z]+)*$")  # FILE, DIR, CKPT, RUN_DIR, T; not LATEST.pt
SHELL_KEYWORDS = {"do", "then", "else", "done", "fi"}
RUN = "runs/r2r_sample"  # the default run.logdir, where the README's follow-up commands look


@dataclass(frozen=True)
class Command:
    """One simple command of a bash block: ``where`` is ``README.md:143``, ``text`` the line(s) as written,
    ``words`` the arguments after the block's variables are expanded (a command substitution becomes the word
    ``SUBSTITUTED``). Words that are placeholders (FILE, DIR, ...) or came from the shell are only parsed: no file
    is looked for under them."""

    where: str
    text: str
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"

    @property
    def program(self) -> str:
        return Path(self.words[0]).name if self.words else ""


def is_placeholder(word: str) -> bool:
    """A word standing for a value the reader supplies: ``FILE``, ``FILE.jsonl``, ``<head-node-ip>:6379``, ..."""
    if "<" in word or word.startswith("/path/"):
        return True
    return any(PLACEHOLDER.match(part) for part in re.split(r"[=/.,:]", word) if part)


def bash_lines(path: Path) -> list[tuple[int, str]]:
    """The logical lines (continuations joined) of ``path``'s ```bash blocks, with the line each starts on."""
    lines, inside, pending, start = [], False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith("```"):
            inside = not inside and line.strip() in ("```bash", "```sh", "```shell")
            continue
        if not inside:
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append((start, pending + line))
        pending = ""
    return lines


def expand(text: str, variables: dict[str, str]) -> str:
    """``text`` with ``$(...)`` replaced by a stand-in word and ``$NAME`` / ``${NAME}`` by the value the block
    assigned (textually, so an unquoted ``$DATA`` splits into words as the shell splits it)."""
    text = re.sub(r"\$\([^()]*\)", "SUBSTITUTED", text)
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), "VALUE"), text)


def segments(line: str) -> list[str]:
    """``line`` cut at the unquoted ``&&``, ``||``, ``;``, ``|`` and a background ``&``, before an unquoted
    ``#`` comment."""
    parts, current, quote, depth, i = [], "", "", 0, 0
    while i < len(line):
        char = line[i]
        if quote:
            quote = "" if char == quote else quote
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char in "'\"":
            quote = char
        elif line.startswith("$(", i):
            depth, char = 1, "$("
        elif char == "#" and (not current or current[-1].isspace()):
            break
        elif char in ";|&" and not line.startswith(">&", i - 1) and not line.startswith("&>", i):
            parts.append(current)
            current, char = "", ""
            i += 1 if line[i:i + 2] in ("&&", "||") else 0
        current += char
        i += len(char) or 1
    return [p.strip() for p in [*parts, current] if p.strip()]


def commands_of(path: Path) -> list[Command]:
    """Every simple command in ``path``'s bash blocks (assignments and loop headers only feed ``variables``)."""
    found, variables = [], {}
    for number, line in bash_lines(path):
        for raw in segments(line):
            # "[--json] [--plot-dir DIR]" in a synopsis: the optional arguments, given
            raw = re.sub(r"(?<=\s)\[(-[^\[\]]*)\]", r"\1", raw)
            words = shlex.split(expand(raw, variables))
            while words and words[0] in SHELL_KEYWORDS:
                words = words[1:]
                raw = raw.split(None, 1)[1] if " " in raw else ""
            if not words or words[0] == "[":
                continue
            if words[0] == "for" and len(words) >= 4 and words[2] == "in":
                variables[words[1]] = words[3]  # the loop's first value
                continue
            assignments = [re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", w, re.S) for w in words]
            if all(assignments):
                variables.update(m.groups() for m in assignments)
                continue
            found.append(Command(f"{path.relative_to(ROOT)}:{number}", raw, tuple(words)))
    return found


COMMANDS = [c for document in DOCUMENTS for c in commands_of(document)]
VALAN = [c for c in COMMANDS if c.program == "valan"]
PYTHON_SCRIPTS = sorted({w for c in COMMANDS if c.program.startswith("python") for w in c.words[1:2]
                         if w.startswith("scripts/") and w.endswith(".py")})


def test_the_documents_have_valan_commands():
    """The reader found commands at all (a block format it misreads would otherwise pass silently)."""
    assert len(VALAN) >= 10, [str(c) for c in VALAN]
    assert any(c.words == ("valan", "train") for c in VALAN), "README.md lost its bare `valan train`"


@pytest.mark.parametrize("command", VALAN, ids=[c.where for c in VALAN])
def test_valan_command_parses(command, monkeypatch):
    argv = list(command.words[1:])
    parser = build_parser(argv)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{command} does not parse: {stderr.getvalue().strip().splitlines()[-1]}")
    assert hasattr(args, "_run"), f"{command} names a command group, not a command"
    if command.words[1] == "train" and not (args.config and is_placeholder(str(args.config))):
        from valan.errors import InputError
        from valan.problems import load_train_config

        monkeypatch.chdir(ROOT)
        try:
            load_train_config(args.config, args.overrides)
        except InputError as e:
            pytest.fail(f"{command}: its config does not load: {e}")


def repo_paths(command: Command) -> list[str]:
    """The words (or ``key=value`` values) of ``command`` that name an input inside the repository, or in
    ``../shared/data`` where that exists."""
    shared = (ROOT / SHARED).is_dir()
    named = []
    for word in command.words[1:]:
        for candidate in (word, word.partition("=")[2]):
            candidate = candidate.rstrip("/")
            if "$" in candidate or is_placeholder(candidate):
                continue
            if candidate.startswith(REPO_FOLDERS) or (shared and candidate.startswith(SHARED)):
                named.append(candidate)
    return named


def test_files_the_commands_name_exist():
    missing = [f"{c.where}: {path} (in `{c.text}`)" for c in COMMANDS for path in repo_paths(c)
               if not (ROOT / path).exists()]
    assert not missing, "files named in the documents' commands do not exist:\n" + "\n".join(missing)


def test_links_between_documents_exist():
    missing = []
    for document in DOCUMENTS:
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            for target in re.findall(r"\]\(([^)#\s]+)[^)]*\)", line):
                if "://" not in target and not (document.parent / target).exists():
                    missing.append(f"{document.relative_to(ROOT)}:{number}: {target}")
    assert not missing, "links to files that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("script", PYTHON_SCRIPTS)
def test_python_scripts_answer_help(script):
    where = [c.where for c in COMMANDS if script in c.words]
    assert (ROOT / script).is_file(), f"{', '.join(where)}: {script} does not exist"
    done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage" in done.stdout, f"{', '.join(where)}: {script} --help: {done.stderr[-500:]}"


PYTHON_C = [c for c in COMMANDS if c.program.startswith("python") and c.words[1:2] == ("-c",)]


@pytest.mark.parametrize("command", PYTHON_C, ids=[c.where for c in PYTHON_C])
def test_python_one_liners_run(command):
    done = subprocess.run([sys.executable, *command.words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}: {done.stderr[-800:]}"


BASELINE_COLUMNS = {"SR": "success_rate", "SPL": "spl", "NE m": "nav_error", "OSR": "oracle_success_rate",
                    "TL m": "trajectory_length", "nDTW": "ndtw", "SDTW": "sdtw", "CLS": "cls"}


def test_the_readme_baseline_table_is_what_the_command_prints(capsys):
    """The README's table of baselines on the bundled sample (``| agent | SR | ...``) to its printed precision."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    (start,) = [i for i, line in enumerate(lines) if re.match(r"^\|\s*agent\s*\|", line)][:1] or [None]
    assert start is not None, "README.md has no `| agent | SR | ...` baseline table"
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    assert main(["evaluate", "r2r", "--baseline", "all", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    wrong = []
    for number in range(start + 2, len(lines)):
        if not lines[number].startswith("|"):
            break
        cells = dict(zip(header, (cell.strip() for cell in lines[number].strip("|").split("|"))))
        for column, text in cells.items():
            if column in BASELINE_COLUMNS:
                decimals = len(text.partition(".")[2])
                actual = printed[cells["agent"]][BASELINE_COLUMNS[column]]
                if abs(float(text) - actual) > 0.5 * 10 ** -decimals + 1e-9:
                    wrong.append(f"README.md:{number + 1}: {cells['agent']} {column} {text}, printed {actual:.4f}")
    assert not wrong and number > start + 2, "\n".join(wrong) or "the baseline table has no rows"


# --- the R2R sample loop, for real ---------------------------------------------------------------------------

TINY = ["--no-progress", "--set", "run.total_env_steps=384", "--set", "run.checkpoint_every_env_steps=0",
        "--set", "distributed.num_actors=1", "--set", "distributed.envs_per_actor=8",
        "--set", "learning.batch_size=8", "--set", "learning.unroll_length=6"]  # one learner step
OUTPUT_OPTIONS = ("--output", "--save-predictions", "--plot-dir")


def on_the_sample(command: Command, predictions: str | None) -> list[str] | None:
    """``command``'s arguments made to run on the bundled R2R sample from a folder holding the README's run
    folder ``runs/r2r_sample``: a checkpoint of another run folder becomes the same-named one of that run, data
    outside the repository (or a placeholder) the bundled val_seen split and graph, ``--predictions`` the file
    an earlier ``valan predict r2r`` wrote; ``None`` for commands that are not about the R2R sample."""
    words = list(command.words[1:])
    r2r = words[:2] in (["evaluate", "r2r"], ["predict", "r2r"])
    if not (r2r or (words[0] == "report" and any(w.startswith(RUN) for w in words))):
        return None
    replace = {"--data": str(sample_path("R2R_sample_val_seen.json")), "--connectivity": str(sample_path("connectivity")),
               "--output": "predictions.json", "--save-predictions": "predictions.json",
               "--plot-dir": "plots"}
    argv = []
    for i, word in enumerate(words):
        option = words[i - 1] if i else ""
        if option == "--checkpoint":
            word = re.sub(r"^runs/[^/]+/", RUN + "/", word) if not is_placeholder(word) else f"{RUN}/checkpoints/LATEST.pt"
        elif option == "--predictions":
            if predictions is None:
                return None
            word = predictions
        elif option in replace and (is_placeholder(word) or word.startswith("../")):
            word = replace[option]
        argv.append(word)
    return argv


@pytest.mark.slow
def test_the_readme_sample_loop_runs(tmp_path, monkeypatch, capsys):
    """``valan train`` (tiny budget) from a fresh folder, then every documented command that uses its run folder
    or the bundled R2R sample, as written apart from the substitutions of :func:`on_the_sample`."""
    monkeypatch.chdir(tmp_path)
    train = next(c for c in VALAN if c.words == ("valan", "train"))
    assert main([*train.words[1:], *TINY]) == 0, f"{train}: {capsys.readouterr().err[-1500:]}"
    capsys.readouterr()
    run_paths = [(c, w) for c in COMMANDS for w in c.words if w.startswith(RUN + "/")]
    missing = [f"{c.where}: {w}" for c, w in run_paths if not Path(w).exists()]
    assert not missing, f"after {train.where}'s `valan train` these do not exist:\n" + "\n".join(missing)

    predicted = None
    ordered = sorted(VALAN, key=lambda c: c.words[1:3] != ("predict", "r2r"))  # predictions first, then scoring
    ran = set()
    for command in ordered:
        argv = on_the_sample(command, predicted)
        if argv is None:
            continue
        status = main(argv)
        out, err = capsys.readouterr()
        assert status == 0, f"{command}\n  ran as: valan {shlex.join(argv)}\n  {err.strip()[-1500:]}"
        for option, value in zip(argv, argv[1:]):
            if option in OUTPUT_OPTIONS:
                assert Path(value).exists(), f"{command}: wrote no {value}"
        if argv[:2] == ["predict", "r2r"]:
            predicted = argv[argv.index("--output") + 1]
            saved = json.loads(Path(predicted).read_text())
            data = json.loads(sample_path("R2R_sample_val_seen.json").read_text())
            expected = sorted(f"{d['path_id']}_{i}" for d in data for i in range(len(d["instructions"])))
            assert sorted(p["instr_id"] for p in saved) == expected, f"{command}: not one prediction per instruction"
        if argv[0] == "report":
            assert (Path(argv[1]) / "report.html").is_file(), f"{command}: no report.html"
        if "--baseline" in argv:
            assert all(agent in out for agent in ("random", "shortest", "stop")), f"{command}: {out}"
        ran.add(" ".join(argv[:2] if argv[0] != "report" else argv[:1])
                + "".join(f" {o}" for o in ("--checkpoint", "--baseline", "--predictions") if o in argv))
    expected = {"evaluate r2r --checkpoint", "evaluate r2r --baseline", "evaluate r2r --predictions",
                "predict r2r --checkpoint", "report"}
    assert expected <= ran, f"the documents no longer show (or these runs skipped): {sorted(expected - ran)}"
