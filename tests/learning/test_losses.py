"""Losses on hand-computed unrolls: imitation cross-entropy, V-trace actor-critic, mixing, masking; binary losses."""

from __future__ import annotations

import math

import pytest
import torch

from valan.agents.base import MASKED_LOGIT
from valan.learning.config import LearningConfig
from valan.learning.losses import focal_loss, teacher_forcing_probability, unroll_loss, weighted_bce
from valan.learning.unroll import Unroll

M = MASKED_LOGIT


def _unroll(T1: int, B: int, oracle_next_action: torch.Tensor | None = None, **fields) -> Unroll:
    """A tensor unroll of T1 steps and B slots: all zeros (no episode ends, on-policy) except ``fields``."""
    defaults = dict(
        observations={"oracle_next_action": torch.zeros(T1, B, dtype=torch.long) if oracle_next_action is None
                      else oracle_next_action},
        reward=torch.zeros(T1, B), done=torch.zeros(T1, B, dtype=torch.bool), first=torch.zeros(T1, B, dtype=torch.bool),
        action=torch.zeros(T1, B, dtype=torch.long), behaviour_logits=torch.zeros(T1, B, 2),
        policy_version=torch.zeros(T1, B, dtype=torch.long), teacher_forced=torch.zeros(B, dtype=torch.bool),
        initial_state=())
    return Unroll(**{**defaults, **fields})


