"""Actors: step a problem's batched environment on CPU; the learner's inference server chooses the actions.

An actor holds no model, no weights and no features. Per inference call it sends the observations of its ``K``
env slots, the rewards and ``done`` flags of the previous actions and the ``first`` flags (episode starts),
and steps its environment with the actions it gets back. Each :meth:`~EnvActor.run` call has an *incarnation*
id: when Ray restarts a failed actor, or the learner is replaced after a failure, the new run starts fresh
episodes and the learner drops the old one's unfinished unrolls.

The learner's handle comes with each call, so after a learner failure the driver points the actors at the
learner it restarted: a call whose learner died returns ``None`` ("learner lost") instead of failing. An actor on
the learner's node sends its requests over the learner's Unix socket rather than as Ray calls
(:mod:`valan.distributed.transport`; ``distributed.transport: ray`` turns that off).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from valan.problems.config import TrainConfig
from valan.distributed.evaluation import greedy_episodes
from valan.distributed.inference import new_incarnation
from valan.distributed.transport import LearnerLost, connect
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

    def _connect(self, learner: Any, incarnation: str, evaluation: bool) -> tuple[Callable[..., Any], Callable[[], None]]:
        """``(infer, close)``: ``infer(obs, reward, done, first)`` asks the learner for actions, over its socket
        when this actor runs on the learner's node (:mod:`valan.distributed.transport`), else through Ray; both
        raise :class:`LearnerLost` when the learner died."""
        import ray

        try:
            client = connect(ray.get(learner.inference_address.remote()), self.node_id(), self.actor_id, incarnation,
                             evaluation)
        except ray.exceptions.RayActorError as e:
            raise LearnerLost(str(e)) from e
        if client is not None:
            return client.infer, client.close

        def infer(obs, reward, done, first):
            try:
                if evaluation:
                    return ray.get(learner.infer_eval.remote(self.actor_id, incarnation, obs, first))
                return ray.get(learner.infer.remote(self.actor_id, incarnation, obs, reward, done, first))
            except ray.exceptions.RayActorError as e:
                raise LearnerLost(str(e)) from e

        return infer, lambda: None

    def run(self, learner: Any) -> int | None:
        """Step the environments until the learner says training is over; returns the env steps taken, or
        ``None`` when the learner died (the driver then calls again with the learner it restarted)."""
        if self.env is None:
            self.env = self.problem.make_env(self.config, "train", self.num_envs, self.seed, evaluation=False)
        incarnation = new_incarnation()
        obs, _ = self.env.reset()
        reward = np.zeros(self.num_envs, np.float32)
        done = np.zeros(self.num_envs, bool)
        first = np.ones(self.num_envs, bool)
        env_steps = 0
        try:
            infer, close = self._connect(learner, incarnation, evaluation=False)
        except LearnerLost:
            return None
        try:
            while True:
                actions = infer(obs, reward, done, first)
                if actions is None:
                    return env_steps
                obs, reward, done, _ = self.env.step(actions)
                first = done
                env_steps += self.num_envs
        except LearnerLost:
            return None
        finally:
            close()

    def evaluate(self, split: str, learner: Any) -> list[dict[str, Any]] | None:
        """Run the learner's evaluation snapshot greedily over every episode of ``split`` exactly once.

        Returns one record per episode, as the environment reported it (id, ``trajectory``, ...), or ``None``
        when the learner died (its snapshot with it).
        """
        env = self.problem.make_env(self.config, split, self.num_envs, self.seed, evaluation=True)
        incarnation = new_incarnation()  # each evaluation starts fresh recurrent states on the server
        try:
            infer, close = self._connect(learner, incarnation, evaluation=True)
        except LearnerLost:
            return None
        try:
            episodes = greedy_episodes(env, lambda obs, first: infer(obs, None, None, first))
        except LearnerLost:
            return None
        finally:
            close()
        learner.retire_actor.remote(self.actor_id)
        return episodes
