"""Training configurations shipped with valan (installed as ``valan.configs``)."""

from importlib.resources import files
from pathlib import Path


def config_path(name: str) -> Path:
    """Filesystem path of a bundled config, e.g. ``config_path("r2r_sample.yaml")``."""
    return Path(str(files(__name__) / name))
