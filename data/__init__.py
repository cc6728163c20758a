"""Bundled real data samples (installed as ``valan.data``); see README.md in this folder for attribution."""

from importlib.resources import files
from pathlib import Path


def sample_path(name: str) -> Path:
    """Filesystem path of a bundled sample file or folder, e.g. ``sample_path("connectivity")``."""
    return Path(str(files(__name__) / name))
