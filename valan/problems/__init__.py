"""Problems: an environment factory, an agent factory, a loss and metrics bound together (VALAN's ProblemType).

``valan train`` looks a navigation problem up by its config's ``problem`` name in :data:`PROBLEMS`; the
distributed machinery (actors, learner, evaluation) knows nothing else about a task. Problem modules are
imported only when asked for, so naming a problem does not import the others' dependencies. The supervised
tasks (``discriminator/``, ``alignment/``, ``sdr/``) are not navigation problems: they train through the one
supervised loop of :mod:`valan.learning.supervised`.

Each task has its folder ``valan/problems/<task>/``: ``config.py`` (its config sections, extending
:mod:`valan.problems.config`), ``problem.py`` (the :class:`Problem` subclass) and task-only helpers. Adding a
navigation task: see "Adding a task" in the README.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from collections.abc import Mapping
from pathlib import Path

from valan.config import from_dict, load_config, upgrade_saved
from valan.errors import InputError
from valan.learning.unroll import Unroll
from valan.problems.config import TrainConfig

if TYPE_CHECKING:
    import numpy as np
    import torch

    from valan.text import Vocabulary

# problem name -> "module:class"
PROBLEMS: dict[str, str] = {
    "r2r": "valan.problems.r2r.problem:R2RProblem",
    "touchdown": "valan.problems.streetview.problem:TouchdownProblem",
    "map2seq": "valan.problems.streetview.problem:Map2seqProblem",
    "ndh": "valan.problems.ndh.problem:NDHProblem",
    "multitask": "valan.problems.multitask:MultiTaskProblem",
}


class Problem:
    """What the training machinery needs to know about a task. Instances are stateless; methods take the config.

    Unroll and agent conventions are those of :mod:`valan.learning.unroll` and the agents in ``valan.agents``:
    observations are dicts of tensors with leading dims ``(T, B)``; the agent maps
    ``(obs, state, first)`` to ``(AgentOutput(logits, values), new_state)``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    metric_names: ClassVar[tuple[str, ...]] = ()  # columns of the console table, in order
    select_metric: ClassVar[str] = ""  # the metric (higher is better) that picks checkpoints/BEST.pt; "": none
    prediction_key: ClassVar[str] = ""  # names an episode in the task's leaderboard predictions (R2R: instr_id)
    graph_field: ClassVar[str] = ""  # the ``data`` field naming the navigation graph (R2R: connectivity)
    command_word: ClassVar[str] = ""  # names the task in ``valan evaluate|predict WORD`` ("" = ``name``)

    def check_inputs(self, config: TrainConfig) -> None:
        """Load and validate every input ``config`` trains on, before anything starts or is written: the training
        and evaluation data files on the navigation graph (the checks of ``valan data check``), the vocabulary and
        the features of every node. ``InputError`` (one line naming the file and record) at the first problem.

        The base checks what every navigation config shares; problems extend it with their data, graph and
        features.
        """
        if not config.data.train:
            raise InputError("data.train names no episode files")
        config.check_mirror()
        self.vocabulary(config)

    def make_env(self, config: TrainConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> Any:
        """A batched environment stepping ``num_envs`` episodes of ``split`` ("train" or a key of data.eval).

        ``evaluation=True``: each episode of the split exactly once, then idle slots; otherwise seeded
        random sampling with automatic reset.
        """
        raise NotImplementedError

    def feature_table(self, config: TrainConfig) -> "np.ndarray":
        """Visual features of every node the environments can report, ``(N, views, dim)`` float32, indexed
        by the observations' node indices (``viewpoint``, ``candidates``)."""
        raise NotImplementedError

    def make_agent(self, config: TrainConfig, feature_table: "np.ndarray | torch.Tensor | None" = None) -> "torch.nn.Module":
        """A fresh agent. ``feature_table`` (the :meth:`feature_table` array) is registered as a buffer;
        ``None`` builds it from the config."""
        raise NotImplementedError

    def vocabulary(self, config: TrainConfig) -> "Vocabulary":
        """The vocabulary the environments encode instructions with and the agent embeds (checkpoints carry its
        tokens, so acting needs no training files); the default reads the file ``data.vocab``."""
        from valan.text import Vocabulary

        return Vocabulary.load(config.data.resolve(config.data.vocab))

    def loss(self, agent: "torch.nn.Module", unroll: Unroll, config: TrainConfig) -> tuple["torch.Tensor", dict[str, float]]:
        """Scalar loss of one batch of (tensor) unrolls and float statistics for logging."""
        raise NotImplementedError

    def evaluate(self, config: TrainConfig, split: str, predictions: list[dict]) -> dict[str, float]:
        """Metrics of leaderboard-format predictions on ``split``."""
        raise NotImplementedError

    def prediction(self, episode: dict[str, Any]) -> dict[str, Any]:
        """The leaderboard-format prediction of a finished episode: ``{prediction_key: id, "trajectory": [...]}``
        from the environment's record (the default reads the id under ``prediction_key`` there, too)."""
        return {self.prediction_key: episode[self.prediction_key], "trajectory": episode["trajectory"]}

    def prediction_id(self, prediction: dict[str, Any]) -> Any:
        """The episode id of a leaderboard-format prediction (what predictions files are sorted by)."""
        return prediction[self.prediction_key]

    def evaluation_config(self, config: TrainConfig, split: str, data_file: str | Path,
                          graph: str | Path | None = None) -> TrainConfig:
        """``config`` whose only evaluation split ``split`` holds the episodes of ``data_file`` and, when ``graph``
        is given, whose navigation graph (``data.<graph_field>``) is ``graph`` (``valan evaluate --checkpoint``)."""
        changes: dict[str, Any] = {"eval": {split: str(Path(data_file).resolve())}}
        if graph is not None:
            changes[self.graph_field] = str(Path(graph).resolve())
        return dataclasses.replace(config, data=dataclasses.replace(config.data, **changes))

    def init_from(self, agent: "torch.nn.Module", checkpoint: dict[str, Any], source: str = "") -> None:
        """Initialise ``agent`` from a loaded checkpoint, weights only (``valan train --init-from``).

        The default takes a training checkpoint's ``model``; problems override this to accept other kinds of
        checkpoint (e.g. pretrained alignment modules) and delegate the rest here.
        """
        if "model" not in checkpoint:
            raise InputError("not a training checkpoint (no 'model' weights)", source=source)
        try:
            agent.load_state_dict(checkpoint["model"])
        except RuntimeError as e:
            detail = " ".join(line.strip() for line in str(e).splitlines()[:2])
            raise InputError(f"weights do not fit this agent: {detail}", source=source) from None

    def episode_scores(self, config: TrainConfig, split: str, predictions: list[dict]) -> list[dict[str, Any]]:
        """Per episode of ``split`` (in data order), what a run report lists: ``id``, ``instruction`` (text),
        ``success`` (bool) and a few metrics by name (floats), scoring leaderboard-format ``predictions``.
        The default: not available (``NotImplementedError``)."""
        raise NotImplementedError

    def write_plots(self, config: TrainConfig, split: str, episodes: list[dict], directory: "Path",
                    limit: int) -> list["Path"]:
        """Draw up to ``limit`` evaluated episodes (the environment's records) into ``directory``; returns the
        files written. The default draws nothing."""
        return []

    def training_mix(self, config: TrainConfig) -> list[dict[str, Any]]:
        """What each ``data.train`` file contributes to training: ``file``, ``weight``, ``episodes`` (in the file)
        and ``share`` (of the training draws: ``weight * episodes`` over the sum). The default lists nothing."""
        return []


def check_feature_keys(store: Any, keys: list[tuple[str, str]], source: str) -> None:
    """Every ``(group, node)`` of ``keys`` has features in ``store`` (a ``valan.features.stores`` store; synthetic
    stores cover every node); ``InputError`` naming ``source`` and the first node without features."""
    if store.synthetic:
        return
    available = set(store.keys())
    missing = [key for key in keys if key not in available]
    if missing:
        group, node = missing[0]
        raise InputError(f"no features for node {node!r} of group {group!r} ({len(missing)} of {len(keys)} nodes "
                         "missing)", source=source)


def problem_class(name: str) -> type[Problem]:
    """The Problem class registered as ``name`` (imports its module)."""
    if name not in PROBLEMS:
        raise InputError(f"unknown problem {name!r} (known: {', '.join(sorted(PROBLEMS))})")
    module_name, class_name = PROBLEMS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_problem(name: str) -> Problem:
    """An instance of the problem registered as ``name``."""
    return problem_class(name)()


def config_class_for(data: Mapping, source: str | None = None) -> type[TrainConfig]:
    """The config class of the problem that a config mapping names (``problem``, default ``r2r``)."""
    problem = data.get("problem", "r2r")
    if not isinstance(problem, str):
        raise InputError(f"problem: expected a name, got {problem!r}", source=source)
    try:
        return problem_class(problem).config_class
    except InputError as e:
        raise InputError(str(e), source=source) from None


def config_from_dict(data: Mapping, source: str | None = None) -> TrainConfig:
    """A training config from a plain dict (e.g. a checkpoint's ``config``), typed by its problem's class; keys
    the class lists as renamed are moved to their new places first (:func:`valan.config.upgrade_saved`), and a
    config saved before ``agent.visual`` existed gets ``features``, the pathway its weights have."""
    cls = config_class_for(data, source)
    return from_dict(cls, TrainConfig.saved_without_visual(upgrade_saved(cls, data)), source=source)


def load_train_config(path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()) -> TrainConfig:
    """Load a ``valan train`` config (``None``: the embedded ``configs/r2r_sample.yaml``) with ``--set`` overrides;
    the file's ``problem`` (or a ``problem=...`` override) chooses the config class before validation."""
    if path is None:
        from valan.configs import config_path

        path = config_path("r2r_sample.yaml")
    return load_config(path, overrides, schema=config_class_for)
