"""Config of ``valan train-speaker`` (``configs/speaker.yaml``): R2R's ``data`` section, how paths become speaker
inputs, the model's sizes, and the supervised loop's ``learning``/``run`` sections with the decoding used for
BLEU at evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from valan.config import require
from valan.learning.supervised import SupervisedLearningConfig, SupervisedRunConfig
from valan.problems.r2r.config import R2RDataConfig


@dataclass
class SpeakerInputConfig:
    """Path steps and target instructions (see :mod:`valan.problems.discriminator.pairs` for the step layout)."""

    max_instruction_length: int = 80  # target tokens, <EOS> included (longer instructions are truncated)
    # travel: the view facing the next viewpoint; arrival: the view facing the direction of arrival; mean
    view: Literal["travel", "arrival", "mean"] = "travel"


@dataclass
class SpeakerModelConfig:
    """Sizes of :class:`valan.agents.speaker.Speaker`, and whether it reads visual features.

    ``visual``: ``features`` adds the visual pathway; ``none`` builds the speaker from path geometry alone;
    ``auto`` (the followers' convention) is ``none`` when ``data.features`` is synthetic (synthetic features
    only identify viewpoints) and ``features`` otherwise. Training writes the resolved value back, so the run's
    ``config.yaml`` and checkpoints record it.
    """

    embed_dim: int = 128  # word embedding size
    hidden_dim: int = 256  # encoder output (hidden_dim // 2 per direction) and decoder LSTM size
    dropout: float = 0.3
    visual: Literal["auto", "features", "none"] = "auto"


@dataclass
class SpeakerRunConfig(SupervisedRunConfig):
    """The supervised run section; evaluation decodes every path of each split greedily (``beam: 1``) or with a
    beam search for BLEU-4."""

    beam: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.beam >= 1, "run.beam must be >= 1")


@dataclass
class SpeakerConfig:
    problem: str = "speaker"
    data: R2RDataConfig = field(default_factory=R2RDataConfig)
    inputs: SpeakerInputConfig = field(default_factory=SpeakerInputConfig)
    model: SpeakerModelConfig = field(default_factory=SpeakerModelConfig)
    learning: SupervisedLearningConfig = field(default_factory=lambda: SupervisedLearningConfig(batch_size=64))
    run: SpeakerRunConfig = field(default_factory=lambda: SpeakerRunConfig(total_steps=3000, eval_every_steps=1000,
                                                                          logdir="runs/speaker"))

    def resolve_visual(self) -> str:
        """``model.visual`` with ``auto`` resolved against ``data.features`` (and written back)."""
        if self.model.visual == "auto":
            self.model.visual = "none" if self.data.features == "synthetic" else "features"
        return self.model.visual
