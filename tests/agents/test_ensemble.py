"""The ensemble of followers: the mean of its members' log-probabilities, each member with its own state."""

from __future__ import annotations

import numpy as np
import torch

from valan.agents.base import MASKED_LOGIT
from valan.agents.ensemble import Ensemble
from valan.config import apply_overrides
from valan.problems import get_problem, load_train_config


def test_the_ensemble_averages_log_probabilities_and_routes_each_members_state(one_torch_thread):
    problem = get_problem("r2r")
    small = ["agent.hidden_dim=32", "agent.embed_dim=16", "agent.geometry_dim=8", "agent.visual=none"]
    members = []
    for seed, core_layers in ((0, 1), (1, 2)):  # members differ in weights and in the size of their state
        torch.manual_seed(seed)
        config = apply_overrides(load_train_config(), [*small, f"agent.core_layers={core_layers}"])
        members.append(problem.make_agent(config).eval())
    ensemble = Ensemble(members).eval()
    assert len(ensemble.initial_state(3)) == sum(len(m.initial_state(3)) for m in members)

    env = problem.make_env(config, "train", 3, seed=0, evaluation=False)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    steps, first = [], np.ones(3, bool)
    for _ in range(14):  # random walks long enough for some episodes to end and restart (first resets state)
        steps.append((obs, first))
        actions = [rng.choice(np.flatnonzero(v)) for v in obs["candidate_mask"].astype(bool)]
        obs, _, first, _ = env.step(np.array(actions))
    assert any(f.any() for _, f in steps[1:])
    sequence = {k: torch.from_numpy(np.stack([o[k] for o, _ in steps])) for k in steps[0][0]}
    starts = torch.from_numpy(np.stack([f for _, f in steps]))

    with torch.inference_mode():
        alone = [torch.log_softmax(m(sequence, m.initial_state(3), starts)[0].logits, -1) for m in members]
        together = ensemble(sequence, ensemble.initial_state(3), starts)[0].logits
        state, stepwise = ensemble.initial_state(3), []
        for t in range(len(steps)):  # acting one step at a time carries each member's state through the ensemble
            out, state = ensemble({k: v[t:t + 1] for k, v in sequence.items()}, state, starts[t:t + 1])
            stepwise.append(out.logits[0])
    expected = (alone[0] + alone[1]) / 2
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)
    torch.testing.assert_close(together, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(stepwise), expected, atol=1e-5, rtol=1e-5)
    invalid = ~sequence["candidate_mask"].bool()
    assert (together[invalid] <= MASKED_LOGIT / 2).all() and (together[~invalid] > MASKED_LOGIT / 2).all()
