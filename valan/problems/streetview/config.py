"""Config of Touchdown and map2seq training (``problem: touchdown | map2seq``) on the StreetLearn graph.

Street View fields beyond the navigation sections of :mod:`valan.problems.config`:

- ``data.graph``: folder with ``nodes.txt`` and ``links.txt``; ``data.vocab``: a vocabulary file, or ``""`` to
  build it from the ``data.train`` files (tokens seen at least ``data.vocab_min_count`` times);
  ``data.feature_views`` / ``data.feature_headings``: views per panorama and per pitch row of synthetic
  features (default one row of 8 views of 45 degrees; a real store brings its own count).
- ``env.action_space`` (``discrete`` | ``panoramic``), ``env.eval_max_steps`` (50; ``env.max_steps``, 55,
  is the training limit), ``env.step_cost``, ``env.stop_reward``; ``env.reward``: ``progress`` | ``sparse``.
- ``agent.view_dim``, ``agent.action_embed_dim``, ``agent.time_embed_dim``.

The defaults are the bundled samples (Touchdown: 21 routes, map2seq: 47, on a 1,710-panorama sub-graph) with
synthetic features; the two problems differ only in their data files, instruction length and run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from valan.envs.streetview.dataset import SAMPLE_MAP2SEQ, SAMPLE_TOUCHDOWN
from valan.envs.streetview.graph import SAMPLE_GRAPH
from valan.learning.config import LearningConfig, RunConfig
from valan.problems.config import AgentConfig, DataConfig, EnvConfig, TrainConfig


@dataclass
class StreetViewDataConfig(DataConfig):
    """Data of a Street View problem (default: the bundled Touchdown sample, used for training and evaluation)."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = (*DataConfig.PATH_FIELDS, "graph")

    train: list[str] = field(default_factory=lambda: [SAMPLE_TOUCHDOWN])
    eval: dict[str, str] = field(default_factory=lambda: {"dev": SAMPLE_TOUCHDOWN})
    graph: str = SAMPLE_GRAPH
    vocab: str = ""  # "" = build from the training files
    vocab_min_count: int = 5
    feature_views: int = 8  # views per panorama of synthetic features (a real store brings its own)
    feature_headings: int = 8  # views per pitch row of the features (headings 360 / feature_headings apart)


@dataclass
class StreetViewEnvConfig(EnvConfig):
    max_steps: int = 55  # training episodes (Touchdown)
    eval_max_steps: int = 50  # evaluation episodes (Touchdown)
    reward: str = "progress"
    max_instruction_length: int = 300
    action_space: Literal["discrete", "panoramic"] = "discrete"
    step_cost: float = 0.2
    stop_reward: float = 1.0


@dataclass
class StreetViewAgentConfig(AgentConfig):
    core_layers: int = 1
    view_dim: int = 32
    action_embed_dim: int = 16
    time_embed_dim: int = 16


@dataclass
class TouchdownConfig(TrainConfig):
    # R2R fields that valan 0.1 saved with every Street View config although Street View never read them.
    RETIRED: ClassVar[frozenset[str]] = frozenset({"data.connectivity", "env.max_candidates", "agent.geometry_dim"})

    problem: str = "touchdown"
    data: StreetViewDataConfig = field(default_factory=StreetViewDataConfig)
    env: StreetViewEnvConfig = field(default_factory=StreetViewEnvConfig)
    agent: StreetViewAgentConfig = field(default_factory=StreetViewAgentConfig)
    learning: LearningConfig = field(default_factory=lambda: LearningConfig(unroll_length=20))
    run: RunConfig = field(default_factory=lambda: RunConfig(logdir="runs/touchdown_sample"))


@dataclass
class Map2seqConfig(TouchdownConfig):
    problem: str = "map2seq"
    data: StreetViewDataConfig = field(default_factory=lambda: StreetViewDataConfig(
        train=[SAMPLE_MAP2SEQ], eval={"dev": SAMPLE_MAP2SEQ}))
    env: StreetViewEnvConfig = field(default_factory=lambda: StreetViewEnvConfig(max_instruction_length=100))
    run: RunConfig = field(default_factory=lambda: RunConfig(logdir="runs/map2seq_sample"))
