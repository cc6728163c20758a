"""V-trace against a direct NumPy implementation of the paper's definition (Espeholt et al. 2018, eq. 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valan.learning.vtrace import vtrace_from_importance_weights


def vtrace_direct(log_rhos, discounts, rewards, values, bootstrap, rho_bar=1.0, c_bar=1.0, pg_rho_bar=1.0):
    """The n-step sum of eq. (1), written out per (s, b) with explicit products; no recursion."""
    T, B = values.shape
    ratios = np.exp(log_rhos)
    rhos, cs = np.minimum(rho_bar, ratios), np.minimum(c_bar, ratios)
    values_ext = np.concatenate([values, bootstrap[None]], axis=0)  # V(x_0) .. V(x_T)
    vs = np.zeros((T, B))
    for b in range(B):
        for s in range(T):
            total = values[s, b]
            for t in range(s, T):
                weight = np.prod(discounts[s:t, b]) * np.prod(cs[s:t, b])
                delta = rhos[t, b] * (rewards[t, b] + discounts[t, b] * values_ext[t + 1, b] - values[t, b])
                total += weight * delta
            vs[s, b] = total
    vs_ext = np.concatenate([vs, bootstrap[None]], axis=0)
    pg = np.minimum(pg_rho_bar, ratios) * (rewards + discounts * vs_ext[1:] - values)
    return vs, pg


def _run(log_rhos, discounts, rewards, values, bootstrap, **clips):
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    out = vtrace_from_importance_weights(t(log_rhos), t(discounts), t(rewards), t(values), t(bootstrap), **clips)
    return out.vs.numpy(), out.pg_advantages.numpy()


@pytest.mark.parametrize("clips", [{}, {"rho_bar": 0.7, "c_bar": 1.3, "pg_rho_bar": 2.0}])
def test_matches_direct_definition_off_policy(clips):
    rng = np.random.default_rng(0)
    T, B = 7, 5
    log_rhos = rng.normal(scale=1.0, size=(T, B))  # ratios above and below the clips
    discounts = 0.9 * (rng.random((T, B)) > 0.2)  # episode boundaries at random places
    rewards, values, bootstrap = rng.normal(size=(T, B)), rng.normal(size=(T, B)), rng.normal(size=B)
    vs, pg = _run(log_rhos, discounts, rewards, values, bootstrap, **clips)
    vs_ref, pg_ref = vtrace_direct(log_rhos, discounts, rewards, values, bootstrap, **clips)
    np.testing.assert_allclose(vs, vs_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pg, pg_ref, rtol=1e-10, atol=1e-10)


def test_on_policy_reduces_to_n_step_returns():
    rng = np.random.default_rng(1)
    T, B, gamma = 6, 3, 0.95
    rewards, values, bootstrap = rng.normal(size=(T, B)), rng.normal(size=(T, B)), rng.normal(size=B)
    vs, pg = _run(np.zeros((T, B)), np.full((T, B), gamma), rewards, values, bootstrap)
    for s in range(T):
        n_step = sum(gamma ** (t - s) * rewards[t] for t in range(s, T)) + gamma ** (T - s) * bootstrap
        np.testing.assert_allclose(vs[s], n_step, rtol=1e-10)
    returns_next = np.concatenate([vs[1:], bootstrap[None]])
    np.testing.assert_allclose(pg, rewards + gamma * returns_next - values, rtol=1e-10)


def test_episode_boundary_cuts_the_return():
    # One env: reward 1 when the episode ends at step 2 (discount 0 there); the next episode's values must not leak.
    rewards = np.array([[0.0], [0.0], [1.0], [0.0]])
    discounts = np.array([[1.0], [1.0], [0.0], [1.0]])
    values = np.array([[0.5], [0.5], [0.5], [9.0]])
    vs, _ = _run(np.zeros((4, 1)), discounts, rewards, values, np.array([100.0]))
    np.testing.assert_allclose(vs[:3, 0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(vs[3, 0], 100.0)


def test_targets_carry_no_gradient():
    values = torch.randn(4, 2, requires_grad=True)
    log_rhos = torch.randn(4, 2, requires_grad=True)
    out = vtrace_from_importance_weights(log_rhos, torch.full((4, 2), 0.9), torch.randn(4, 2), values, torch.randn(2))
    assert not out.vs.requires_grad and not out.pg_advantages.requires_grad


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="bootstrap_value"):
        vtrace_from_importance_weights(*(torch.zeros(3, 2) for _ in range(4)), torch.zeros(3))
