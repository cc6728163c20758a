"""The config of a navigation training run (``valan train``): the sections every navigation problem has.

A problem extends the sections with its own fields and defaults in ``valan/problems/<task>/config.py`` (R2R adds
``data.connectivity``, ``env.max_candidates``, ``agent.geometry_dim``; Street View adds ``data.graph``, the
action space, ...) and names that class in its ``config_class``. Defaults live in these dataclasses only: a YAML
file in ``configs/`` holds just what differs from them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from valan.config import require
from valan.errors import InputError
from valan.learning.config import DistributedConfig, LearningConfig, RunConfig


@dataclass
class TrainFile:
    """A training file with its sampling weight: each of its episodes is drawn ``weight`` times as often as an
    episode of a weight-1 file (``data.train: [{file: R2R_train.json}, {file: aug_top20.json, weight: 0.5}]``)."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("file",)  # made absolute when given with --set (see DataConfig)

    file: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.weight < float("inf"):
            raise InputError(f"data.train: the weight of {self.file} must be a positive number, got {self.weight}")


@dataclass
class DataConfig:
    """Where the data lives.

    Relative file names in a config file are resolved against ``root`` (``root: null`` = the bundled sample; a
    relative ``root`` against the working directory). Relative file names given on the command line
    (``--set data.features=features/tiny``) are resolved against the working directory instead, like any
    command-line path: ``--set`` makes the fields of ``PATH_FIELDS`` absolute.
    """

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("train", "eval", "vocab", "features")
    PATH_SENTINELS: ClassVar[tuple[str, ...]] = ("", "synthetic")  # not file names: "build it", synthetic features

    root: str | None = None
    # episode files: names, or {file, weight} (TrainFile); a plain name has weight 1
    train: list[str | TrainFile] = field(default_factory=list)
    eval: dict[str, str] = field(default_factory=dict)  # split name -> episode file
    vocab: str = ""  # a vocabulary file; "" = build it from the training files (where the problem supports it)
    features: str = "synthetic"  # "synthetic" or a feature store path understood by valan.features.stores
    synthetic_dim: int = 64  # feature size of synthetic features (they carry no visual information)

    def resolve(self, name: str) -> Path:
        """Path of a data file: absolute names as given, others under ``root`` (or the bundled sample); always
        absolute (a relative ``root`` is taken from the working directory), so resolving twice changes nothing."""
        path = Path(os.path.expanduser(name))
        if path.is_absolute():
            return path
        if self.root is None:
            from valan.data import sample_path

            return sample_path(name)
        return Path(os.path.expanduser(self.root)).absolute() / path

    def split_files(self, split: str) -> list[str]:
        """Resolved data files of ``split``: ``"train"`` -> ``train``; any other name -> ``eval[split]``."""
        if split == "train":
            return [str(self.resolve(item.file)) for item in self.train_files()]
        if split not in self.eval:
            raise InputError(f"unknown split {split!r}: data.eval has {', '.join(sorted(self.eval)) or 'none'}")
        return [str(self.resolve(self.eval[split]))]

    def train_files(self) -> list[TrainFile]:
        """``train`` with plain names as weight-1 :class:`TrainFile` entries (names not resolved)."""
        return [TrainFile(item) if isinstance(item, str) else item for item in self.train]


@dataclass
class EnvConfig:
    """Environment settings every navigation problem has."""

    max_steps: int = 12  # actions per episode, STOP included
    reward: str = "distance"  # reward name understood by the problem's environment
    max_instruction_length: int = 80  # tokens, <EOS> included
    # probability that a training episode is seen mirrored left to right (geometry reflected, left/right words and
    # actions swapped; the environments' docstrings): twice the distinct training episodes, for agents without
    # visual features only (TrainConfig.check_mirror). 0.5 measured level with 0 on R2R and map2seq (docs/unseen.md)
    mirror: float = 0.0

    def __post_init__(self) -> None:
        require(0.0 <= self.mirror <= 1.0, "env.mirror must be a probability in [0, 1]")


@dataclass
class AgentConfig:
    """Model sizes every follower has, and whether it reads visual features.

    ``visual``: ``features`` builds the visual pathway; ``none`` builds the model without it (language and
    geometry only; synthetic features identify viewpoints, so a model reading them memorises training scenes);
    ``auto`` is ``none`` when ``data.features`` is synthetic and ``features`` otherwise. Building the agent
    (:meth:`TrainConfig.resolve_visual`) writes the resolved value back, so a run's ``config.yaml`` and its
    checkpoints record it.
    """

    embed_dim: int = 64  # word embedding size
    hidden_dim: int = 128  # LSTM size (the instruction encoder uses hidden_dim // 2 per direction)
    core_layers: int = 2  # stacked LSTM layers of the recurrent core
    dropout: float = 0.0  # on the attentional state before the policy
    instruction_dropout: float = 0.0  # on the instruction's word embeddings (Tan et al. 2019)
    word_dropout: float = 0.0  # share of the instruction's words replaced by <UNK> while training (docs/unseen.md)
    visual: Literal["auto", "features", "none"] = "auto"


@dataclass
class TrainConfig:
    """A whole navigation training run. ``problem`` names the problem (and so its config class) in
    ``valan.problems.PROBLEMS``."""

    problem: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @staticmethod
    def saved_without_visual(data: dict) -> dict:
        """A saved config (checkpoint, run folder) from before ``agent.visual`` existed, when every follower had
        its visual pathway, with ``agent.visual: features`` filled in; other configs unchanged."""
        agent = data.get("agent")
        if isinstance(agent, dict) and "visual" not in agent:
            return {**data, "agent": {**agent, "visual": "features"}}
        return data

    def resolve_visual(self) -> str:
        """``agent.visual`` with ``auto`` resolved against ``data.features`` (and written back; see
        :class:`AgentConfig`): ``"features"`` or ``"none"``."""
        if self.agent.visual == "auto":
            self.agent.visual = "none" if self.data.features == "synthetic" else "features"
        return self.agent.visual

    def check_mirror(self) -> None:
        """``env.mirror`` only for an agent without visual features (``InputError`` otherwise): the features hold
        no mirrored panoramas."""
        if self.env.mirror and self.resolve_visual() != "none":
            raise InputError("env.mirror needs agent.visual none: the features hold no mirrored panoramas")
