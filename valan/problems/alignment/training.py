"""Pretraining the follower's instruction and visual encoders on CMA and NVS (``valan pretrain-alignment``).

Batches are episodes with their negatives (as for the discriminator): CMA scores every pair (weighted binary
cross-entropy, positives weighted by the negatives per positive), NVS predicts every move of the positives' paths.
Validation reports CMA ROC-AUC (overall and per negative type) and NVS accuracy (share of moves whose true next
viewpoint gets the highest logit) and NVS chance accuracy (mean of 1 / candidates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from valan.agents.alignment import AlignmentModel, nvs_loss
from valan.config import to_dict
from valan.learning.losses import weighted_bce
from valan.learning.supervised import SupervisedResult, SupervisedTask, train_supervised
from valan.problems.alignment.config import AlignmentConfig
from valan.problems.discriminator.metrics import roc_auc_by_kind
from valan.problems.discriminator.negatives import Pair
from valan.problems.discriminator.pairs import PairEncoder, collate, collate_candidates
from valan.problems.discriminator.training import prepare_pair_data


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


def pretrain(config: AlignmentConfig, out: Path, resume: bool = False) -> SupervisedResult:
    """Pretrain the shared encoders into the run folder ``out``; the result's metrics are ``cma_auc/...`` and
    ``nvs/...`` per split."""
    learning = config.learning
    types = learning.negative_types if "cma" in learning.tasks else []

    def make_task() -> SupervisedTask:
        data = prepare_pair_data(config, f"pretrain-alignment ({', '.join(learning.tasks)})", types, types)
        encoder, batches = data.encoder, data.batches
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

        return SupervisedTask(
            model, data.vocab, batch_loss,
            evaluate=lambda: {split: evaluate_alignment(model, encoder, pairs, learning.tasks,
                                                        config.run.eval_batch_size)
                              for split, pairs in data.eval_pairs.items()},
            checkpoint_extras={"feature_dim": data.features.dim, "synthetic_features": data.features.synthetic,
                               "encoder_config": to_dict(config.model)},
            train_scalars=lambda: {"epoch": batches.epoch})

    return train_supervised("pretrain-alignment", config, make_task, out, resume)
