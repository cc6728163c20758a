"""Config of ``valan train-discriminator`` (``configs/discriminator.yaml``) and the pair sections alignment shares.

The ``data`` section is R2R's (:class:`valan.problems.r2r.config.R2RDataConfig`); ``run`` and ``learning`` are
the supervised loop's (:mod:`valan.learning.supervised`) with the fields of pair-level training added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from valan.config import require
from valan.learning.supervised import SupervisedLearningConfig, SupervisedRunConfig
from valan.problems.discriminator.negatives import NEGATIVE_TYPES, NegativeConfig, check_negative_types
from valan.problems.r2r.config import R2RDataConfig


@dataclass
class PairInputConfig:
    """How pairs become model inputs (see :mod:`valan.problems.discriminator.pairs`)."""

    max_instruction_length: int = 80  # tokens, <EOS> included
    # travel: the view facing the next viewpoint; arrival: the view facing the direction of arrival (what an agent
    # sees before choosing its move); mean: the panorama's mean
    view: Literal["travel", "arrival", "mean"] = "travel"
    use_visual: bool = True  # false: zero visual features (geometry and language only)


@dataclass
class DiscriminatorModelConfig:
    type: Literal["stepwise", "two_tower"] = "stepwise"
    embed_dim: int = 64  # word embedding size
    hidden_dim: int = 128  # instruction BiLSTM output (hidden_dim // 2 per direction) and path LSTM size
    dropout: float = 0.0
    initial_scale: float = 5.0  # initial inverse temperature on the cosine similarities
    # stepwise only: steps = VALAN's soft-min over steps; steps_and_tokens adds a token-side term
    pooling: Literal["steps", "steps_and_tokens"] = "steps"


@dataclass
class DiscriminatorLearningConfig(SupervisedLearningConfig):
    """Adam (``batch_size`` pairs per step; positives per step for ``in_batch_softmax``) and the loss."""

    loss: Literal["bce", "focal", "in_batch_softmax"] = "bce"  # in_batch_softmax: two_tower only
    pos_weight: float = 0.0  # BCE weight of positives; 0 = negatives per positive of each epoch (balanced)
    focal_gamma: float = 2.0
    focal_alpha: float = 0.5  # weight of positives in the focal loss (negatives: 1 - alpha)
    negative_types: list[str] = field(default_factory=lambda: list(NEGATIVE_TYPES))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_negative_types(self.negative_types)
        require(self.batch_size >= 2 and self.pos_weight >= 0,
                "learning.batch_size must be >= 2 and learning.pos_weight >= 0")


@dataclass
class PairRunConfig(SupervisedRunConfig):
    """The supervised run section plus the seed of the validation negatives."""

    eval_seed: int = 0  # seed of the validation negatives (fixed across checkpoints and runs)


@dataclass
class PairTrainingConfig:
    """The sections of every pair-level trainer (:class:`DiscriminatorConfig`, alignment pretraining's)."""

    problem: str = ""
    data: R2RDataConfig = field(default_factory=R2RDataConfig)
    pairs: PairInputConfig = field(default_factory=PairInputConfig)
    negatives: NegativeConfig = field(default_factory=NegativeConfig)
    learning: SupervisedLearningConfig = field(default_factory=SupervisedLearningConfig)
    run: PairRunConfig = field(default_factory=PairRunConfig)


@dataclass
class DiscriminatorConfig(PairTrainingConfig):
    problem: str = "discriminator"
    model: DiscriminatorModelConfig = field(default_factory=DiscriminatorModelConfig)
    learning: DiscriminatorLearningConfig = field(default_factory=DiscriminatorLearningConfig)
    run: PairRunConfig = field(default_factory=lambda: PairRunConfig(logdir="runs/discriminator"))

    def __post_init__(self) -> None:
        require(self.learning.loss != "in_batch_softmax" or self.model.type == "two_tower",
                "learning.loss in_batch_softmax needs model.type two_tower")
