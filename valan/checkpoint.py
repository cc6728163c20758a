"""Checkpoints: atomic writes, weights-only safe loading, keep-the-last-N rotation.

A checkpoint is a dict saved with ``torch.save``. By convention its keys are ``model`` (state dict),
``optimizer`` (state dict), ``step`` (learner steps), ``config`` (plain dict), ``problem`` (name), plus any
extras (env steps, scheduler state, ...). Everything in it must be loadable with ``torch.load(weights_only=True)``:
tensors, numbers, strings, and lists/tuples/dicts of them; arbitrary objects are refused on load.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from valan.errors import InputError
from valan.io import atomic_write

_CHECKPOINT_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


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


class CheckpointManager:
    """Numbered checkpoints ``ckpt-<step>.pt`` in ``directory``, keeping the ``keep_last`` newest.

    ``keep_last=None`` keeps them all.
    """

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
        """Write the checkpoint of ``step`` and delete the oldest ones beyond ``keep_last``."""
        path = save_checkpoint(self.path(step), state)
        if self.keep_last is not None:
            for old in self.all()[: -self.keep_last]:
                old.unlink(missing_ok=True)
        return path
