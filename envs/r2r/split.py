"""An unseen-environment validation split of an R2R-format training file, by scan.

R2R's val_unseen holds scans that never occur in training. Without it, :func:`split_by_scan` carves one out of
a training file: the scans are shuffled with a seeded generator (from their sorted order, so the result depends
only on the file's scans and the seed) and held out in that order, either a given number of them or until the
held-out instructions reach a fraction of all instructions. Records are kept unchanged, in file order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_FRACTION = 0.1  # share of instructions held out when no scan count is given (~6 of R2R's 61 scans)


@dataclass(frozen=True)
class ScanSplit:
    """Records of the training scans (``train``), of the held-out scans (``held_out``), and those scans."""

    train: list[dict]
    held_out: list[dict]
    held_out_scans: tuple[str, ...]

    def restrict_to_train_scans(self, records: list[dict]) -> list[dict]:
        """``records`` (e.g. val_seen) without those in held-out scans, so a seen split stays seen."""
        held = set(self.held_out_scans)
        return [r for r in records if r["scan"] not in held]


def instruction_count(records: list[dict]) -> int:
    return sum(len(r["instructions"]) for r in records)


def split_by_scan(records: list[dict], holdout_scans: int | None = None, fraction: float = DEFAULT_FRACTION,
                  seed: int = 0) -> ScanSplit:
    """Hold out ``holdout_scans`` scans, or (``None``) scans until ``fraction`` of the instructions are held out.

    ``records`` are R2R path records (``scan``, ``instructions`` checked by the caller). ``ValueError`` when the
    request would leave no training scan or hold out none.
    """
    per_scan: dict[str, int] = {}
    for r in records:
        per_scan[r["scan"]] = per_scan.get(r["scan"], 0) + len(r["instructions"])
    order = sorted(per_scan)
    random.Random(seed).shuffle(order)
    if holdout_scans is None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        target, held, count = fraction * sum(per_scan.values()), 0, 0
        while held < target:
            held += per_scan[order[count]]
            count += 1
    else:
        count = holdout_scans
    if not 1 <= count < len(order):
        raise ValueError(f"cannot hold out {count} of {len(order)} scans (at least one must stay in each part)")
    held_scans = set(order[:count])
    return ScanSplit(train=[r for r in records if r["scan"] not in held_scans],
                     held_out=[r for r in records if r["scan"] in held_scans],
                     held_out_scans=tuple(sorted(held_scans)))
