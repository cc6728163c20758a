"""Config of ``valan train-sdr`` (``configs/sdr.yaml``): data, feature maps, target, LingUNet sizes, and the
supervised loop's ``learning`` and ``run`` sections (:mod:`valan.learning.supervised`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from valan.errors import InputError
from valan.learning.supervised import SupervisedLearningConfig, SupervisedRunConfig
from valan.problems.sdr.data import PANORAMA_PREFIXES
from valan.problems.sdr.metrics import PANORAMA_HEIGHT_PX, PANORAMA_WIDTH_PX


@dataclass
class SDRDataConfig:
    """Touchdown JSON-lines files. ``train: sample`` = the bundled Touchdown sample (``valan/data/streetview``)."""

    train: str = "sample"
    eval: str | None = None  # None: hold out eval_fraction of the training file's routes
    eval_fraction: float = 0.2
    split_seed: int = 0
    panoramas: list[str] = field(default_factory=lambda: ["main"])  # add pre, post as the Touchdown SDR code does
    max_text_length: int = 80  # tokens, <EOS> included
    vocab_min_count: int = 1  # the vocabulary is built from the training texts

    def __post_init__(self) -> None:
        if not self.panoramas or any(p not in PANORAMA_PREFIXES for p in self.panoramas):
            raise InputError(f"data.panoramas must be a non-empty subset of {list(PANORAMA_PREFIXES)}")
        if self.max_text_length < 2 or self.vocab_min_count < 1:
            raise InputError("data.max_text_length must be >= 2 and data.vocab_min_count >= 1")


@dataclass
class SDRFeaturesConfig:
    """Panorama feature maps. ``synthetic`` maps carry no visual information."""

    source: Literal["synthetic", "npy"] = "synthetic"
    path: str | None = None  # npy: folder of {panoid}.npy
    layout: Literal["hwc", "chw"] = "hwc"  # npy only
    channels: int = 16  # synthetic only
    height: int = 25  # synthetic only: grid rows
    width: int = 116  # synthetic only: grid columns
    seed: int = 0  # synthetic only

    def __post_init__(self) -> None:
        if min(self.channels, self.height, self.width) < 1:
            raise InputError("features.channels, height and width must be >= 1")


@dataclass
class SDRTargetConfig:
    """Pixel space of the reported distances and the target's spread (pixels)."""

    panorama_width_px: float = PANORAMA_WIDTH_PX
    panorama_height_px: float = PANORAMA_HEIGHT_PX
    sigma_px: float = 24.0

    def __post_init__(self) -> None:
        if min(self.panorama_width_px, self.panorama_height_px, self.sigma_px) <= 0:
            raise InputError("target.panorama_width_px, panorama_height_px and sigma_px must be > 0")


@dataclass
class LingUNetConfig:
    """Sizes of ``valan.agents.lingunet.LingUNet``."""

    channels: int = 16
    levels: int = 2
    embedding_size: int = 32
    hidden_size: int = 32  # per LSTM direction
    kernel_size: int = 5
    stride: int = 1  # 1: Chen et al. / VALAN; 2: Misra et al.
    head_hidden_size: int = 16
    dropout: float = 0.0  # on word embeddings


def _sdr_learning() -> SupervisedLearningConfig:
    return SupervisedLearningConfig(batch_size=16)


def _sdr_run() -> SupervisedRunConfig:
    return SupervisedRunConfig(total_steps=200, eval_every_steps=100, log_every_steps=10, eval_batch_size=32,
                               logdir="runs/sdr")


@dataclass
class SDRConfig:
    """A whole ``valan train-sdr`` run."""

    # The keys of the former ``training`` section, now in ``run`` and ``learning`` (evaluation and checkpoints
    # share one schedule).
    RENAMED: ClassVar[dict[str, str]] = {
        "training.steps": "run.total_steps", "training.eval_every": "run.eval_every_steps",
        "training.checkpoint_every": "run.eval_every_steps", "training.log_every": "run.log_every_steps",
        "training.eval_batch_size": "run.eval_batch_size", "training.keep_last": "run.keep_last",
        "training.seed": "run.seed", "training.logdir": "run.logdir", "training.batch_size": "learning.batch_size",
        "training.lr": "learning.lr", "training.grad_clip": "learning.grad_clip",
    }

    problem: str = "sdr"
    data: SDRDataConfig = field(default_factory=SDRDataConfig)
    features: SDRFeaturesConfig = field(default_factory=SDRFeaturesConfig)
    target: SDRTargetConfig = field(default_factory=SDRTargetConfig)
    model: LingUNetConfig = field(default_factory=LingUNetConfig)
    learning: SupervisedLearningConfig = field(default_factory=_sdr_learning)
    run: SupervisedRunConfig = field(default_factory=_sdr_run)
