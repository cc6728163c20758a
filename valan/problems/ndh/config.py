"""Config of NDH training (``problem: ndh``): R2R's sections (Matterport3D graphs, the R2R follower) with NDH data,
the path type and CVDN's episode length.

The defaults are the embedded run on the bundled NDH *format* sample (built from the R2R sample, not CVDN data)
with synthetic features; ``configs/ndh.yaml`` therefore only names the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from valan.learning.config import RunConfig
from valan.problems.r2r.config import R2RConfig, R2RDataConfig, R2REnvConfig


@dataclass
class NDHDataConfig(R2RDataConfig):
    """NDH JSON files (CVDN's release format), the Matterport3D connectivity and the R2R vocabulary (the role
    separators are appended to it)."""

    train: list[str] = field(default_factory=lambda: ["ndh/NDH_sample_train.json"])
    eval: dict[str, str] = field(default_factory=lambda: {"val": "ndh/NDH_sample_val.json"})


@dataclass
class NDHEnvConfig(R2REnvConfig):
    max_steps: int = 20  # CVDN's max_episode_len
    max_instruction_length: int = 120  # tokens of target + dialog history, <EOS> included (newest turns kept)
    # the path that supervises (oracle_next_action), starts the agent and is nav_error's goal (CVDN's path_type)
    path_type: Literal["planner_path", "player_path", "trusted_path"] = "planner_path"


@dataclass
class NDHConfig(R2RConfig):
    problem: str = "ndh"
    data: NDHDataConfig = field(default_factory=NDHDataConfig)
    env: NDHEnvConfig = field(default_factory=NDHEnvConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(logdir="runs/ndh_sample"))
