"""NDH through the problem layer: teacher-forced imitation on the bundled format sample raises goal progress from
about zero to clearly positive (in process, no Ray; synthetic features: language and path geometry only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valan.config import apply_overrides
from valan.configs import config_path
from valan.distributed.evaluation import leaderboard_predictions, local_greedy_episodes
from valan.learning.step import make_optimizer, train_step
from valan.problems import get_problem, load_train_config
from helpers.teacher_forcing import teacher_forced_unroll

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = ["agent.hidden_dim=64", "agent.embed_dim=32", "agent.geometry_dim=16", "learning.lr=3e-3",
         "env.max_steps=12"]


def goal_progress(problem, config, agent, split: str) -> dict[str, float]:
    agent.eval()
    episodes = local_greedy_episodes(problem, config, agent, split, num_envs=32)
    agent.train()
    return problem.evaluate(config, split, leaderboard_predictions(problem, episodes))


def train(problem, config, steps: int, batch: int = 16):
    torch.manual_seed(0)
    agent = problem.make_agent(config)
    optimizer = make_optimizer(agent, config.learning)
    env = problem.make_env(config, "train", batch, seed=0, evaluation=False)
    before = goal_progress(problem, config, agent, next(iter(config.data.eval)))
    stats = [train_step(agent, optimizer, teacher_forced_unroll(env, agent, 12, seed=step), config, step,
                        problem.loss) for step in range(steps)]
    return agent, before, stats


@pytest.mark.slow
def test_imitation_learns_positive_goal_progress_on_the_format_sample():
    problem = get_problem("ndh")
    config = apply_overrides(load_train_config(config_path("ndh.yaml")), SMALL)
    agent, before, stats = train(problem, config, steps=150, batch=32)
    after = goal_progress(problem, config, agent, "val")
    assert abs(before["goal_progress"]) < 1.0, before  # the untrained agent gets nowhere near the region
    assert after["goal_progress"] > max(1.5, before["goal_progress"] + 1.0), (before, after)
    assert after["success_rate"] > 0.15, after
    assert np.mean([s["loss"] for s in stats[-10:]]) < 0.7 * np.mean([s["loss"] for s in stats[:5]])
