"""Metrics of binary scorers: ROC-AUC (for discriminators of instruction-path pairs)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative.

    Computed from ranks (the Mann-Whitney U statistic): tied scores get their average rank, so a tie between a
    positive and a negative counts one half. Returns ``nan`` when there are no positives or no negatives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of the same length, got {scores.shape} and {labels.shape}")
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores, method="average")
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_auc_by_kind(scores: Sequence[float], labels: Sequence[int], kinds: Sequence[str]) -> dict[str, float]:
    """ROC-AUC overall (key ``"all"``) and of all positives against the negatives of each kind.

    ``kinds`` names each example's kind (positives' kind is ignored); every negative kind gets a key.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    kinds = np.asarray(kinds)
    out = {"all": roc_auc(scores, labels)}
    for kind in sorted(set(kinds[~labels].tolist())):
        keep = labels | (kinds == kind)
        out[kind] = roc_auc(scores[keep], labels[keep])
    return out
