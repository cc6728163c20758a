"""Touchdown (Chen et al. 2019) and map2seq (Schumann & Riezler 2021) navigation on the StreetLearn graph.

Binds the batched Street View environment (``valan.envs.streetview.env``), the Touchdown follower
(``valan.agents.touchdown_follower``), the V-trace/imitation losses (``valan.learning.losses``) and the Touchdown metrics
(``valan.envs.streetview.metrics``) to the config's sections. The two problems differ only in their defaults
(data files, instruction length).

Their config sections are in :mod:`valan.problems.streetview.config`.
"""

from __future__ import annotations

import functools
import os
from typing import Any, ClassVar

import numpy as np
import torch

from valan.errors import InputError
from valan.problems import Problem
from valan.problems.config import TrainConfig
from valan.problems.streetview.config import Map2seqConfig, TouchdownConfig


@functools.lru_cache(maxsize=8)
def _vocabulary(files: tuple[str, ...], vocab: str, min_count: int) -> Any:
    from valan.envs.streetview.dataset import build_vocabulary, load_routes
    from valan.text import Vocabulary

    if vocab:
        return Vocabulary.load(vocab)
    return build_vocabulary([r for f in files for r in load_routes(f)], min_count=min_count)


def vocabulary(config: TouchdownConfig) -> Any:
    """The vocabulary of ``config``: ``data.vocab``, or built from the ``data.train`` files (cached)."""
    d = config.data
    return _vocabulary(tuple(config.data.split_files("train")), str(d.resolve(d.vocab)) if d.vocab else "",
                       d.vocab_min_count)


def graph(config: TouchdownConfig) -> Any:
    from valan.envs.streetview.graph import load_graph

    return load_graph(config.data.resolve(config.data.graph))


def feature_store(config: TouchdownConfig) -> Any:
    from valan.features.stores import open_feature_store

    spec = config.data.features
    return open_feature_store(spec if spec == "synthetic" else str(config.data.resolve(spec)),
                              views=config.data.feature_views, dim=config.data.synthetic_dim)


class TouchdownProblem(Problem):
    name: ClassVar[str] = "touchdown"
    config_class: ClassVar[type[TrainConfig]] = TouchdownConfig
    metric_names: ClassVar[tuple[str, ...]] = ("task_completion", "spd", "sed")

    def make_env(self, config: TouchdownConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> Any:
        from valan.envs.streetview.env import BatchedTouchdownEnv

        e = config.env
        return BatchedTouchdownEnv(
            num_envs, data=config.data.split_files(split), graph=graph(config), vocab=vocabulary(config),
            action_space=e.action_space, max_steps=e.eval_max_steps if evaluation else e.max_steps,
            max_instruction_length=e.max_instruction_length, reward=e.reward, step_cost=e.step_cost,
            stop_reward=e.stop_reward, evaluation=evaluation, seed=seed)

    def feature_table(self, config: TouchdownConfig) -> np.ndarray:
        """``(N, V, D)`` unrolled features of every panorama of ``data.graph`` in index order."""
        g = graph(config)
        return feature_store(config).table([(g.name, p) for p in g.panoids])

    def make_agent(self, config: TouchdownConfig, feature_table: np.ndarray | torch.Tensor | None = None
                   ) -> torch.nn.Module:
        from valan.agents.touchdown_follower import TouchdownFollower
        from valan.envs.streetview.env import num_actions

        if feature_table is None:
            feature_table = self.feature_table(config)
        a, e = config.agent, config.env
        views, headings = int(feature_table.shape[-2]), config.data.feature_headings
        if headings < 1 or views % headings:
            raise InputError(f"data.feature_headings = {headings} does not divide the features' {views} views "
                             "into pitch rows")
        return TouchdownFollower(
            len(vocabulary(config)), feature_table, num_actions=num_actions(e.action_space), headings=headings,
            max_instruction_length=e.max_instruction_length, max_steps=max(e.max_steps, e.eval_max_steps),
            embed_dim=a.embed_dim, hidden_dim=a.hidden_dim, core_layers=a.core_layers, view_dim=a.view_dim,
            action_embed_dim=a.action_embed_dim, time_embed_dim=a.time_embed_dim, dropout=a.dropout)

    def loss(self, agent: torch.nn.Module, unroll: dict[str, Any], config: TouchdownConfig
             ) -> tuple[torch.Tensor, dict[str, float]]:
        from valan.learning.losses import agent_loss

        return agent_loss(agent, unroll, config.learning)

    def evaluate(self, config: TouchdownConfig, split: str, predictions: list[dict]) -> dict[str, float]:
        """``task_completion``, ``spd``, ``sed``, ``num_episodes`` of ``predictions`` on ``split`` (records keyed by
        ``id``, ``route_id`` or, as the training machinery writes them, ``instr_id``)."""
        from valan.envs.streetview.dataset import load_routes
        from valan.envs.streetview.metrics import evaluate_streetview

        files = config.data.split_files(split)
        routes = [r for f in files for r in load_routes(f)]
        summary, _ = evaluate_streetview(routes, predictions, graph(config),
                                         predictions_source=f"{split} predictions", data_source=", ".join(files))
        return summary


class Map2seqProblem(TouchdownProblem):
    name: ClassVar[str] = "map2seq"
    config_class: ClassVar[type[TrainConfig]] = Map2seqConfig


def run_greedy(agent: torch.nn.Module, env: Any) -> list[dict[str, Any]]:
    """Run ``agent`` greedily (argmax) over every route of an evaluation-mode batched env; the finished
    episodes' records (``id``, ``trajectory``, ...)."""
    from valan.distributed.evaluation import greedy_episodes

    state = agent.initial_state(env.num_envs)

    def act(obs: dict[str, np.ndarray], first: np.ndarray) -> np.ndarray:
        nonlocal state
        tensors = {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}
        with torch.inference_mode():
            output, state = agent(tensors, state, torch.as_tensor(first).unsqueeze(0))
        return output.logits[0].argmax(-1).numpy()

    return greedy_episodes(env, act)


def checkpoint_predictions(checkpoint: str | os.PathLike, data: str | os.PathLike, graph_dir: str | os.PathLike
                           ) -> list[dict[str, Any]]:
    """Predictions of a trained Touchdown / map2seq agent on every route of ``data`` (``valan evaluate
    streetview --checkpoint``): the checkpoint's config, weights and vocabulary, the given routes and graph."""
    from valan.checkpoint import load_checkpoint
    from valan.problems import config_from_dict
    from valan.envs.streetview.env import BatchedTouchdownEnv
    from valan.envs.streetview.graph import load_graph

    state = load_checkpoint(checkpoint)
    source = str(checkpoint)
    if not isinstance(state.get("config"), dict):
        raise InputError("not a training checkpoint (no config)", source=source)
    config = config_from_dict(state["config"], source=source)
    if not isinstance(config, TouchdownConfig):
        raise InputError(f"a {config.problem!r} checkpoint, not a Touchdown or map2seq one", source=source)
    problem = TouchdownProblem() if config.problem == "touchdown" else Map2seqProblem()
    g = load_graph(graph_dir)
    table = feature_store(config).table([(g.name, p) for p in g.panoids])
    agent = problem.make_agent(config, table)
    problem.init_from(agent, state, source=source)
    agent.eval()
    e = config.env
    env = BatchedTouchdownEnv(16, data=data, graph=g, vocab=vocabulary(config), action_space=e.action_space,
                              max_steps=e.eval_max_steps, max_instruction_length=e.max_instruction_length,
                              evaluation=True)
    return [{"id": r["id"], "trajectory": r["trajectory"]} for r in run_greedy(agent, env)]
