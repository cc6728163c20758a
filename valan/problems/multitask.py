"""Multi-task training of one follower on several Matterport3D tasks at once (R2R + NDH: Wang et al. 2020,
"Environment-agnostic Multitask Learning for Natural Language Grounded Navigation").

``problem: multitask`` composes registered problems whose environments share R2R's observation layout and
whose configs the multitask config extends (``r2r``, ``ndh``). The config is the NDH config (shared graph,
vocabulary with the role separators, features, env, agent, learning) plus ``tasks``:

- ``tasks.<problem>.share``: the share of each actor's env slots that run that task (slots are split in
  proportion, at least one each); ``tasks.<problem>.train``: its training files. ``data.train`` stays empty;
- evaluation splits are named ``<problem>/<split>`` in ``data.eval`` (e.g. ``r2r/val_seen``, ``ndh/val``): each
  is scored with its task's metrics, and its predictions are in its task's leaderboard format.

Every observation carries ``task`` (int64, the task's position in ``tasks``), so unrolls carry their task; the
loss is the single-task loss over the whole batch, and the statistics add ``<task>/loss``,
``<task>/imitation_accuracy``, ... per task (each over that task's steps) and ``<task>/step_share``.
Each task's env is built by its own problem from a config of that problem's class holding the shared sections.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from valan.config import from_dict, to_dict
from valan.errors import InputError
from valan.learning.unroll import Unroll
from valan.problems import Problem, get_problem
from valan.problems.config import TrainConfig
from valan.problems.ndh.config import NDHConfig, NDHDataConfig, NDHEnvConfig
from valan.problems.ndh.problem import NDHProblem
from valan.learning.config import RunConfig

TASK_KEY = "task"
TASK_STATS = ("loss", "imitation_accuracy", "imitation_cross_entropy", "entropy", "policy_loss")


@dataclass
class TaskConfig:
    """One task of a multitask run."""

    share: float = 0.5  # share of each actor's env slots running this task
    train: list[str] = field(default_factory=list)  # the task's training files (under data.root)


@dataclass
class MultiTaskDataConfig(NDHDataConfig):
    train: list[str] = field(default_factory=list)  # unused: training files are tasks.<problem>.train
    eval: dict[str, str] = field(default_factory=lambda: {"r2r/val_seen": "R2R_sample_val_seen.json",
                                                          "ndh/val": "ndh/NDH_sample_val.json"})


@dataclass
class MultiTaskEnvConfig(NDHEnvConfig):
    max_steps: int = 12  # R2R's (the sample's NDH paths are R2R paths)


def _default_tasks() -> dict[str, TaskConfig]:
    return {"r2r": TaskConfig(0.5, ["R2R_sample_train.json"]), "ndh": TaskConfig(0.5, ["ndh/NDH_sample_train.json"])}


@dataclass
class MultiTaskConfig(NDHConfig):
    problem: str = "multitask"
    data: MultiTaskDataConfig = field(default_factory=MultiTaskDataConfig)
    env: MultiTaskEnvConfig = field(default_factory=MultiTaskEnvConfig)
    tasks: dict[str, TaskConfig] = field(default_factory=_default_tasks)
    run: RunConfig = field(default_factory=lambda: RunConfig(logdir="runs/r2r_ndh_sample"))

    def __post_init__(self) -> None:
        if not self.tasks:
            raise InputError("tasks: name at least one task")
        for name, task in self.tasks.items():
            if task.share <= 0:
                raise InputError(f"tasks.{name}.share must be positive, got {task.share}")
        if self.data.train:
            raise InputError("data.train: a multitask run takes its training files from tasks.<problem>.train")
        for split in self.data.eval:
            if split.partition("/")[0] not in self.tasks:
                raise InputError(f"data.eval: split {split!r} must be named <task>/<split> with a task of "
                                 f"tasks ({', '.join(self.tasks)})")


def slot_counts(shares: list[float], num_envs: int) -> list[int]:
    """Env slots per task: ``num_envs`` split in proportion to ``shares`` (largest remainders), at least 1 each."""
    if num_envs < len(shares):
        raise InputError(f"distributed.envs_per_actor must be at least the number of tasks ({len(shares)})")
    exact = np.asarray(shares, float) / sum(shares) * num_envs
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[: num_envs - counts.sum()]] += 1
    for empty in np.flatnonzero(counts == 0):  # a task with a tiny share still runs on one slot
        counts[counts.argmax()] -= 1
        counts[empty] = 1
    return counts.tolist()


class MixedEnv:
    """Several tasks' batched environments side by side as one (the batched contract of ``valan.envs.batched``):
    slots ``[0, n_0)`` run task ``tasks[0]``'s env, the next ``n_1`` the next task's, and so on. Observations gain
    ``task`` (the task's index); finished-episode records gain ``task`` (its name)."""

    def __init__(self, envs: list[Any], task_indices: list[int], task_names: list[str]):
        self.envs, self.task_indices, self.task_names = envs, task_indices, task_names
        self.bounds = np.cumsum([0] + [env.num_envs for env in envs])
        self.num_envs = int(self.bounds[-1])
        self.evaluation = envs[0].evaluation
        self.single_action_space = envs[0].single_action_space
        self.single_observation_space = envs[0].single_observation_space
        self.world = envs[0].world if len(envs) == 1 else None
        self._task = np.repeat(task_indices, [env.num_envs for env in envs]).astype(np.int64)

    @property
    def active(self) -> np.ndarray:
        return np.concatenate([env.active for env in self.envs])

    @property
    def finished(self) -> bool:
        return all(env.finished for env in self.envs)

    def _observation(self, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        obs = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        obs[TASK_KEY] = self._task.copy()
        return obs

    def _infos(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        finished = [{**record, "slot": record["slot"] + int(offset), TASK_KEY: self.task_names[i]}
                    for i, (offset, infos) in enumerate(zip(self.bounds, parts)) for record in infos["finished"]]
        return {"active": self.active, "finished": finished}

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        results = [env.reset(seed=None if seed is None else seed + i) for i, env in enumerate(self.envs)]
        return self._observation([r[0] for r in results]), self._infos([r[1] for r in results])

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, np.int64)
        results = [env.step(actions[a:b]) for env, a, b in zip(self.envs, self.bounds[:-1], self.bounds[1:])]
        return (self._observation([r[0] for r in results]), np.concatenate([r[1] for r in results]),
                np.concatenate([r[2] for r in results]), self._infos([r[3] for r in results]))


def _project(values: dict[str, Any], cls: type) -> dict[str, Any]:
    """``values`` (a config as a dict) cut to the fields of dataclass ``cls``, section by section."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = values[f.name]
        out[f.name] = _project(value, type(default)) if dataclasses.is_dataclass(default) else value
    return out


class MultiTaskProblem(NDHProblem):
    name: ClassVar[str] = "multitask"
    config_class: ClassVar[type[TrainConfig]] = MultiTaskConfig
    metric_names: ClassVar[tuple[str, ...]] = ("success_rate", "spl", "goal_progress", "ndtw", "nav_error",
                                               "trajectory_length")
    prediction_key: ClassVar[str] = ""  # each split's predictions use its task's key

    def task_problem(self, name: str) -> Problem:
        problem = get_problem(name)
        if not issubclass(MultiTaskConfig, problem.config_class) or name == self.name:
            raise InputError(f"tasks.{name}: problem {name!r} cannot share a multitask run's config "
                             "(tasks must be Matterport3D problems such as r2r, ndh)")
        return problem

    def task_config(self, config: MultiTaskConfig, name: str) -> TrainConfig:
        """The config of task ``name``: its problem's class holding the shared sections, its training files and
        its evaluation splits (without the ``<task>/`` prefix)."""
        problem = self.task_problem(name)
        values = to_dict(config)
        values["problem"] = name
        values["data"]["train"] = to_dict(config.tasks[name])["train"]
        values["data"]["eval"] = {split.partition("/")[2]: file for split, file in config.data.eval.items()
                                  if split.partition("/")[0] == name}
        return from_dict(problem.config_class, _project(values, problem.config_class), source=f"tasks.{name}")

    def check_inputs(self, config: MultiTaskConfig) -> None:
        """Every task's inputs (its problem's checks on its config)."""
        for name in config.tasks:
            self.task_problem(name).check_inputs(self.task_config(config, name))

    def make_env(self, config: MultiTaskConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> MixedEnv:
        """Training: every task's env on its share of ``num_envs`` slots; ``<task>/<split>``: that task's env."""
        names = list(config.tasks)
        if split == "train":
            chosen = names
            counts = slot_counts([config.tasks[n].share for n in names], num_envs)
            splits = ["train"] * len(names)
        else:
            task, _, task_split = split.partition("/")
            if task not in config.tasks:
                raise InputError(f"unknown split {split!r}: multitask splits are <task>/<split>")
            chosen, counts, splits = [task], [num_envs], [task_split]
        envs = [self.task_problem(n).make_env(self.task_config(config, n), s, k, seed + 7919 * i, evaluation)
                for i, (n, k, s) in enumerate(zip(chosen, counts, splits))]
        return MixedEnv(envs, [names.index(n) for n in chosen], chosen)

    def loss(self, agent: torch.nn.Module, unroll: Unroll, config: MultiTaskConfig
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """The single-task loss over the whole batch, plus each task's statistics over its own steps."""
        from valan.learning.losses import unroll_loss

        output, _ = agent(unroll.observations, unroll.initial_state, unroll.first.bool())
        loss, stats = unroll_loss(output.logits, output.values, unroll, config.learning)
        task = unroll.observations[TASK_KEY]
        steps = float(task[:-1].numel())
        with torch.no_grad():
            for i, name in enumerate(config.tasks):
                mask = task == i
                if unroll.valid is not None:
                    mask = mask & unroll.valid.bool()
                stats[f"{name}/step_share"] = float(mask[:-1].sum()) / steps
                if not mask[:-1].any():
                    continue
                _, task_stats = unroll_loss(output.logits, output.values, unroll._replace(valid=mask),
                                            config.learning)
                stats.update({f"{name}/{k}": v for k, v in task_stats.items() if k in TASK_STATS})
        return loss, stats

    def evaluate(self, config: MultiTaskConfig, split: str, predictions: list[dict]) -> dict[str, float]:
        task, _, task_split = split.partition("/")
        return self.task_problem(task).evaluate(self.task_config(config, task), task_split, predictions)

    def prediction(self, episode: dict[str, Any]) -> dict[str, Any]:
        """The episode's task's leaderboard-format prediction."""
        return self.task_problem(episode[TASK_KEY]).prediction(episode)

    def prediction_id(self, prediction: dict[str, Any]) -> Any:
        """The id under the task's key: the field beside ``trajectory`` (see :meth:`Problem.prediction`)."""
        return next(value for key, value in prediction.items() if key != "trajectory")

    def write_plots(self, config: MultiTaskConfig, split: str, episodes: list[dict], directory: Path,
                    limit: int) -> list[Path]:
        """The task's pictures of its split."""
        task, _, task_split = split.partition("/")
        return self.task_problem(task).write_plots(self.task_config(config, task), task_split, episodes, directory,
                                                   limit)

    def training_mix(self, config: MultiTaskConfig) -> list[dict[str, Any]]:
        return []
