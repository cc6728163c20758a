"""Config of ``valan pretrain-alignment`` (``configs/alignment.yaml``): the discriminator's data, pair and negative
sections, the alignment model's sizes and the CMA/NVS loss weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from valan.config import require
from valan.learning.supervised import SupervisedLearningConfig
from valan.problems.discriminator.config import PairInputConfig, PairRunConfig, PairTrainingConfig
from valan.problems.discriminator.negatives import NEGATIVE_TYPES, check_negative_types

TASKS = ("cma", "nvs")


@dataclass
class AlignmentModelConfig:
    """Sizes; ``embed_dim`` and ``hidden_dim`` must equal the follower's (``agent`` section of the R2R config)."""

    embed_dim: int = 64
    hidden_dim: int = 128
    initial_scale: float = 5.0  # initial inverse temperature of the CMA head's cosine similarities


@dataclass
class AlignmentLearningConfig(SupervisedLearningConfig):
    """Adam (``batch_size`` pairs per step: episodes x (1 + negative types)) and the two tasks' losses."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    cma_weight: float = 1.0
    nvs_weight: float = 1.0
    pos_weight: float = 0.0  # CMA: BCE weight of positives; 0 = negatives per positive (balanced)
    negative_types: list[str] = field(default_factory=lambda: list(NEGATIVE_TYPES))

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.tasks) and not set(self.tasks) - set(TASKS),
                f"learning.tasks must be a non-empty subset of {', '.join(TASKS)}, got {self.tasks}")
        check_negative_types(self.negative_types)


def _arrival_pairs() -> PairInputConfig:
    return PairInputConfig(view="arrival")


@dataclass
class AlignmentConfig(PairTrainingConfig):
    problem: str = "alignment"
    pairs: PairInputConfig = field(default_factory=_arrival_pairs)
    model: AlignmentModelConfig = field(default_factory=AlignmentModelConfig)
    learning: AlignmentLearningConfig = field(default_factory=AlignmentLearningConfig)
    run: PairRunConfig = field(default_factory=lambda: PairRunConfig(total_steps=1000, eval_every_steps=250,
                                                                    logdir="runs/alignment"))

    def __post_init__(self) -> None:
        require(self.pairs.view != "travel" or "nvs" not in self.learning.tasks,
                "pairs.view travel shows NVS the view towards the next viewpoint; use arrival or mean")
