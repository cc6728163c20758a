"""Pretraining the follower's instruction and visual encoders on CMA and NVS (``valan pretrain-alignment``).

Batches are episodes with their negatives (as for the discriminator): CMA scores every pair (weighted binary
cross-entropy, positives weighted by the negatives per positive), NVS predicts every move of the positives' paths.
Validation reports CMA ROC-AUC (overall and per negative type) and NVS accuracy (share of moves whose true next
viewpoint gets the highest logit) and NVS chance accuracy (mean of 1 / candidates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from valan.agents.alignment import AlignmentModel, nvs_loss
from valan.config import DataConfig, to_dict
from valan.problems.discriminator.pairs import PairEncoder, collate, collate_candidates
from valan.problems.discriminator.training import (SYNTHETIC_NOTE, PairBatches, PairInputConfig, SupervisedRunConfig,
                                          prepare_pair_data, supervised_loop)
from valan.errors import InputError
from valan.learning.losses import weighted_bce
from valan.problems.discriminator.metrics import roc_auc_by_kind
from valan.problems.discriminator.negatives import NEGATIVE_TYPES, NegativeConfig, Pair

TASKS = ("cma", "nvs")


@dataclass
class AlignmentModelConfig:
    """Sizes; ``embed_dim`` and ``hidden_dim`` must equal the follower's (``agent`` section of the R2R config)."""

    embed_dim: int = 64
    hidden_dim: int = 128
    initial_scale: float = 5.0  # initial inverse temperature of the CMA head's cosine similarities


@dataclass
class AlignmentLearningConfig:
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    cma_weight: float = 1.0
    nvs_weight: float = 1.0
    pos_weight: float = 0.0  # CMA: BCE weight of positives; 0 = negatives per positive (balanced)
    batch_size: int = 128  # pairs per step (episodes x (1 + negative types))
    lr: float = 1e-3
    grad_clip: float = 5.0
    negative_types: list[str] = field(default_factory=lambda: list(NEGATIVE_TYPES))

    def __post_init__(self) -> None:
        if not self.tasks or set(self.tasks) - set(TASKS):
            raise InputError(f"learning.tasks must be a non-empty subset of {', '.join(TASKS)}, got {self.tasks}")
        unknown = sorted(set(self.negative_types) - set(NEGATIVE_TYPES))
        if unknown:
            raise InputError(f"learning.negative_types: unknown {unknown}; known: {', '.join(NEGATIVE_TYPES)}")


def _arrival_pairs() -> PairInputConfig:
    return PairInputConfig(view="arrival")


@dataclass
class AlignmentConfig:
    problem: str = "alignment"
    data: DataConfig = field(default_factory=DataConfig)
    pairs: PairInputConfig = field(default_factory=_arrival_pairs)
    model: AlignmentModelConfig = field(default_factory=AlignmentModelConfig)
    negatives: NegativeConfig = field(default_factory=NegativeConfig)
    learning: AlignmentLearningConfig = field(default_factory=AlignmentLearningConfig)
    run: SupervisedRunConfig = field(default_factory=lambda: SupervisedRunConfig(logdir="runs/alignment"))

    def __post_init__(self) -> None:
        if self.pairs.view == "travel" and "nvs" in self.learning.tasks:
            raise InputError("pairs.view travel shows NVS the view towards the next viewpoint; use arrival or mean")


def build_alignment_model(config: AlignmentConfig, vocab_size: int, feature_dim: int) -> AlignmentModel:
    m = config.model
    return AlignmentModel(vocab_size, feature_dim, m.embed_dim, m.hidden_dim, m.initial_scale)


