"""Losses: V-trace actor-critic and imitation on SEED-RL unrolls, and binary losses for discriminators.

On an :class:`~valan.learning.unroll.Unroll` (leading dims ``(T + 1, B)``, step 0 overlapping the previous unroll's
last step) the agent runs over all ``T + 1`` steps; steps ``0 .. T - 1`` are learned from (action ``t`` earns
``reward[t + 1]``, its episode ended when ``done[t + 1]``) and step ``T`` only provides the bootstrap value (it is
step 0, and learned from, in the next unroll).

Which steps learn from what (``learning.mode``):

- ``"rl"``: V-trace actor-critic on every step.
- ``"imitation"`` (teacher forcing: the actors execute ``oracle_next_action``) and ``"student_forcing"``
  (the actors sample the policy, except in a ``p_imitation`` share of teacher-forced unrolls; 0 = pure student
  forcing): cross-entropy to ``oracle_next_action`` on every step (``learning.label_smoothing`` moves a share of
  the target onto the allowed actions evenly). With ``rl_cost > 0`` student forcing also
  learns by V-trace, weighted ``rl_cost``, on the unrolls that sampled the policy.
- ``"mixed"``: per unroll, imitation where ``unroll.teacher_forced``, V-trace elsewhere. Teacher-forced unrolls
  are not used for V-trace: their actions are not the behaviour policy's.

Every term is a sum over its steps divided by the number of valid steps in the batch, so in mixed mode each
loss weighs in proportion to its share of the batch. The unroll's optional ``valid`` mask excludes padding steps;
steps whose oracle label is a masked action are excluded from imitation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from valan.agents.base import MASKED_LOGIT
from valan.learning.config import LearningConfig
from valan.learning.unroll import Unroll
from valan.learning.vtrace import vtrace_from_importance_weights


def teacher_forcing_probability(learning: LearningConfig) -> float:
    """Probability that an actor's unroll executes the oracle's actions, for ``learning.mode``."""
    return {"mixed": learning.p_imitation, "imitation": 1.0, "rl": 0.0,
            "student_forcing": learning.p_imitation}[learning.mode]


def action_log_probs(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``log pi(a_t | x_t)`` of ``actions`` ``(T, B)`` under ``logits`` ``(T, B, A)``."""
    return torch.log_softmax(logits, dim=-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def allowed_actions(logits: torch.Tensor) -> torch.Tensor:
    """Bool mask, the shape of ``logits``, of the actions the agent did not mask (``MASKED_LOGIT``)."""
    return logits.detach() > MASKED_LOGIT / 2


def smoothed_cross_entropy(logits: torch.Tensor, cross_entropy: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy ``(T, B)`` to a target with ``1 - smoothing`` on the label (whose cross-entropy is given) and
    ``smoothing`` spread evenly over the actions that ``logits`` ``(T, B, A)`` allow (masked ones get none)."""
    if smoothing == 0:
        return cross_entropy
    allowed = allowed_actions(logits)
    uniform = -(torch.log_softmax(logits, dim=-1) * allowed).sum(-1) / allowed.sum(-1).clamp(min=1)
    return (1 - smoothing) * cross_entropy + smoothing * uniform


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the policy at each step, nats, ``(T, B)`` (masked actions contribute 0)."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def _learning_masks(unroll: Unroll, mode: str, rl_cost: float, shape: torch.Size, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bool ``(T, B)`` masks: valid steps, steps learned by imitation, steps learned by V-trace."""
    valid = (torch.ones(shape, dtype=torch.bool, device=device) if unroll.valid is None
             else unroll.valid[:-1].bool())
    teacher_forced = unroll.teacher_forced.bool().to(device).unsqueeze(0)
    if mode == "imitation" or (mode == "student_forcing" and rl_cost == 0):
        return valid, valid, torch.zeros_like(valid)
    if mode == "student_forcing":
        return valid, valid, valid & ~teacher_forced
    if mode == "rl":
        return valid, torch.zeros_like(valid), valid
    if mode == "mixed":
        return valid, valid & teacher_forced, valid & ~teacher_forced
    raise ValueError(f"unknown learning mode {mode!r}")


def unroll_loss(logits: torch.Tensor, values: torch.Tensor, unroll: Unroll, learning: LearningConfig
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """Scalar loss and float statistics from the agent's ``logits`` ``(T+1, B, A)`` and ``values`` ``(T+1, B)``
    over ``unroll`` (see the module docstring for the convention and the modes)."""
    step_logits, step_values = logits[:-1], values[:-1]
    valid, imitation, rl = _learning_masks(unroll, learning.mode, learning.rl_cost, step_values.shape,
                                           step_values.device)
    num_steps = valid.sum().clamp(min=1).float()
    zero = step_values.sum() * 0.0
    stats: dict[str, float] = {}

    imitation_loss = zero
    labels = unroll.observations["oracle_next_action"][:-1].long()
    label_allowed = allowed_actions(step_logits).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    imitation = imitation & label_allowed
    if imitation.any():
        cross_entropy = -action_log_probs(step_logits, labels)
        imitation_loss = (smoothed_cross_entropy(step_logits, cross_entropy, learning.label_smoothing)
                          * imitation).sum() / num_steps
        with torch.no_grad():
            correct = (step_logits.argmax(-1) == labels) & imitation
            stats["imitation_cross_entropy"] = float(cross_entropy[imitation].mean())
            stats["imitation_accuracy"] = float(correct.sum() / imitation.sum())

    policy_loss = baseline_loss = entropy_term = zero
    step_entropy = entropy(step_logits)
    if rl.any():
        actions = unroll.action[:-1].long()
        target_log_probs = action_log_probs(step_logits, actions)
        behaviour_log_probs = action_log_probs(unroll.behaviour_logits[:-1].float(), actions)
        discounts = learning.gamma * (~unroll.done[1:].bool()).float()
        vtrace = vtrace_from_importance_weights(
            log_rhos=target_log_probs.detach() - behaviour_log_probs, discounts=discounts,
            rewards=unroll.reward[1:].float(), values=step_values.detach(), bootstrap_value=values[-1].detach(),
            rho_bar=learning.rho_bar, c_bar=learning.c_bar, pg_rho_bar=learning.pg_rho_bar)
        policy_loss = -(target_log_probs * vtrace.pg_advantages * rl).sum() / num_steps
        baseline_loss = 0.5 * ((vtrace.vs - step_values).pow(2) * rl).sum() / num_steps
        entropy_term = (step_entropy * rl).sum() / num_steps
        with torch.no_grad():
            rhos = (target_log_probs - behaviour_log_probs).exp()[rl]
            stats["policy_loss"] = float(policy_loss)
            stats["baseline_loss"] = float(baseline_loss)
            stats["mean_rho"] = float(rhos.mean())
            stats["clipped_rho_fraction"] = float((rhos > learning.rho_bar).float().mean())
            stats["mean_value_target"] = float(vtrace.vs[rl].mean())

    rl_weight = learning.rl_cost if learning.mode == "student_forcing" else 1.0
    loss = imitation_loss + rl_weight * (policy_loss + learning.baseline_cost * baseline_loss
                                         - learning.entropy_cost * entropy_term)
    with torch.no_grad():
        stats["loss"] = float(loss)
        stats["entropy"] = float(step_entropy[valid].mean()) if valid.any() else 0.0
        stats["mean_value"] = float(step_values[valid].mean()) if valid.any() else 0.0
        stats["imitation_fraction"] = float(imitation.sum() / num_steps)
    return loss, stats


def progress_loss(progress: torch.Tensor, unroll: Unroll) -> torch.Tensor:
    """Mean squared error of a progress monitor's estimates ``(T+1, B)`` against the observations' ``progress``
    over the unroll's learned steps ``0 .. T - 1`` (valid steps only)."""
    error = (progress[:-1] - unroll.observations["progress"][:-1].to(progress.dtype)).pow(2)
    if unroll.valid is None:
        return error.mean()
    valid = unroll.valid[:-1].to(error.dtype)
    return (error * valid).sum() / valid.sum().clamp(min=1)


def agent_loss(agent: torch.nn.Module, unroll: Unroll, learning: LearningConfig, progress_cost: float = 0.0
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """Run ``agent`` over the ``T + 1`` steps of a tensor ``unroll`` from its ``initial_state``; :func:`unroll_loss`,
    plus ``progress_cost`` times :func:`progress_loss` when the agent has a progress monitor."""
    output, _ = agent(unroll.observations, unroll.initial_state, unroll.first.bool())
    loss, stats = unroll_loss(output.logits, output.values, unroll, learning)
    if output.progress is not None:
        monitor = progress_loss(output.progress, unroll)
        loss = loss + progress_cost * monitor
        stats["progress_loss"] = float(monitor.detach())
    return loss, stats


# ------------------------------------------------------------------------------------------ binary losses


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: float = 1.0,
                 reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy on logits with positives weighted by ``pos_weight``:
    ``-(pos_weight * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x)))``."""
    weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), pos_weight=weight, reduction=reduction)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float = 0.5,
               reduction: str = "mean") -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017): ``-alpha_t * (1 - p_t) ** gamma * log p_t`` with ``p_t`` the
    probability of the true class and ``alpha_t = alpha`` for positives, ``1 - alpha`` for negatives."""
    targets = targets.to(logits.dtype)
    log_p_t = -F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = -alpha_t * (1 - log_p_t.exp()).pow(gamma) * log_p_t
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}")
