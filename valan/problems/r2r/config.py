"""Config of R2R training (``problem: r2r``): the navigation sections plus Matterport3D's graph fields.

The defaults are the embedded run: the bundled R2R sample (5 scans) with synthetic features, a few minutes on
2 CPU cores (``configs/r2r_sample.yaml`` therefore only names the problem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from valan.config import require
from valan.learning.config import DistributedConfig, RunConfig
from valan.problems.config import AgentConfig, DataConfig, EnvConfig, TrainConfig, TrainFile


@dataclass
class R2RDataConfig(DataConfig):
    """R2R-format episode files and the Matterport3D connectivity graphs (default: the bundled sample)."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = (*DataConfig.PATH_FIELDS, "connectivity")

    train: list[str | TrainFile] = field(default_factory=lambda: ["R2R_sample_train.json"])
    eval: dict[str, str] = field(default_factory=lambda: {"val_seen": "R2R_sample_val_seen.json"})
    connectivity: str = "connectivity"  # folder of {scan}_connectivity.json
    vocab: str = "train_vocab.txt"


@dataclass
class R2REnvConfig(EnvConfig):
    max_candidates: int = 16  # navigable neighbours per step (action slots 1..max_candidates)


@dataclass
class R2RAgentConfig(AgentConfig):
    geometry_dim: int = 32  # size of the projected candidate/previous-action geometry
    # Options measured on dev_unseen with synthetic features and left off (docs/unseen.md): none of them moved SR/SPL
    visited: bool = False  # a learned "been there" vector on candidates the episode has already visited
    odometry: bool = False  # the core also reads the metres walked and where the start lies (dead reckoning)
    # weight of a progress monitor's loss (Ma et al. 2019: a head estimating the share of the distance to the goal
    # made good, trained by squared error beside the policy's loss); 0: no monitor head
    progress_monitor: float = 0.0

    def __post_init__(self) -> None:
        require(self.progress_monitor >= 0, "agent.progress_monitor must be >= 0 (0: no progress monitor)")

    def reads_history(self) -> bool:
        """Whether the follower needs the environment's ``history`` observations (visited flags, odometry,
        progress)."""
        return self.visited or self.odometry or self.progress_monitor > 0


@dataclass
class R2RConfig(TrainConfig):
    problem: str = "r2r"
    data: R2RDataConfig = field(default_factory=R2RDataConfig)
    env: R2REnvConfig = field(default_factory=R2REnvConfig)
    agent: R2RAgentConfig = field(default_factory=R2RAgentConfig)
    # 2 actors x 16 envs: each inference request carries 16 slots, which halves the learner's per-request work of
    # 2 x 8 (configs/r2r.yaml: B=32 unrolls from one round of both actors). scripts/bench_throughput.py --layouts
    # 2x8 2x16 --rounds 3 on the sample: 1.67x the naive loop against 1.43x, learning alike (README sample run: SR
    # median 0.218 over five runs either way; policy lag 3.8 learner steps against 2.0); configs/r2r.yaml: 3,390
    # env steps/s against 2,015 with 2 x 8 in one run (docs/speed.md)
    distributed: DistributedConfig = field(default_factory=lambda: DistributedConfig(envs_per_actor=16))
    run: RunConfig = field(default_factory=lambda: RunConfig(logdir="runs/r2r_sample"))
