"""The R2R follower: acting step by step equals learning over the sequence, resets, masking, warm-start names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valan.agents.base import MASKED_LOGIT
from valan.config import apply_overrides
from valan.errors import InputError
from valan.problems import load_train_config
from valan.problems import get_problem

SMALL = ["agent.hidden_dim=32", "agent.embed_dim=16", "agent.geometry_dim=8"]


@pytest.fixture(scope="module", params=["features", "none", "none+visited+odometry+monitor"])
def setup(request):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small model on a shared 2-core machine: intra-op threads only add contention
    torch.manual_seed(0)
    visual, *options = request.param.split("+")
    extra = {"visited": ["agent.visited=true"], "odometry": ["agent.odometry=true"],
             "monitor": ["agent.progress_monitor=0.5"]}
    config = apply_overrides(load_train_config(), [*SMALL, f"agent.visual={visual}",
                                                    *(o for name in options for o in extra[name])])
    problem = get_problem("r2r")
    table = problem.feature_table(config)
    yield config, problem, table, problem.make_agent(config, table)
    torch.set_num_threads(threads)


def _act(agent, env, steps: int, rng: np.random.Generator):
    """Run the agent one step at a time (T = 1, inference mode) with random actions; record everything."""
    obs, _ = env.reset()
    state, first = agent.initial_state(env.num_envs), np.ones(env.num_envs, bool)
    record = []
    for _ in range(steps):
        with torch.inference_mode():
            out, state = agent({k: torch.from_numpy(v)[None] for k, v in obs.items()}, state,
                               torch.from_numpy(first)[None])
        record.append((obs, first, out.logits[0].clone(), out.values[0].clone()))
        valid = obs["candidate_mask"].astype(bool)
        actions = np.array([rng.choice(np.flatnonzero(v)) for v in valid])
        obs, _, done, _ = env.step(actions)
        first = done
    return record


def _stack(record):
    obs = {k: torch.from_numpy(np.stack([r[0][k] for r in record])) for k in record[0][0]}
    return obs, torch.from_numpy(np.stack([r[1] for r in record]))


def _walk(setup, num_envs: int, steps: int, seed: int):
    """Observations and episode starts ``(steps, num_envs)`` of random walks on training episodes."""
    config, problem, _, agent = setup
    env = problem.make_env(config, "train", num_envs, seed=seed, evaluation=False)
    return _stack(_act(agent, env, steps, np.random.default_rng(seed)))


def test_acting_one_step_at_a_time_equals_learning_over_the_sequence(setup):
    config, problem, _, agent = setup
    env = problem.make_env(config, "train", 6, seed=1, evaluation=False)
    record = _act(agent, env, 14, np.random.default_rng(0))
    obs, first = _stack(record)
    assert first[1:].any()  # episodes end and restart inside the sequence
    out, _ = agent(obs, agent.initial_state(6), first)  # gradients on: instructions re-encoded at step 0
    torch.testing.assert_close(out.logits, torch.stack([r[2] for r in record]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.values, torch.stack([r[3] for r in record]), atol=1e-5, rtol=1e-5)
    assert (out.progress is None) == (config.agent.progress_monitor == 0)
    # Learning from a mid-sequence state (the unroll's initial_state) gives the same outputs too.
    with torch.no_grad():
        _, state = agent({k: v[:5] for k, v in obs.items()}, agent.initial_state(6), first[:5])
    out_tail, _ = agent({k: v[5:] for k, v in obs.items()}, state, first[5:])
    torch.testing.assert_close(out_tail.logits, out.logits[5:], atol=1e-5, rtol=1e-5)


def test_first_resets_the_state(setup):
    config, problem, _, agent = setup
    env = problem.make_env(config, "train", 4, seed=2, evaluation=False)
    obs, first = _stack(_act(agent, env, 8, np.random.default_rng(1)))
    restart = first.clone()
    restart[4] = True  # pretend every episode starts afresh at step 4
    with torch.no_grad():
        out, _ = agent(obs, agent.initial_state(4), restart)
        fresh, _ = agent({k: v[4:] for k, v in obs.items()}, agent.initial_state(4), restart[4:])
        carried, _ = agent(obs, agent.initial_state(4), first)
    torch.testing.assert_close(out.logits[4:], fresh.logits, atol=1e-5, rtol=1e-5)
    continuing = ~first[4]
    assert continuing.any()
    # Without the reset the continuing episodes' outputs differ: the state matters.
    assert not torch.allclose(carried.values[4, continuing], fresh.values[0, continuing], atol=1e-6)


def test_invalid_candidates_are_masked_and_shapes_follow_the_contract(setup):
    config, problem, table, agent = setup
    env = problem.make_env(config, "train", 5, seed=3, evaluation=False)
    obs, first = _stack(_act(agent, env, 3, np.random.default_rng(2)))
    out, state = agent(obs, agent.initial_state(5), first)
    assert out.logits.shape == (3, 5, 1 + config.env.max_candidates) and out.values.shape == (3, 5)
    invalid = obs["candidate_mask"] == 0
    assert invalid.any() and torch.all(out.logits[invalid] == MASKED_LOGIT)
    assert torch.all(out.logits[~invalid] > MASKED_LOGIT / 2)
    assert [s.shape[0] for s in state] == [5] * 5  # batch-first state
    out.logits[~invalid].sum().backward()
    assert agent.instruction_encoder.backward_lstm.weight_ih_l0.grad.abs().sum() > 0  # the encoder learns
    if agent.visual_mode == "features":
        assert agent.visual_encoder.projection.weight.grad.abs().sum() > 0


def test_checkpoints_hold_weights_not_the_feature_table(setup):
    config, problem, table, agent = setup
    if agent.visual_mode == "none":
        pytest.skip("no visual pathway: see test_without_the_visual_pathway_features_do_not_matter")
    state_dict = agent.state_dict()
    assert "feature_table" not in state_dict
    assert any(k.startswith("instruction_encoder.") for k in state_dict)
    assert any(k.startswith("visual_encoder.") for k in state_dict)
    clone = problem.make_agent(config, table)
    clone.load_state_dict(state_dict)
    assert torch.equal(clone.feature_table, agent.feature_table)
    with pytest.raises(ValueError, match="feature table"):
        clone.set_feature_table(np.zeros((3, 36, 5), np.float32))


def test_without_the_visual_pathway_features_do_not_matter(setup):
    config, problem, table, agent = setup
    if agent.visual_mode == "features":
        pytest.skip("the visual pathway reads features")
    assert not any(k.startswith("visual_encoder.") for k in agent.state_dict())
    env = problem.make_env(config, "train", 4, seed=4, evaluation=False)
    obs, first = _stack(_act(agent, env, 4, np.random.default_rng(3)))
    with torch.no_grad():
        plain, _ = agent(obs, agent.initial_state(4), first)
        noisy, _ = agent({**obs, "features": torch.randn(*first.shape, 36, table.shape[-1])}, agent.initial_state(4),
                         first)
        moved, _ = agent({**obs, "viewpoint": torch.zeros_like(obs["viewpoint"])}, agent.initial_state(4), first)
    torch.testing.assert_close(noisy.logits, plain.logits)  # other features, other viewpoint ids: same policy
    torch.testing.assert_close(moved.logits, plain.logits)


def test_loading_weights_of_the_other_visual_choice_is_a_one_line_error(setup):
    config, problem, table, agent = setup
    other = "none" if agent.visual_mode == "features" else "features"
    clone = problem.make_agent(apply_overrides(config, [f"agent.visual={other}"]), table)
    with pytest.raises(InputError, match=f"trained with agent.visual={agent.visual_mode} but this agent is built "
                                         f"with agent.visual={other}") as error:
        clone.load_state_dict(agent.state_dict())
    assert "\n" not in str(error.value)


def test_auto_resolves_against_the_features_and_is_recorded(setup):
    config, problem, table, _ = setup
    auto = apply_overrides(config, ["agent.visual=auto"])
    agent = problem.make_agent(auto, table)
    assert agent.visual_mode == auto.agent.visual == "none"  # synthetic features carry no visual information
    real = apply_overrides(config, ["agent.visual=auto", "data.features=/some/store"])
    assert real.resolve_visual() == "features" and real.agent.visual == "features"


def test_a_follower_without_vision_warm_starts_its_instruction_encoder_only(setup, capsys):
    from valan.agents.alignment import AlignmentModel, load_alignment_into
    from valan.agents.r2r_follower import R2RFollower

    config, problem, table, agent = setup
    if agent.visual_mode == "features":
        pytest.skip("covered by tests/problems/alignment")
    torch.manual_seed(0)
    source = AlignmentModel(100, 64, embed_dim=16, hidden_dim=32)
    blind = R2RFollower(100, None, embed_dim=16, hidden_dim=32, visual="none")
    report = load_alignment_into(blind, {"model": source.state_dict(), "problem": "alignment"}, verbose=False)
    assert report.loaded and all(name.startswith("instruction_encoder.") for name in report.loaded)
    assert torch.equal(blind.instruction_encoder.embedding.weight, source.instruction_encoder.embedding.weight)


def test_checkpoints_saved_before_agent_visual_load_with_their_visual_pathway(setup):
    from valan.config import to_dict
    from valan.problems import config_from_dict

    config, problem, table, agent = setup
    saved = to_dict(config)
    assert config_from_dict(saved).agent.visual == agent.visual_mode  # the resolved value is what was saved
    del saved["agent"]["visual"]  # what valan wrote before agent.visual existed
    old = config_from_dict(saved)
    assert old.agent.visual == "features" and old.resolve_visual() == "features"


def test_the_been_there_vector_moves_only_visited_candidates(setup):
    config, problem, table, agent = setup
    if agent.visited_embedding is None:
        pytest.skip("agent.visited is off in this configuration")
    obs, first = _walk(setup, 6, 10, seed=2)
    visited = obs["candidate_visited"].bool() & obs["candidate_mask"].bool()
    assert visited.any() and not visited[..., 0].any()
    before, _ = agent(obs, agent.initial_state(6), first)
    state = {k: v.clone() for k, v in agent.state_dict().items()}
    try:
        with torch.no_grad():
            agent.visited_embedding.normal_()
        after, _ = agent(obs, agent.initial_state(6), first)
        moved = ~torch.isclose(after.logits, before.logits)
        assert moved[visited].all() and not moved[~visited].any()
    finally:
        agent.load_state_dict(state)


def test_the_progress_monitor_learns_from_the_observations_progress(setup):
    from valan.learning.unroll import Unroll

    config, problem, table, agent = setup
    if agent.progress_head is None:
        pytest.skip("no progress monitor in this configuration")
    obs, first = _walk(setup, 6, 13, seed=3)
    T1, B = first.shape
    unroll = Unroll(obs, reward=torch.zeros(T1, B), done=first, first=first, action=obs["oracle_next_action"],
                    behaviour_logits=torch.zeros(T1, B, 17), policy_version=torch.zeros(T1, B, dtype=torch.long),
                    teacher_forced=torch.zeros(B, dtype=torch.bool), initial_state=agent.initial_state(B))
    agent.zero_grad()
    loss, stats = problem.loss(agent, unroll, config)
    loss.backward()
    with torch.no_grad():
        out, _ = agent(obs, agent.initial_state(6), first)
    expected = (out.progress[:-1] - obs["progress"][:-1]).pow(2).mean()
    assert stats["progress_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert agent.progress_head.weight.grad.abs().sum() > 0
