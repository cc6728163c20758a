"""Evaluation during and after training: eval actors' episodes -> metrics, predictions, plots, TensorBoard.

Eval actors run the learner's frozen evaluation snapshot greedily over whole splits (each episode exactly once:
one actor per split, splits spread over the eval actors). The :class:`EvalAggregator` scores the episodes with
the problem's metrics and writes, under ``<out>/eval``:

- ``metrics.jsonl``: one line per (evaluation, split): ``split``, ``step``, ``env_steps`` and the metrics;
- ``<split>/predictions-<step>.json``: the predictions in the task's leaderboard format
  (:meth:`Problem.prediction <valan.problems.Problem.prediction>`: R2R
  ``[{"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}]``, Touchdown
  ``[{"route_id": ..., "trajectory": [panoid, ...]}]``, map2seq the same keyed by ``id``);
- ``<split>/plots-<step>/``: a few trajectory pictures (when the problem draws them);

and the metrics as TensorBoard scalars ``eval/<split>/<metric>`` (x axis: env steps).

``valan evaluate r2r|streetview --checkpoint`` evaluates a checkpoint with the same acting code, in process
(:class:`TrainedCheckpoint`): the problem builds the environment for the given data file and graph.
"""

from __future__ import annotations

import dataclasses
import json
import queue
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from valan.distributed.inference import InferenceServer
from valan.errors import InputError
from valan.io import atomic_write, read_jsonl, write_json
from valan.problems import Problem
from valan.problems.config import TrainConfig

PLOTS_PER_EVALUATION = 3
DATA_FILE_SPLIT = "data_file"  # the split name under which a checkpoint is evaluated on one data file


def leaderboard_predictions(problem: Problem, episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The problem's leaderboard-format predictions of finished episodes (the environment's records), sorted by
    the task's id (``problem.prediction_id``)."""
    return sorted((problem.prediction(e) for e in episodes), key=problem.prediction_id)


class EvalAggregator:
    """Scores evaluations and writes their results (see the module docstring)."""

    def __init__(self, problem: Problem, config: TrainConfig, out_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self.problem, self.config = problem, config
        self.directory = Path(out_dir) / "eval"
        self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def record(self, split: str, step: int, env_steps: int, episodes: list[dict[str, Any]]) -> dict[str, float]:
        """Score one split's episodes, write predictions, metrics line, scalars and plots; return the metrics."""
        predictions = leaderboard_predictions(self.problem, episodes)
        metrics = self.problem.evaluate(self.config, split, predictions)
        write_json(self.directory / split / f"predictions-{step:09d}.json", predictions, indent=None)
        self._append({"split": split, "step": step, "env_steps": env_steps, **metrics})
        for name, value in metrics.items():
            self.writer.add_scalar(f"eval/{split}/{name}", value, env_steps)
        self.writer.flush()
        self.problem.write_plots(self.config, split, episodes[:PLOTS_PER_EVALUATION],
                                 self.directory / split / f"plots-{step:09d}", PLOTS_PER_EVALUATION)
        return metrics

    @staticmethod
    def read_history(out_dir: str | Path) -> list[dict[str, Any]]:
        """Every metrics line a run (and the runs it resumed from) wrote to ``<out_dir>/eval/metrics.jsonl``."""
        path = Path(out_dir) / "eval" / "metrics.jsonl"
        return read_jsonl(path) if path.exists() else []

    def _append(self, line: dict[str, Any]) -> None:
        path = self.directory / "metrics.jsonl"
        previous = path.read_text(encoding="utf-8") if path.exists() else ""
        with atomic_write(path) as f:
            f.write(previous + json.dumps(line) + "\n")

    def close(self) -> None:
        self.writer.close()


def greedy_episodes(env: Any, act: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray],
                    on_finished: Callable[[int], object] | None = None) -> list[dict[str, Any]]:
    """Run an evaluation-mode batched env to the end with ``act(obs, first) -> actions``; the finished episodes'
    records, as the environment reported them (id, ``trajectory``, ...). ``on_finished(n)`` hears of every step's
    ``n`` newly finished episodes (a progress bar)."""
    obs, _ = env.reset()
    first = np.ones(env.num_envs, bool)
    episodes: list[dict[str, Any]] = []
    while not env.finished:
        obs, _, done, infos = env.step(act(obs, first))
        episodes.extend(infos["finished"])
        if on_finished is not None and infos["finished"]:
            on_finished(len(infos["finished"]))
        first = done
    return episodes


def local_greedy_episodes(problem: Problem, config: TrainConfig, agent: Any, split: str, num_envs: int = 16,
                          progress: bool = False) -> list[dict[str, Any]]:
    """Run ``agent`` greedily over every episode of ``split`` exactly once, in this process (no Ray), acting as
    the eval actors do: :func:`greedy_episodes` asking an inference server for evaluation actions. ``progress``
    shows a progress bar (episodes) on stderr when it is a terminal."""
    from tqdm import tqdm

    env = problem.make_env(config, split, num_envs, config.run.seed, evaluation=True)
    server = InferenceServer(agent, unroll_length=1, unroll_queue=queue.Queue(maxsize=1), max_batch=num_envs,
                             max_wait_ms=0.0)
    bar = tqdm(total=len(env.world.episode_ids), desc=f"{problem.name} agent", unit="episode",
               disable=None if progress else True)
    try:
        return greedy_episodes(env, lambda obs, first: server.infer(0, "local", obs, None, None, first,
                                                                    evaluation=True), on_finished=bar.update)
    finally:
        bar.close()
        server.close()


