"""Actors: step a problem's batched environment on CPU; the learner's inference server chooses the actions.

An actor holds no model, no weights and no features. Per inference call it sends the observations of its ``K``
env slots, the rewards and ``done`` flags of the previous actions and the ``first`` flags (episode starts),
and steps its environment with the actions it gets back. Each process has an *incarnation* id: when Ray
restarts a failed actor, the new incarnation starts fresh episodes and the learner drops the old one's
unfinished unrolls.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from valan.problems.config import TrainConfig
from valan.distributed.evaluation import greedy_episodes
from valan.distributed.inference import new_incarnation
from valan.problems import Problem


class EnvActor:
    """One actor process (wrap with ``ray.remote``). ``learner`` is the learner's Ray actor handle.

    Training actors call :meth:`run`; evaluation actors call :meth:`evaluate` once per evaluation.
    """

    def __init__(self, actor_id: int, problem: Problem, config: TrainConfig, learner: Any, num_envs: int):
        import ray

        self.actor_id = actor_id
        self.problem, self.config, self.learner = problem, config, learner
        self.num_envs = num_envs
        self.incarnation = new_incarnation()
        # A restarted actor draws different episodes from its first incarnation.
        with warnings.catch_warnings():  # Ray warns about an internal deprecated call here
            warnings.simplefilter("ignore")
            restarted = ray.get_runtime_context().was_current_actor_reconstructed if ray.is_initialized() else False
        self.seed = int(np.random.SeedSequence([config.run.seed, actor_id, int(restarted)]).generate_state(1)[0])
        self.env = None

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def run(self) -> int:
        """Step the environments until the learner says training is over; returns the env steps taken."""
        import ray

        if self.env is None:
            self.env = self.problem.make_env(self.config, "train", self.num_envs, self.seed, evaluation=False)
        obs, _ = self.env.reset()
        reward = np.zeros(self.num_envs, np.float32)
        done = np.zeros(self.num_envs, bool)
        first = np.ones(self.num_envs, bool)
        env_steps = 0
        while True:
            actions = ray.get(self.learner.infer.remote(self.actor_id, self.incarnation, obs, reward, done, first))
            if actions is None:
                return env_steps
            obs, reward, done, _ = self.env.step(actions)
            first = done
            env_steps += self.num_envs

    def evaluate(self, split: str) -> list[dict[str, Any]]:
        """Run the learner's evaluation snapshot greedily over every episode of ``split`` exactly once.

        Returns one record per episode, as the environment reported it (id, ``trajectory``, ...).
        """
        import ray

        env = self.problem.make_env(self.config, split, self.num_envs, self.seed, evaluation=True)
        incarnation = new_incarnation()  # each evaluation starts fresh recurrent states on the server

        def act(obs: dict[str, np.ndarray], first: np.ndarray) -> np.ndarray:
            return ray.get(self.learner.infer_eval.remote(self.actor_id, incarnation, obs, first))

        episodes = greedy_episodes(env, act)
        self.learner.retire_actor.remote(self.actor_id)
        return episodes
