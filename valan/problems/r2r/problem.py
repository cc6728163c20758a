"""Room-to-Room (Anderson et al. 2018): instruction following on Matterport3D navigation graphs.

Binds the batched R2R environment (``valan.envs.r2r.env``), the VALAN follower (``valan.agents.r2r_follower``),
the V-trace/imitation losses (``valan.learning.losses``) and the R2R metrics (``valan.envs.r2r.metrics``) to the config's
``data``, ``env``, ``agent`` and ``learning`` sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from valan.learning.unroll import Unroll
from valan.problems.config import TrainConfig
from valan.problems.r2r.config import R2RConfig
from valan.problems import Problem


class R2RProblem(Problem):
    name: ClassVar[str] = "r2r"
    config_class: ClassVar[type[TrainConfig]] = R2RConfig
    metric_names: ClassVar[tuple[str, ...]] = ("success_rate", "spl", "ndtw", "sdtw", "nav_error", "trajectory_length")
    select_metric: ClassVar[str] = "spl"
    prediction_key: ClassVar[str] = "instr_id"
    graph_field: ClassVar[str] = "connectivity"

    def check_inputs(self, config: R2RConfig) -> None:
        """Every data file's paths walk along edges of ``data.connectivity`` (``valan data check r2r``), the
        vocabulary loads, and the feature store has every viewpoint of the connectivity's scans."""
        from valan.envs.r2r.dataset import load_r2r
        from valan.envs.r2r.graph import Connectivity, ViewpointIndex
        from valan.features.stores import open_feature_store
        from valan.problems import check_feature_keys

        super().check_inputs(config)
        connectivity = Connectivity(config.data.resolve(config.data.connectivity))
        for split in ("train", *config.data.eval):
            for f in config.data.split_files(split):
                load_r2r(f, connectivity)
        spec = _feature_spec(config)
        store = open_feature_store(spec, dim=config.data.synthetic_dim)
        if not store.synthetic:
            check_feature_keys(store, ViewpointIndex(connectivity, connectivity.scans()).keys(), spec)

    def make_env(self, config: R2RConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> Any:
        """The batched R2R env; training envs follow ``learning.curriculum`` when it is not ``"none"``."""
        from valan.envs.r2r.env import BatchedR2REnv

        weights = None
        mix = self.training_mix(config) if split == "train" and not evaluation else []
        if any(m["weight"] != 1.0 for m in mix):  # weighted training files (data.train entries with a weight)
            weights = np.repeat([m["weight"] for m in mix], [m["episodes"] for m in mix])
        env = BatchedR2REnv(
            num_envs, data=config.data.split_files(split), connectivity=config.data.resolve(config.data.connectivity),
            vocab=self.vocabulary(config), reward=config.env.reward, max_steps=config.env.max_steps,
            max_instruction_length=config.env.max_instruction_length, max_candidates=config.env.max_candidates,
            history=config.agent.reads_history(), evaluation=evaluation, seed=seed, episode_weights=weights,
            mirror=0.0 if evaluation else config.env.mirror)
        if evaluation or config.learning.curriculum == "none":
            return env
        from valan.problems.r2r.curriculum import CurriculumEnv, CurriculumSchedule, difficulty_order

        hops = np.array([len(ep.path) - 1 for ep in env.world.episodes])
        order = difficulty_order(hops, env.world.instruction_lengths)
        return CurriculumEnv(env, order, CurriculumSchedule(config.learning, config.distributed.num_actors))

    def training_mix(self, config: R2RConfig) -> list[dict[str, Any]]:
        """Per ``data.train`` file, in order: its episodes (instructions) and weight, and its share of the
        training draws (``valan.envs.batched.EpisodeSchedule``)."""
        from valan.envs.r2r.dataset import load_r2r

        entries = config.data.train_files()
        counts = [len(load_r2r(f)) for f in config.data.split_files("train")]
        total = sum(e.weight * n for e, n in zip(entries, counts)) or 1.0
        return [{"file": e.file, "weight": e.weight, "episodes": n, "share": e.weight * n / total}
                for e, n in zip(entries, counts)]

    def feature_table(self, config: R2RConfig) -> np.ndarray:
        """``(N, 36, D)`` features of every viewpoint of every scan in ``data.connectivity``, in the global index
        order the environments use (the default ``scans`` of ``R2REnv``); an empty ``(0, 36, D)`` table when the
        agent has no visual pathway (``agent.visual`` none), which never reads it."""
        from valan.envs.r2r.graph import Connectivity, ViewpointIndex
        from valan.features.stores import R2R_VIEWS, open_feature_store

        if config.resolve_visual() == "none":
            return np.zeros((0, R2R_VIEWS, config.data.synthetic_dim), np.float32)
        store = open_feature_store(_feature_spec(config), dim=config.data.synthetic_dim)
        connectivity = Connectivity(config.data.resolve(config.data.connectivity))
        return store.table(ViewpointIndex(connectivity, connectivity.scans()).keys())

    def make_agent(self, config: R2RConfig, feature_table: np.ndarray | torch.Tensor | None = None) -> torch.nn.Module:
        from valan.agents.r2r_follower import R2RFollower

        if feature_table is None:
            feature_table = self.feature_table(config)
        a = config.agent
        return R2RFollower(len(self.vocabulary(config)), feature_table,
                           max_instruction_length=config.env.max_instruction_length, embed_dim=a.embed_dim,
                           hidden_dim=a.hidden_dim, core_layers=a.core_layers, geometry_dim=a.geometry_dim,
                           dropout=a.dropout, instruction_dropout=a.instruction_dropout,
                           word_dropout=a.word_dropout, visual=config.resolve_visual(),
                           visited=a.visited, odometry=a.odometry, progress_monitor=a.progress_monitor > 0)

    def loss(self, agent: torch.nn.Module, unroll: Unroll, config: R2RConfig
             ) -> tuple[torch.Tensor, dict[str, float]]:
        from valan.learning.losses import agent_loss

        return agent_loss(agent, unroll, config.learning, progress_cost=config.agent.progress_monitor)

    def evaluate(self, config: R2RConfig, split: str, predictions: list[dict]) -> dict[str, float]:
        """R2R summary metrics (``valan.envs.r2r.metrics.SUMMARY_KEYS``) of leaderboard predictions on ``split``."""
        from valan.envs.r2r.dataset import load_r2r
        from valan.envs.r2r.metrics import evaluate_r2r

        from valan.envs.r2r.graph import Connectivity

        files = config.data.split_files(split)
        connectivity = Connectivity(config.data.resolve(config.data.connectivity))
        episodes = [ep for f in files for ep in load_r2r(f, connectivity)]
        summary, _ = evaluate_r2r(episodes, predictions, connectivity,
                                  predictions_source=f"{split} predictions", data_source=", ".join(files))
        return summary

    def init_from(self, agent: torch.nn.Module, checkpoint: dict[str, Any], source: str = "") -> None:
        """A ``valan pretrain-alignment`` checkpoint loads the instruction and visual encoders (printing what was
        loaded and what is new); any other checkpoint loads whole (the base behaviour)."""
        if checkpoint.get("problem") == "alignment":
            from valan.agents.alignment import load_alignment_into

            load_alignment_into(agent, checkpoint, source=source)
            return
        super().init_from(agent, checkpoint, source)

    def episode_scores(self, config: R2RConfig, split: str, predictions: list[dict]) -> list[dict[str, Any]]:
        """Success (navigation error < 3 m), SPL, navigation error (m) and nDTW per episode."""
        from valan.envs.r2r.dataset import load_r2r
        from valan.envs.r2r.graph import Connectivity
        from valan.envs.r2r.metrics import evaluate_r2r

        files = config.data.split_files(split)
        episodes = [ep for f in files for ep in load_r2r(f)]
        _, scored = evaluate_r2r(episodes, predictions, Connectivity(config.data.resolve(config.data.connectivity)),
                                 predictions_source=f"{split} predictions", data_source=", ".join(files))
        return [{"id": s["instr_id"], "instruction": ep.instruction, "success": bool(s["success"]), "spl": s["spl"],
                 "nav_error": s["nav_error"], "ndtw": s["ndtw"]} for ep, s in zip(episodes, scored)]

    def write_plots(self, config: R2RConfig, split: str, episodes: list[dict], directory: Path,
                    limit: int) -> list[Path]:
        """Top-down pictures (``valan.problems.r2r.plots``) of the first ``limit`` evaluated episodes: graph per floor,
        reference path, trajectory, 3 m around the goal, the episode's SR/SPL/NE/nDTW and its instruction."""
        from valan.envs.r2r.dataset import load_r2r
        from valan.envs.r2r.graph import Connectivity
        from valan.envs.r2r.metrics import evaluate_r2r
        from valan.problems.r2r.plots import write_episode_plot

        chosen = {e["instr_id"]: e["trajectory"] for e in episodes[:limit]}
        data = [ep for f in config.data.split_files(split) for ep in load_r2r(f) if ep.instr_id in chosen]
        connectivity = Connectivity(config.data.resolve(config.data.connectivity))
        _, scored = evaluate_r2r(data, [{"instr_id": i, "trajectory": t} for i, t in chosen.items()], connectivity)
        results = {s["instr_id"]: s for s in scored}
        return [write_episode_plot(directory, connectivity.graph(ep.scan), results[ep.instr_id], ep.path,
                                   [step[0] for step in chosen[ep.instr_id]], ep.instruction) for ep in data]


def _feature_spec(config: R2RConfig) -> str:
    spec = config.data.features
    return spec if spec == "synthetic" else str(config.data.resolve(spec))