@dataclasses.dataclass(frozen=True)
class TrainedCheckpoint:
    """A ``valan train`` checkpoint: its problem, its config and the loaded state (weights under ``model``).

    It holds everything acting needs besides the navigation graph, the episodes and (for real features) the
    feature store: the weights, the config and the vocabulary's tokens (``vocab``; checkpoints written before
    valan stored it rebuild the vocabulary from the config's files, as training did).
    """

    problem: Problem
    config: TrainConfig
    state: dict[str, Any]
    source: str

    @classmethod
    def load(cls, path: str | Path, task: str | None = None) -> TrainedCheckpoint:
        """Read ``path``; ``InputError`` when it is not a training checkpoint or, with ``task`` (a problem's name
        or ``command_word``, e.g. ``streetview``), when its problem is not that task's."""
        from valan.checkpoint import load_checkpoint
        from valan.problems import config_from_dict, get_problem

        source = str(path)
        state = load_checkpoint(path)
        if not isinstance(state.get("config"), dict) or "model" not in state:
            raise InputError("not a valan train checkpoint (no 'config' or 'model')", source=source)
        config = config_from_dict(state["config"], source=source)
        problem = get_problem(config.problem)
        if task is not None and task not in (problem.name, problem.command_word):
            raise InputError(f"a {problem.name!r} checkpoint, not a {task!r} one", source=source)
        return cls(problem, config, state, source)

    def predictions(self, data_file: str | Path, graph: str | Path | None = None, num_envs: int = 16,
                    progress: bool = False, ensemble_with: Sequence[TrainedCheckpoint] = ()) -> list[dict[str, Any]]:
        """The trained agent's leaderboard-format predictions on every episode of ``data_file`` (reference paths
        or not: test splits too), acting greedily (:func:`local_greedy_episodes`); ``graph`` replaces the training
        config's navigation graph when given; ``progress`` shows a progress bar.

        ``ensemble_with``: further checkpoints that act together with this one as a
        :class:`~valan.agents.ensemble.Ensemble` (mean of the members' log-probabilities). They must have this
        checkpoint's problem, vocabulary and environment config (``InputError`` naming the one that differs);
        the environment and the episodes are this checkpoint's."""
        import tempfile

        from valan.agents.ensemble import Ensemble
        from valan.text import Vocabulary

        problem = self.problem
        config = problem.evaluation_config(self.config, DATA_FILE_SPLIT, data_file, graph)
        for other in ensemble_with:
            self._check_ensemble_member(other)
        with tempfile.TemporaryDirectory(prefix="valan-vocab-") as scratch:
            if "vocab" in self.state:  # the checkpoint's own vocabulary, not the training files'
                vocab_file = Path(scratch) / "vocab.txt"
                Vocabulary(list(self.state["vocab"])).save(vocab_file)
                config = dataclasses.replace(config, data=dataclasses.replace(config.data, vocab=str(vocab_file)))
            members = []
            for trained in (self, *ensemble_with):  # each member's own agent config, this one's data and env
                member_config = dataclasses.replace(trained.config, data=config.data, env=config.env)
                agent = problem.make_agent(member_config, problem.feature_table(member_config))
                problem.init_from(agent, trained.state, source=trained.source)
                members.append(agent)
            agent = (Ensemble(members) if ensemble_with else members[0]).eval()
            episodes = local_greedy_episodes(problem, config, agent, DATA_FILE_SPLIT, num_envs, progress)
        return leaderboard_predictions(problem, episodes)

    def _check_ensemble_member(self, other: TrainedCheckpoint) -> None:
        """``InputError`` unless ``other`` can act beside this checkpoint (see :meth:`predictions`)."""
        if other.problem.name != self.problem.name:
            raise InputError(f"a {other.problem.name!r} checkpoint cannot join an ensemble with the "
                             f"{self.problem.name!r} checkpoint {self.source}", source=other.source)
        if list(other.state.get("vocab", ())) != list(self.state.get("vocab", ())):
            raise InputError(f"its vocabulary differs from that of {self.source}: ensemble members must share one",
                             source=other.source)
        if other.config.env != self.config.env:
            raise InputError(f"its env config differs from that of {self.source}: ensemble members must observe "
                             "alike", source=other.source)


def assign_splits(splits: list[str], num_eval_actors: int) -> list[list[str]]:
    """Spread splits over eval actors round-robin: one actor runs all of a split (each episode exactly once)."""
    actors: list[list[str]] = [[] for _ in range(max(1, min(num_eval_actors, len(splits))))]
    for i, split in enumerate(splits):
        actors[i % len(actors)].append(split)
    return actors
