"""Actors: step a problem's batched environment on CPU; the learner's inference server chooses the actions.

An actor holds no model, no weights and no features. Per inference call it sends the observations of its ``K``
env slots, the rewards and ``done`` flags of the previous actions and the ``first`` flags (episode starts),
and steps its environment with the actions it gets back. Each :meth:`~EnvActor.run` call has an *incarnation*
id: when Ray restarts a failed actor, or the learner is replaced after a failure, the new run starts fresh
episodes and the learner drops the old one's unfinished unrolls.

The learner's handle comes with each call, so after a learner failure the driver points the actors at the
learner it restarted: a call whose learner died returns ``None`` ("learner lost") instead of failing.
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
    """One actor process (wrap with ``ray.remote``).

    Training actors call :meth:`run`; evaluation actors call :meth:`evaluate` once per evaluation; both take the
    learner's Ray actor handle.
    """

    def __init__(self, actor_id: int, problem: Problem, config: TrainConfig, num_envs: int):
        import ray

        self.actor_id = actor_id
        self.problem, self.config = problem, config
        self.num_envs = num_envs
        # A restarted actor draws different episodes from its first incarnation.
        with warnings.catch_warnings():  # Ray warns about an internal deprecated call here
            warnings.simplefilter("ignore")
            restarted = ray.get_runtime_context().was_current_actor_reconstructed if ray.is_initialized() else False
        self.seed = int(np.random.SeedSequence([config.run.seed, actor_id, int(restarted)]).generate_state(1)[0])
        self.env = None

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def run(self, learner: Any) -> int | None:
        """Step the environments until the learner says training is over; returns the env steps taken, or
        ``None`` when the learner died (the driver then calls again with the learner it restarted)."""
        import ray

        if self.env is None:
            self.env = self.problem.make_env(self.config, "train", self.num_envs, self.seed, evaluation=False)
        incarnation = new_incarnation()
        obs, _ = self.env.reset()
        reward = np.zeros(self.num_envs, np.float32)
        done = np.zeros(self.num_envs, bool)
        first = np.ones(self.num_envs, bool)
        env_steps = 0
        while True:
            try:
                actions = ray.get(learner.infer.remote(self.actor_id, incarnation, obs, reward, done, first))
            except ray.exceptions.RayActorError:
                return None
            if actions is None:
                return env_steps
            obs, reward, done, _ = self.env.step(actions)
            first = done
            env_steps += self.num_envs

    def evaluate(self, split: str, learner: Any) -> list[dict[str, Any]] | None:
        """Run the learner's evaluation snapshot greedily over every episode of ``split`` exactly once.

        Returns one record per episode, as the environment reported it (id, ``trajectory``, ...), or ``None``
        when the learner died (its snapshot with it).
        """
        import ray

        env = self.problem.make_env(self.config, split, self.num_envs, self.seed, evaluation=True)
        incarnation = new_incarnation()  # each evaluation starts fresh recurrent states on the server

        def act(obs: dict[str, np.ndarray], first: np.ndarray) -> np.ndarray:
            return ray.get(learner.infer_eval.remote(self.actor_id, incarnation, obs, first))

        try:
            episodes = greedy_episodes(env, act)
        except ray.exceptions.RayActorError:
            return None
        learner.retire_actor.remote(self.actor_id)
        return episodes