def test_imitation_cross_entropy_and_accuracy_by_hand():
    # T = 2 learned steps, B = 1; the third step is only the bootstrap and must not count.
    logits = torch.tensor([[[0.0, 0.0, M]], [[math.log(3.0), 0.0, 0.0]], [[0.0, 99.0, 0.0]]])
    unroll = _unroll(3, 1, oracle_next_action=torch.tensor([[1], [0], [2]]))
    loss, stats = unroll_loss(logits, torch.zeros(3, 1), unroll, LearningConfig(mode="imitation"))
    expected = (math.log(2.0) + math.log(5.0 / 3.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["imitation_accuracy"] == pytest.approx(0.5)  # step 0 ties -> argmax 0, wrong; step 1 right
    assert stats["imitation_fraction"] == 1.0


def test_label_smoothing_spreads_its_share_over_the_allowed_actions_by_hand():
    # one learned step with actions 0 and 1 allowed (2 masked); p = (3/4, 1/4), label 0
    logits = torch.tensor([[[math.log(3.0), 0.0, M]], [[0.0, 0.0, 0.0]]])
    unroll = _unroll(2, 1, oracle_next_action=torch.tensor([[0], [0]]))
    loss, stats = unroll_loss(logits, torch.zeros(2, 1), unroll, LearningConfig(mode="imitation", label_smoothing=0.2))
    expected = 0.8 * -math.log(0.75) + 0.2 * (-math.log(0.75) - math.log(0.25)) / 2  # the masked action gets none
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["imitation_cross_entropy"] == pytest.approx(-math.log(0.75), rel=1e-6)  # reported unsmoothed
    with pytest.raises(ValueError, match="label_smoothing"):
        LearningConfig(label_smoothing=1.0)


def test_imitation_skips_padding_and_masked_labels():
    logits = torch.tensor([[[0.0, 0.0, M]], [[0.0, 0.0, M]], [[0.0, 0.0, M]], [[0.0, 0.0, 0.0]]])
    unroll = _unroll(4, 1, oracle_next_action=torch.tensor([[0], [2], [1], [0]]),
                     valid=torch.tensor([[True], [True], [False], [True]]))
    loss, stats = unroll_loss(logits, torch.zeros(4, 1), unroll, LearningConfig(mode="student_forcing"))
    # step 1's label is a masked action (excluded), step 2 is padding (excluded, not counted): log 2 over 2 steps.
    assert loss.item() == pytest.approx(math.log(2.0) / 2, rel=1e-6)
    assert stats["imitation_fraction"] == pytest.approx(0.5)


def test_mixed_unrolls_split_between_imitation_and_vtrace_by_hand():
    # Column 0 teacher-forced, column 1 sampled on-policy. T = 1.
    logits = torch.zeros(2, 2, 2, requires_grad=True)
    values = torch.tensor([[0.0, 0.5], [0.0, 7.0]], requires_grad=True)
    unroll = _unroll(2, 2, oracle_next_action=torch.tensor([[1, 0], [0, 0]]), action=torch.tensor([[1, 1], [0, 0]]),
                     reward=torch.tensor([[0.0, 0.0], [0.0, 1.0]]), done=torch.tensor([[False, False], [True, True]]),
                     behaviour_logits=torch.zeros(2, 2, 2), teacher_forced=torch.tensor([True, False]))
    learning = LearningConfig(mode="mixed", baseline_cost=0.5, entropy_cost=0.01, gamma=0.9)
    loss, stats = unroll_loss(logits, values, unroll, learning)
    # Imitation column: CE = log 2. RL column: episode ends -> v_0 = r = 1, advantage = 1 - 0.5 = 0.5.
    imitation = math.log(2.0) / 2
    policy = -(math.log(0.5) * 0.5) / 2
    baseline = 0.5 * (1.0 - 0.5) ** 2 / 2
    entropy = math.log(2.0) / 2
    assert loss.item() == pytest.approx(imitation + policy + 0.5 * baseline - 0.01 * entropy, rel=1e-6)
    assert stats["imitation_fraction"] == pytest.approx(0.5) and stats["mean_rho"] == pytest.approx(1.0)
    assert stats["mean_value_target"] == pytest.approx(1.0)
    loss.backward()
    # Positive advantage pushes the taken action's logit up (negative gradient), the value toward its target;
    # the bootstrap value (7.0, cut by the episode end) gets no gradient.
    assert logits.grad[0, 1, 1] < 0 < logits.grad[0, 1, 0]
    assert values.grad[0, 1] < 0 and values.grad[1].abs().sum() == 0 and values.grad[0, 0] == 0


def test_student_forcing_with_rl_cost_adds_weighted_vtrace_on_sampled_unrolls_by_hand():
    # The mixed test's unroll: column 0 teacher-forced, column 1 sampled. Imitation now on both columns (the
    # sampled column's label is action 0: CE log 2 as well); V-trace on column 1 only, weighted 0.25.
    logits = torch.zeros(2, 2, 2)
    values = torch.tensor([[0.0, 0.5], [0.0, 7.0]])
    unroll = _unroll(2, 2, oracle_next_action=torch.tensor([[1, 0], [0, 0]]), action=torch.tensor([[1, 1], [0, 0]]),
                     reward=torch.tensor([[0.0, 0.0], [0.0, 1.0]]), done=torch.tensor([[False, False], [True, True]]),
                     behaviour_logits=torch.zeros(2, 2, 2), teacher_forced=torch.tensor([True, False]))
    learning = LearningConfig(mode="student_forcing", rl_cost=0.25, baseline_cost=0.5, entropy_cost=0.01, gamma=0.9)
    loss, stats = unroll_loss(logits, values, unroll, learning)
    imitation = 2 * math.log(2.0) / 2
    rl = -(math.log(0.5) * 0.5) / 2 + 0.5 * (0.5 * (1.0 - 0.5) ** 2 / 2) - 0.01 * math.log(2.0) / 2
    assert loss.item() == pytest.approx(imitation + 0.25 * rl, rel=1e-6)
    assert stats["imitation_fraction"] == pytest.approx(1.0) and stats["mean_value_target"] == pytest.approx(1.0)
    without, _ = unroll_loss(logits, values, unroll, LearningConfig(mode="student_forcing"))
    assert without.item() == pytest.approx(imitation, rel=1e-6)


def test_vtrace_clips_off_policy_importance_weights():
    # The behaviour policy took action 1 with probability 0.1; the target gives it 0.5 -> ratio 5, clipped to 1.
    behaviour = torch.tensor([[[math.log(9.0), 0.0]], [[0.0, 0.0]]])
    unroll = _unroll(2, 1, action=torch.tensor([[1], [0]]), reward=torch.tensor([[0.0], [1.0]]),
                     done=torch.tensor([[False], [True]]), behaviour_logits=behaviour)
    loss, stats = unroll_loss(torch.zeros(2, 1, 2), torch.zeros(2, 1), unroll, LearningConfig(mode="rl", entropy_cost=0.0))
    assert stats["mean_rho"] == pytest.approx(5.0, rel=1e-5) and stats["clipped_rho_fraction"] == 1.0
    # Clipped rho = 1: v = 1, advantage = 1 -> policy loss -log 0.5; baseline 0.5 * 1.
    assert loss.item() == pytest.approx(-math.log(0.5) + 0.5 * 0.5, rel=1e-5)


def test_teacher_forcing_probability_per_mode():
    assert teacher_forcing_probability(LearningConfig(mode="mixed", p_imitation=0.3)) == 0.3
    assert teacher_forcing_probability(LearningConfig(mode="imitation")) == 1.0
    assert teacher_forcing_probability(LearningConfig(mode="student_forcing", p_imitation=0.0)) == 0.0
    assert teacher_forcing_probability(LearningConfig(mode="student_forcing", p_imitation=0.5)) == 0.5
    assert teacher_forcing_probability(LearningConfig(mode="rl")) == 0.0


def test_focal_and_weighted_bce_by_hand():
    logits, targets = torch.tensor([0.0, 0.0, math.log(3.0)]), torch.tensor([1.0, 0.0, 1.0])
    log2 = math.log(2.0)
    # p_t = 0.5, 0.5, 0.75; alpha_t = 0.5 everywhere.
    expected = [0.5 * 0.25 * log2, 0.5 * 0.25 * log2, 0.5 * 0.25 ** 2 * math.log(4 / 3)]
    assert focal_loss(logits, targets, reduction="none").tolist() == pytest.approx(expected, rel=1e-6)
    assert focal_loss(logits, targets).item() == pytest.approx(sum(expected) / 3, rel=1e-6)
    assert focal_loss(logits, targets, gamma=0.0, alpha=0.25, reduction="none").tolist() == pytest.approx(
        [0.25 * log2, 0.75 * log2, 0.25 * math.log(4 / 3)], rel=1e-6)
    assert weighted_bce(logits, targets, pos_weight=3.0, reduction="none").tolist() == pytest.approx(
        [3 * log2, log2, 3 * math.log(4 / 3)], rel=1e-6)
