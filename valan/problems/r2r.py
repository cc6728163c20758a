"""Room-to-Room (Anderson et al. 2018): instruction following on Matterport3D navigation graphs."""

from __future__ import annotations

from typing import ClassVar

from valan.config import TrainConfig
from valan.problems import Problem


class R2RProblem(Problem):
    name: ClassVar[str] = "r2r"
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    metric_names: ClassVar[tuple[str, ...]] = ("sr", "spl", "ndtw", "sdtw", "ne", "tl")
