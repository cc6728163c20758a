"""The unroll: what ``B`` env slots did over ``T + 1`` consecutive steps, the unit the learner trains on (SEED RL).

Convention: per-step fields have leading dims ``(T + 1, B)``; step 0 overlaps the previous unroll's last step.
``action[t]`` and ``behaviour_logits[t]`` come from ``observations[...][t]``; ``reward[t]`` and ``done[t]`` are the
results of the action at ``t - 1`` (zero and False at an actor's very first step); ``first[t]`` marks an episode
start at step ``t``. Per-slot fields have the batch axis first: ``teacher_forced`` ``(B,)`` and the parts of
``initial_state`` ``(B, ...)``. How the losses read the steps: :mod:`valan.learning.losses`.

The arrays are numpy arrays as the inference server assembles them (:meth:`Unroll.from_steps`) and as they travel
through the learner's queue, and torch tensors after :meth:`Unroll.to_tensors`. Batching cuts and joins unrolls
along the batch axis (:meth:`Unroll.concatenate`, :meth:`Unroll.split`), whichever axis that is for a field.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch

Array = Any  # a numpy array or a torch tensor

# Fields whose batch axis is 0 (one value per env slot); every other array field has it at 1, after time.
_PER_SLOT = frozenset({"teacher_forced", "initial_state"})


class Step(NamedTuple):
    """One step of ``K`` env slots: the observations the action was chosen from and what came with them, ``(K, ...)``."""

    observations: dict[str, np.ndarray]
    reward: np.ndarray  # float32: reward of the previous action
    done: np.ndarray  # bool: the previous action ended the episode
    first: np.ndarray  # bool: these observations start an episode
    action: np.ndarray  # int64: the executed action
    behaviour_logits: np.ndarray  # (K, A) float32: the acting policy's logits (before teacher forcing)
    policy_version: np.ndarray  # int64: learner steps of the acting weights


class Unroll(NamedTuple):
    """``T + 1`` steps of ``B`` env slots (see the module docstring for the convention)."""

    observations: dict[str, Array]  # (T + 1, B, ...) per key, as the environment reports them (oracle_next_action...)
    reward: Array  # (T + 1, B) float32
    done: Array  # (T + 1, B) bool
    first: Array  # (T + 1, B) bool
    action: Array  # (T + 1, B) int64, executed
    behaviour_logits: Array  # (T + 1, B, A) float32
    policy_version: Array  # (T + 1, B) int64, learner steps of the weights that chose the action
    teacher_forced: Array  # (B,) bool: the unroll executed oracle_next_action (its mode is drawn per unroll)
    initial_state: tuple[Array, ...]  # the agent's recurrent state before step 0, each part (B, ...)
    valid: Array | None = None  # (T + 1, B) bool, False at padding steps; None: every step is valid

    @classmethod
    def from_steps(cls, steps: Sequence[Step], teacher_forced: np.ndarray, initial_state: tuple[np.ndarray, ...]
                   ) -> Unroll:
        """Stack ``T + 1`` consecutive steps along a new time axis."""
        return cls(observations={key: np.stack([s.observations[key] for s in steps]) for key in steps[0].observations},
                   **{name: np.stack([getattr(s, name) for s in steps]) for name in Step._fields[1:]},
                   teacher_forced=teacher_forced, initial_state=initial_state)

    @property
    def batch_size(self) -> int:
        """``B``, the number of env slots."""
        return len(self.teacher_forced)

    @classmethod
    def concatenate(cls, unrolls: Sequence[Unroll]) -> Unroll:
        """One unroll of all slots of numpy ``unrolls`` (same ``T``), in order."""
        return _map_arrays(lambda axis, parts: np.concatenate(parts, axis=axis), unrolls)

    def split(self, size: int) -> tuple[Unroll, Unroll]:
        """The first ``size`` slots and the rest."""
        def cut(part: slice) -> Callable[[int, list[Array]], Array]:
            return lambda axis, values: values[0][(slice(None),) * axis + (part,)]

        return _map_arrays(cut(slice(None, size)), [self]), _map_arrays(cut(slice(size, None)), [self])

    def to_tensors(self, device: torch.device | str = "cpu") -> Unroll:
        """The same unroll with every array a torch tensor on ``device``."""
        return _map_arrays(lambda axis, values: torch.as_tensor(values[0], device=device), [self])


def _map_arrays(fn: Callable[[int, list[Array]], Array], unrolls: Sequence[Unroll]) -> Unroll:
    """An unroll whose every array is ``fn(batch_axis, [that array in each of unrolls])``; ``None`` stays ``None``."""
    def walk(axis: int, values: list[Any]) -> Any:
        if values[0] is None:
            return None
        if isinstance(values[0], dict):
            return {key: walk(axis, [v[key] for v in values]) for key in values[0]}
        if isinstance(values[0], tuple):
            return tuple(walk(axis, list(parts)) for parts in zip(*values))
        return fn(axis, values)

    return Unroll(*(walk(0 if name in _PER_SLOT else 1, [getattr(u, name) for u in unrolls])
                    for name in Unroll._fields))
