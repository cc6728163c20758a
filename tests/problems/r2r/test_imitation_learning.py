"""The agent and the losses learn: teacher-forced imitation on the bundled R2R sample, in process, no Ray.

The features are synthetic (no visual information), so what is learned comes from the instructions and the
candidates' geometry (relative heading, elevation, distance).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valan.config import apply_overrides
from valan.problems import load_train_config
from valan.problems import get_problem
from valan.learning.step import learning_rate, make_optimizer, train_step
from valan.learning.unroll import Step, Unroll


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Rollout:
    """Steps a batched env with the agent and cuts SEED-convention unrolls (T + 1 steps, step 0 overlapping)."""

    def __init__(self, env, agent, unroll_length: int):
        self.env, self.agent, self.T = env, agent, unroll_length
        self.obs, _ = env.reset()
        n = env.num_envs
        self.first, self.reward, self.done = np.ones(n, bool), np.zeros(n, np.float32), np.zeros(n, bool)
        self.state = agent.initial_state(n)
        self.last_step, self.last_state = None, None

    def unroll(self, teacher_forced: bool) -> Unroll:
        steps = [self.last_step] if self.last_step is not None else []
        initial_state = self.last_state if self.last_step is not None else self.state
        while len(steps) < self.T + 1:
            with torch.inference_mode():
                out, new_state = self.agent({k: torch.from_numpy(v)[None] for k, v in self.obs.items()}, self.state,
                                            torch.from_numpy(self.first)[None])
            logits = out.logits[0]
            action = (self.obs["oracle_next_action"] if teacher_forced
                      else torch.distributions.Categorical(logits=logits).sample().numpy())
            steps.append(Step(self.obs, self.reward, self.done, self.first, action, logits.numpy(),
                              policy_version=np.zeros(len(action), np.int64)))
            self.last_state, self.state = self.state, new_state
            self.obs, self.reward, self.done, _ = self.env.step(action)
            self.first = self.done
        self.last_step = steps[-1]
        teacher = np.full(self.env.num_envs, teacher_forced)
        return Unroll.from_steps(steps, teacher, tuple(s.numpy() for s in initial_state)).to_tensors()


def oracle_action_accuracy(problem, config, agent, split: str) -> tuple[float, float]:
    """Greedy accuracy on the oracle's actions along the oracle path over every episode of ``split``, and the
    accuracy of a uniformly random choice among the valid actions."""
    env = problem.make_env(config, split, 32, seed=0, evaluation=True)
    obs, _ = env.reset()
    state, first = agent.initial_state(32), np.ones(32, bool)
    hits = chance = steps = 0.0
    while not env.finished:
        with torch.inference_mode():
            out, state = agent({k: torch.from_numpy(v)[None] for k, v in obs.items()}, state,
                               torch.from_numpy(first)[None])
        active = env.active
        hits += ((out.logits[0].argmax(-1).numpy() == obs["oracle_next_action"]) & active).sum()
        chance += (1.0 / obs["candidate_mask"].sum(1))[active].sum()
        steps += active.sum()
        obs, _, first, _ = env.step(obs["oracle_next_action"])
    return hits / steps, chance / steps


@pytest.mark.slow
def test_teacher_forced_imitation_learns_to_follow_sample_instructions():
    torch.manual_seed(0)
    config = apply_overrides(load_train_config(), [
        "agent.hidden_dim=64", "agent.embed_dim=32", "agent.geometry_dim=16", "learning.mode=imitation",
        "learning.lr=3e-3", "learning.batch_size=16", "learning.unroll_length=12",
        "agent.visual=features"])  # the sample's val_seen shares its scans with training: memorising them pays
    problem = get_problem("r2r")
    agent = problem.make_agent(config, problem.feature_table(config))
    optimizer = make_optimizer(agent, config.learning)
    before, chance = oracle_action_accuracy(problem, config, agent, "val_seen")

    rollout = Rollout(problem.make_env(config, "train", 16, seed=0, evaluation=False), agent, 12)
    losses = [train_step(agent, optimizer, rollout.unroll(teacher_forced=True), config, step, problem.loss)["loss"]
              for step in range(60)]
    after, _ = oracle_action_accuracy(problem, config, agent, "val_seen")

    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    assert after > chance + 0.25 and after > before + 0.25, (before, after, chance)


def test_exponential_learning_rate_decay():
    learning = apply_overrides(load_train_config(), ["learning.lr_decay=exponential", "learning.lr_decay_rate=0.5",
                                               "learning.lr_decay_steps=100", "learning.lr=1e-3"]).learning
    assert [learning_rate(learning, s) for s in (0, 100, 250)] == pytest.approx([1e-3, 5e-4, 1e-3 * 0.5 ** 2.5])
    assert learning_rate(load_train_config().learning, 10**6) == pytest.approx(1e-3)


def test_train_step_clips_the_gradient_norm():
    torch.manual_seed(0)
    config = apply_overrides(load_train_config(), ["agent.hidden_dim=16", "agent.embed_dim=8", "agent.geometry_dim=4",
                                             "learning.grad_clip=1e-3", "learning.lr=1.0"])
    problem = get_problem("r2r")
    agent = problem.make_agent(config, problem.feature_table(config))
    optimizer = torch.optim.SGD(agent.parameters(), lr=1.0)
    unroll = Rollout(problem.make_env(config, "train", 4, seed=0, evaluation=False), agent, 4).unroll(True)
    before = torch.cat([p.detach().flatten().clone() for p in agent.parameters()])
    stats = train_step(agent, optimizer, unroll, config, step=0, loss_fn=problem.loss)
    after = torch.cat([p.detach().flatten() for p in agent.parameters()])
    assert stats["grad_norm"] > 1e-3  # unclipped norm is reported
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-3)  # SGD step of lr * clipped gradient


@pytest.mark.parametrize("saved_as_adam", [False, True])
def test_weight_decay_shrinks_parameters_decoupled_from_the_gradient(saved_as_adam):
    """learning.weight_decay is AdamW's: with zero gradients one step scales every parameter by 1 - lr * decay (an
    L2 term in Adam's gradient would move each by about lr instead), also for an optimizer state saved without
    decay (a resumed run, or a checkpoint from before the option)."""
    config = apply_overrides(load_train_config(), ["agent.hidden_dim=16", "agent.embed_dim=8", "agent.geometry_dim=4",
                                                   "learning.lr=0.01", "learning.weight_decay=0.5"])
    agent = get_problem("r2r").make_agent(config)
    plain = apply_overrides(config, ["learning.weight_decay=0"]).learning
    optimizer = make_optimizer(agent, plain if saved_as_adam else config.learning)
    if saved_as_adam:  # the state an Adam without decay saved
        optimizer.load_state_dict({**optimizer.state_dict(), "param_groups": [
            {**g, "decoupled_weight_decay": False} for g in optimizer.state_dict()["param_groups"]]})
    before = [p.detach().clone() for p in agent.parameters()]
    no_gradient = lambda agent, unroll, config: (sum(p.sum() for p in agent.parameters()) * 0.0, {})  # noqa: E731
    train_step(agent, optimizer, None, config, step=0, loss_fn=no_gradient)
    for old, new in zip(before, agent.parameters()):
        torch.testing.assert_close(new.detach(), old * (1 - 0.01 * 0.5))
    train_step(agent, optimizer, None, apply_overrides(config, ["learning.weight_decay=0"]), step=1,
               loss_fn=no_gradient)
    for old, new in zip(before, agent.parameters()):  # decay 0: plain Adam, and zero gradients leave them be
        torch.testing.assert_close(new.detach(), old * (1 - 0.01 * 0.5))
