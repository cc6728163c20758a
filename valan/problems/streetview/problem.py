"""Touchdown (Chen et al. 2019) and map2seq (Schumann & Riezler 2021) navigation on the StreetLearn graph.

Binds the batched Street View environment (``valan.envs.streetview.env``), the Touchdown follower
(``valan.agents.touchdown_follower``), the V-trace/imitation losses (``valan.learning.losses``) and the Touchdown metrics
(``valan.envs.streetview.metrics``) to the config's sections. The two problems differ only in their defaults
(data files, instruction length).

Their config sections are in :mod:`valan.problems.streetview.config`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from valan.errors import InputError
from valan.learning.unroll import Unroll
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
    select_metric: ClassVar[str] = "task_completion"
    prediction_key: ClassVar[str] = "route_id"
    graph_field: ClassVar[str] = "graph"
    command_word: ClassVar[str] = "streetview"

    def check_inputs(self, config: TouchdownConfig) -> None:
        """Every data file's routes walk along links of ``data.graph`` (``valan data check streetview``), the
        vocabulary loads (or builds from ``data.train``), and the feature store has every panorama."""
        from valan.envs.streetview.dataset import load_routes
        from valan.problems import check_feature_keys

        super().check_inputs(config)
        g = graph(config)
        for split in ("train", *config.data.eval):
            for f in config.data.split_files(split):
                load_routes(f, g)
        store = feature_store(config)
        if not store.synthetic:
            check_feature_keys(store, [(g.name, p) for p in g.panoids], str(config.data.resolve(config.data.features)))

    def make_env(self, config: TouchdownConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> Any:
        from valan.envs.streetview.env import BatchedTouchdownEnv

        e = config.env
        return BatchedTouchdownEnv(
            num_envs, data=config.data.split_files(split), graph=graph(config), vocab=self.vocabulary(config),
            action_space=e.action_space, max_steps=e.eval_max_steps if evaluation else e.max_steps,
            max_instruction_length=e.max_instruction_length, reward=e.reward, step_cost=e.step_cost,
            stop_reward=e.stop_reward, evaluation=evaluation, seed=seed, mirror=0.0 if evaluation else e.mirror)

    def vocabulary(self, config: TouchdownConfig) -> Any:
        """``data.vocab``, or built from the ``data.train`` files (:func:`vocabulary`)."""
        return vocabulary(config)

    def feature_table(self, config: TouchdownConfig) -> np.ndarray:
        """``(N, V, D)`` unrolled features of every panorama of ``data.graph`` in index order; an empty
        ``(0, V, D)`` table of synthetic shape when the agent has no visual pathway (``agent.visual`` none)."""
        if config.resolve_visual() == "none":
            return np.zeros((0, config.data.feature_views, config.data.synthetic_dim), np.float32)
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
            len(self.vocabulary(config)), feature_table, num_actions=num_actions(e.action_space), headings=headings,
            max_instruction_length=e.max_instruction_length, max_steps=max(e.max_steps, e.eval_max_steps),
            embed_dim=a.embed_dim, hidden_dim=a.hidden_dim, core_layers=a.core_layers, view_dim=a.view_dim,
            action_embed_dim=a.action_embed_dim, time_embed_dim=a.time_embed_dim, dropout=a.dropout,
            instruction_dropout=a.instruction_dropout, word_dropout=a.word_dropout, visual=config.resolve_visual())

    def loss(self, agent: torch.nn.Module, unroll: Unroll, config: TouchdownConfig
             ) -> tuple[torch.Tensor, dict[str, float]]:
        from valan.learning.losses import agent_loss

        return agent_loss(agent, unroll, config.learning)

    def evaluate(self, config: TouchdownConfig, split: str, predictions: list[dict]) -> dict[str, float]:
        """``task_completion``, ``spd``, ``sed``, ``num_episodes`` of ``predictions`` on ``split`` (records keyed by
        ``route_id`` or ``id``)."""
        from valan.envs.streetview.dataset import load_routes
        from valan.envs.streetview.metrics import evaluate_streetview

        files = config.data.split_files(split)
        g = graph(config)
        routes = [r for f in files for r in load_routes(f, g)]
        summary, _ = evaluate_streetview(routes, predictions, g,
                                         predictions_source=f"{split} predictions", data_source=", ".join(files))
        return summary

    def prediction(self, episode: dict[str, Any]) -> dict[str, Any]:
        """The env's record names the route ``id``; the prediction names it by the task's key."""
        return {self.prediction_key: episode["id"], "trajectory": episode["trajectory"]}

    def episode_scores(self, config: TouchdownConfig, split: str, predictions: list[dict]) -> list[dict[str, Any]]:
        """Task completion (success), SPD (hops) and SED per route."""
        from valan.envs.streetview.dataset import load_routes
        from valan.envs.streetview.metrics import evaluate_streetview

        files = config.data.split_files(split)
        routes = [r for f in files for r in load_routes(f)]
        _, scored = evaluate_streetview(routes, predictions, graph(config), predictions_source=f"{split} predictions",
                                        data_source=", ".join(files))
        return [{"id": s["id"], "instruction": r.navigation_text, "success": bool(s["task_completion"]),
                 "spd": float(s["spd"]), "sed": s["sed"]} for r, s in zip(routes, scored)]

    def write_plots(self, config: TouchdownConfig, split: str, episodes: list[dict], directory: Path,
                    limit: int) -> list[Path]:
        """Top-down pictures (``valan.problems.streetview.plots``) of the first ``limit`` evaluated episodes
        (environment records, keyed by ``id``, or leaderboard predictions): the route and the trajectory on the
        graph, TC/SPD/SED and the instruction."""
        from valan.envs.streetview.dataset import load_routes
        from valan.envs.streetview.metrics import evaluate_streetview
        from valan.problems.streetview.plots import write_route_plot

        chosen = {str(e["id"] if "id" in e else e[self.prediction_key]): e["trajectory"] for e in episodes[:limit]}
        routes = [r for f in config.data.split_files(split) for r in load_routes(f) if r.id in chosen]
        g = graph(config)
        _, scored = evaluate_streetview(routes, [{"id": i, "trajectory": t} for i, t in chosen.items()], g)
        return [write_route_plot(directory, g, result, route.route, chosen[route.id], route.navigation_text)
                for route, result in zip(routes, scored)]


class Map2seqProblem(TouchdownProblem):
    name: ClassVar[str] = "map2seq"
    config_class: ClassVar[type[TrainConfig]] = Map2seqConfig
    prediction_key: ClassVar[str] = "id"

