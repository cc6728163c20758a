"""Navigation from Dialog History (CVDN's NDH task, Thomason et al. 2019) on the R2R machinery.

The environment is ``valan.envs.ndh.env.BatchedNDHEnv`` (R2R's observation layout), the agent the R2R follower
with the R2R vocabulary extended by the role separators, the losses R2R's, the metrics CVDN's
(``valan.envs.ndh.metrics``) for the config's ``env.path_type``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from valan.problems import Problem
from valan.problems.config import TrainConfig
from valan.problems.ndh.config import NDHConfig
from valan.problems.r2r.problem import R2RProblem, _feature_spec

if TYPE_CHECKING:
    from valan.text import Vocabulary


class NDHProblem(R2RProblem):
    name: ClassVar[str] = "ndh"
    config_class: ClassVar[type[TrainConfig]] = NDHConfig
    metric_names: ClassVar[tuple[str, ...]] = ("goal_progress", "success_rate", "spl", "oracle_path_success_rate",
                                               "nav_error", "trajectory_length")
    prediction_key: ClassVar[str] = "inst_idx"

    def check_inputs(self, config: NDHConfig) -> None:
        """Every NDH file loads and lies on ``data.connectivity``, the vocabulary loads, the feature store has
        every viewpoint of the connectivity's scans."""
        from valan.envs.ndh.dataset import load_ndh
        from valan.envs.r2r.graph import Connectivity, ViewpointIndex
        from valan.features.stores import open_feature_store
        from valan.problems import check_feature_keys

        Problem.check_inputs(self, config)
        connectivity = Connectivity(config.data.resolve(config.data.connectivity))
        for split in ("train", *config.data.eval):
            for f in config.data.split_files(split):
                load_ndh(f, connectivity)
        self.vocabulary(config)
        spec = _feature_spec(config)
        store = open_feature_store(spec, dim=config.data.synthetic_dim)
        if not store.synthetic:
            check_feature_keys(store, ViewpointIndex(connectivity, connectivity.scans()).keys(), spec)

    def vocabulary(self, config: NDHConfig) -> "Vocabulary":
        """The R2R vocabulary file ``data.vocab`` with ``<NAV> <ORA> <TAR>`` appended (R2R ids unchanged)."""
        from valan.envs.ndh.dataset import with_separators

        return with_separators(super().vocabulary(config))

    def make_env(self, config: NDHConfig, split: str, num_envs: int, seed: int, evaluation: bool) -> Any:
        from valan.envs.ndh.env import BatchedNDHEnv

        return BatchedNDHEnv(
            num_envs, data=config.data.split_files(split), connectivity=config.data.resolve(config.data.connectivity),
            vocab=self.vocabulary(config), path_type=config.env.path_type, reward=config.env.reward,
            max_steps=config.env.max_steps, max_instruction_length=config.env.max_instruction_length,
            max_candidates=config.env.max_candidates, history=config.agent.reads_history(), evaluation=evaluation,
            seed=seed, mirror=0.0 if evaluation else config.env.mirror)

    def training_mix(self, config: NDHConfig) -> list[dict[str, Any]]:
        """NDH files are drawn uniformly over their instances (no per-file weights)."""
        return []

    def evaluate(self, config: NDHConfig, split: str, predictions: list[dict]) -> dict[str, float]:
        """CVDN's NDH metrics (``valan.envs.ndh.metrics.SUMMARY_KEYS``) for ``env.path_type``."""
        from valan.envs.ndh.dataset import load_ndh
        from valan.envs.ndh.metrics import evaluate_ndh
        from valan.envs.r2r.graph import Connectivity

        files = config.data.split_files(split)
        connectivity = Connectivity(config.data.resolve(config.data.connectivity))
        episodes = [ep for f in files for ep in load_ndh(f, connectivity)]
        summary, _ = evaluate_ndh(episodes, predictions, connectivity, config.env.path_type,
                                  predictions_source=f"{split} predictions", data_source=", ".join(files))
        return summary

    def write_plots(self, config: TrainConfig, split: str, episodes: list[dict], directory: Path,
                    limit: int) -> list[Path]:
        """No pictures for NDH (the R2R drawings read R2R episodes)."""
        return []