@torch.no_grad()
def evaluate_alignment(model: AlignmentModel, encoder: PairEncoder, pairs: list[Pair], tasks: list[str],
                       batch_size: int) -> dict[str, float]:
    """CMA ROC-AUC (``cma_auc/<type>``) and NVS accuracy (``nvs/accuracy``, ``nvs/chance``) on ``pairs``."""
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    if "cma" in tasks:
        scores = np.concatenate([model.cma_logits(collate([encoder.encode(p) for p in pairs[i:i + batch_size]]))
                                 .double().numpy() for i in range(0, len(pairs), batch_size)])
        aucs = roc_auc_by_kind(scores, [p.label for p in pairs], [p.kind for p in pairs])
        out.update({f"cma_auc/{kind}": value for kind, value in aucs.items()})
    if "nvs" in tasks:
        positives = [p for p in pairs if p.label == 1]
        correct = moves = chance = 0.0
        for i in range(0, len(positives), batch_size):
            chunk = positives[i:i + batch_size]
            batch = {**collate([encoder.encode(p) for p in chunk]),
                     **collate_candidates([encoder.candidates(p) for p in chunk])}
            logits = model.nvs_logits(batch)
            valid = batch["move_mask"]
            correct += float(((logits.argmax(-1) == batch["target"]) & valid).sum())
            moves += float(valid.sum())
            chance += float((1.0 / batch["candidate_mask"].sum(-1).clamp(min=1))[valid].sum())
        out.update({"nvs/accuracy": correct / max(moves, 1), "nvs/chance": chance / max(moves, 1)})
    model.train(was_training)
    return out


def pretrain(config: AlignmentConfig, out: Path, resume: bool = False) -> dict[str, float]:
    """Pretrain the shared encoders; returns the last evaluation (``{split}/cma_auc/...``, ``{split}/nvs/...``)."""
    run, learning = config.run, config.learning
    if run.num_threads > 0:
        torch.set_num_threads(run.num_threads)
    torch.manual_seed(run.seed)
    data = prepare_pair_data(config.data, config.negatives)
    p = config.pairs
    encoder = PairEncoder(data.connectivity, data.vocab, data.features, p.max_instruction_length, p.view, p.use_visual)
    types = learning.negative_types if "cma" in learning.tasks else []
    batches = PairBatches(data.train, types, run.seed, learning.batch_size)
    eval_pairs = {split: sampler.pairs(run.eval_seed, types) for split, sampler in data.eval.items()}
    print(f"pretrain-alignment ({', '.join(learning.tasks)}): {len(data.train.episodes)} training instructions; "
          + "; ".join(f"{split}: {len(p)} pairs" for split, p in eval_pairs.items()))
    if data.features.synthetic:
        print(SYNTHETIC_NOTE)
    model = build_alignment_model(config, len(data.vocab), data.features.dim)

    def batch_loss() -> torch.Tensor:
        chunk = batches.next()
        batch = collate([encoder.encode(p) for p in chunk])
        loss = torch.zeros(())
        if "cma" in learning.tasks:
            labels = torch.tensor([float(p.label) for p in chunk])
            loss = loss + learning.cma_weight * weighted_bce(
                model.cma_logits(batch), labels, pos_weight=learning.pos_weight or batches.negatives_per_positive)
        if "nvs" in learning.tasks:
            positives = [p for p in chunk if p.label == 1]
            nvs_batch = {**collate([encoder.encode(p) for p in positives]),
                         **collate_candidates([encoder.candidates(p) for p in positives])}
            loss = loss + learning.nvs_weight * nvs_loss(model.nvs_logits(nvs_batch), nvs_batch["target"],
                                                         nvs_batch["move_mask"])
        return loss

    return supervised_loop(
        "pretrain-alignment", model, torch.optim.Adam(model.parameters(), lr=learning.lr), run, out, config,
        data.vocab, batch_loss=batch_loss,
        evaluate_splits=lambda: {split: evaluate_alignment(model, encoder, pairs, learning.tasks, run.eval_batch_size)
                                 for split, pairs in eval_pairs.items()},
        checkpoint_extras=lambda: {"feature_dim": data.features.dim, "synthetic_features": data.features.synthetic,
                                   "encoder_config": to_dict(config.model)},
        epoch=lambda: batches.epoch, grad_clip=learning.grad_clip, resume=resume)
