"""Teacher-forced unrolls collected without an inference server, for in-process learning tests."""

from __future__ import annotations

import numpy as np

from valan.learning.unroll import Step, Unroll


def teacher_forced_unroll(env, agent, length: int, seed: int) -> Unroll:
    """``length + 1`` teacher-forced steps from fresh episodes (every slot starts at step 0, so the initial state
    is the agent's zero state)."""
    obs, _ = env.reset(seed=seed)
    n = env.num_envs
    reward, done, first = np.zeros(n, np.float32), np.zeros(n, bool), np.ones(n, bool)
    steps = []
    for _ in range(length + 1):
        action = obs["oracle_next_action"].copy()
        steps.append(Step(obs, reward, done, first, action, np.zeros((n, env.single_action_space.n), np.float32),
                          np.zeros(n, np.int64)))
        obs, reward, done, _ = env.step(action)
        first = done
    state = tuple(s.numpy() for s in agent.initial_state(n))
    return Unroll.from_steps(steps, np.ones(n, bool), state).to_tensors()
