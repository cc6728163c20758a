"""What every task's scorer checks of leaderboard-format predictions before scoring them (and the number check
that data files share).

Predictions name episodes by the task's id field (R2R ``instr_id``, Street View ``id``); the task's metrics module
(``valan.envs.r2r.metrics``, ``valan.envs.streetview.metrics``) parses them into trajectories keyed by that id.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from valan.errors import InputError


def finite_number(value: object) -> bool:
    """Whether a JSON value is a finite number (not a bool, string, NaN or infinity): what every heading and
    elevation must be, in data files and in predictions."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_one_per_episode(predicted: Collection[str], episode_ids: Sequence[str], key: str, nouns: tuple[str, str],
                          *, predictions_source: str = "", data_source: str = "") -> None:
    """Every prediction names an episode of the data and every episode has one.

    ``predicted`` are the predictions' ids (already free of duplicates), ``episode_ids`` the data's in order,
    ``key`` the id field and ``nouns`` the task's name for an episode, singular with its article and plural
    (``("a route", "routes")``). ``InputError`` naming ``predictions_source`` and the first unknown, else first
    missing, id.
    """
    data = data_source or "the data"
    known = set(episode_ids)
    unknown = [i for i in predicted if i not in known]
    if unknown:
        raise InputError(f"prediction for {nouns[0]} that is not in {data} ({len(unknown)} unknown)",
                         source=predictions_source, record=f"{key} {unknown[0]}")
    missing = [i for i in episode_ids if i not in predicted]
    if missing:
        raise InputError(f"no prediction for {len(missing)} of {len(episode_ids)} {nouns[1]} of {data}",
                         source=predictions_source, record=f"{key} {missing[0]}")
