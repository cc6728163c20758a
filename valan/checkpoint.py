"""Checkpoints: atomic writes, weights-only safe loading, keep-the-last-N rotation, named checkpoints.

A checkpoint is a dict saved with ``torch.save``. By convention its keys are ``model`` (state dict),
``optimizer`` (state dict), ``step`` (learner steps), ``config`` (plain dict), ``problem`` (name), plus any
extras (env steps, scheduler state, ...). Everything in it must be loadable with ``torch.load(weights_only=True)``:
tensors, numbers, strings, and lists/tuples/dicts of them; arbitrary objects are refused on load.

A run's ``checkpoints/`` folder holds the numbered ``ckpt-<step>.pt`` and two named ones, real files (hard links
where the file system has them, else copies), each replaced atomically: ``LATEST.pt`` (the newest numbered one)
and, where the trainer has a selection metric, ``BEST.pt`` (the best-scoring weights so far, with ``select``:
``{"split", "metric", "value"}``).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from valan.errors import InputError
from valan.io import atomic_write, os_error

_CHECKPOINT_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
LATEST = "LATEST.pt"
BEST = "BEST.pt"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, refusing anything but weights and plain data.

    Raises ``InputError`` (one line naming the file) when the file is missing, truncated or not a checkpoint,
    or when it holds pickled objects that ``weights_only`` loading does not allow.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file not found", source=str(path))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"refused to load unsafe or corrupt checkpoint ({first_line})", source=str(path)) from None
    except Exception as e:  # a damaged archive surfaces as many types (RuntimeError, EOFError, KeyError, ...)
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"not a readable checkpoint (truncated or corrupt?): {first_line}", source=str(path)) from None
    if not isinstance(state, dict):
        raise InputError(f"a checkpoint must hold a dict, found {type(state).__name__}", source=str(path))
    return state


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Make ``target`` a real file with ``source``'s content, atomically: a hard link (no copy) where the file
    system allows one, else a copy; written beside ``target`` under a temporary name, then renamed over it."""
    source, target = Path(source), Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise os_error(e, target, "cannot write") from None
    return target


class CheckpointManager:
    """Numbered checkpoints ``ckpt-<step>.pt`` in ``directory`` (``keep_last`` of them kept; ``None`` keeps them all),
    ``LATEST.pt`` and ``BEST.pt`` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike, keep_last: int | None = 3):
        if keep_last is not None and keep_last < 1:
            raise InputError(f"keep_last must be >= 1 (or None to keep all), got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def path(self, step: int) -> Path:
        """Where the checkpoint of ``step`` lives."""
        return self.directory / f"ckpt-{step:09d}.pt"

    def all(self) -> list[Path]:
        """Existing checkpoints, oldest (smallest step) first."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = _CHECKPOINT_NAME.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry))
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest checkpoint, or ``None`` when there is none."""
        paths = self.all()
        return paths[-1] if paths else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint of ``step``, point ``LATEST.pt`` at it, then delete the oldest others beyond
        ``keep_last`` (never the one just written, whatever the steps of those already there)."""
        path = save_checkpoint(self.path(step), state)
        link_or_copy(path, self.directory / LATEST)
        if self.keep_last is not None:
            others = [p for p in self.all() if p != path]
            for old in others[: max(0, len(others) - (self.keep_last - 1))]:
                old.unlink(missing_ok=True)
        return path

    def save_best(self, state: dict[str, Any], split: str, metric: str, value: float) -> Path:
        """Write ``state`` as ``BEST.pt``, recording that it scored ``value`` on ``metric`` of ``split``."""
        return save_checkpoint(self.directory / BEST, {**state, "select": {"split": split, "metric": metric,
                                                                           "value": float(value)}})

    def best_value(self) -> float | None:
        """The ``select`` value ``BEST.pt`` scored, or ``None`` when there is none (or it records none)."""
        path = self.directory / BEST
        if not path.is_file():
            return None
        select = load_checkpoint(path).get("select")
        return float(select["value"]) if isinstance(select, dict) and "value" in select else None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file ``path`` names: a file as it is; a run folder or its ``checkpoints/`` folder means its
    ``LATEST.pt``. ``InputError`` when there is none."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise InputError("checkpoint file not found", source=str(path))
        return path
    for candidate in (path / "checkpoints" / LATEST, path / LATEST):
        if candidate.is_file():
            return candidate
    raise InputError(f"a folder without checkpoints/{LATEST} or {LATEST}: name a checkpoint file", source=str(path))
