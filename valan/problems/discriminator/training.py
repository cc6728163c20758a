"""Training, evaluating and applying instruction-path discriminators.

The config (:class:`valan.problems.discriminator.config.DiscriminatorConfig`, ``configs/discriminator.yaml``)
uses R2R's ``data`` section; training runs the supervised loop (:mod:`valan.learning.supervised`). A checkpoint
holds the model, the optimizer, the step, the effective config, the vocabulary and the feature size, so
``valan score``/``valan filter`` need nothing else but the navigation graphs (and the feature store when the model
was trained on real features).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from valan.agents.discriminator import TwoTowerDiscriminator, build_discriminator, in_batch_softmax_loss
from valan.config import to_dict
from valan.envs.r2r.dataset import R2REpisode, load_r2r
from valan.envs.r2r.graph import Connectivity, ViewpointIndex
from valan.errors import InputError
from valan.features.stores import SYNTHETIC_NOTE, FeatureStore, open_feature_store
from valan.learning.losses import focal_loss, weighted_bce
from valan.learning.supervised import SupervisedResult, SupervisedTask, load_trained, train_supervised
from valan.problems import check_feature_keys
from valan.problems.discriminator.config import (DiscriminatorConfig, DiscriminatorLearningConfig, PairInputConfig,
                                                PairTrainingConfig)
from valan.problems.discriminator.metrics import roc_auc_by_kind
from valan.problems.discriminator.negatives import NegativeSampler, Pair
from valan.problems.discriminator.pairs import PairEncoder, collate
from valan.problems.r2r.config import R2RDataConfig
from valan.text import Vocabulary


# ----------------------------------------------------------------------------------------------- building


def open_features(data: R2RDataConfig, override: str | None = None) -> FeatureStore:
    """The config's feature store (``override``: a command-line ``--features`` value instead)."""
    spec = override or data.features
    if spec != "synthetic" and override is None:
        spec = str(data.resolve(spec))
    return open_feature_store(spec, dim=data.synthetic_dim)


def make_encoder(pairs: PairInputConfig, connectivity: Connectivity, vocab: Vocabulary,
                 features: FeatureStore) -> PairEncoder:
    """The pair encoder of a config's ``pairs`` section."""
    return PairEncoder(connectivity, vocab, features, pairs.max_instruction_length, pairs.view, pairs.use_visual)


@dataclass
class LoadedDiscriminator:
    model: torch.nn.Module
    config: DiscriminatorConfig
    vocab: Vocabulary
    feature_dim: int
    step: int

    def encoder(self, connectivity: Connectivity, features: FeatureStore) -> PairEncoder:
        """A pair encoder matching the training run's inputs; ``InputError`` when the features' size differs."""
        if features.dim != self.feature_dim:
            raise InputError(f"the discriminator was trained on {self.feature_dim}-d features; the feature store "
                             f"has {features.dim}-d (pass the training run's store with --features)")
        return make_encoder(self.config.pairs, connectivity, self.vocab, features)


def load_discriminator(path: str | Path) -> LoadedDiscriminator:
    """A trained discriminator from a ``valan train-discriminator`` checkpoint, in eval mode."""
    state, config, vocab = load_trained(path, "discriminator", DiscriminatorConfig)
    feature_dim = int(state["feature_dim"])
    model = build_discriminator(to_dict(config.model), len(vocab), feature_dim)
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedDiscriminator(model, config, vocab, feature_dim, int(state["step"]))


def open_for_scoring(checkpoint: str | Path, connectivity: str | Path | None = None,
                     features: str | None = None) -> tuple[LoadedDiscriminator, Connectivity, PairEncoder]:
    """The discriminator of ``checkpoint``, the navigation graphs and a pair encoder for ``valan score/filter``.

    ``connectivity``/``features`` default to the training run's (its config's ``data`` section).
    """
    loaded = load_discriminator(checkpoint)
    data = loaded.config.data
    graphs = Connectivity(connectivity if connectivity is not None else data.resolve(data.connectivity))
    return loaded, graphs, loaded.encoder(graphs, open_features(data, features))


@torch.no_grad()
def score_pairs(model: torch.nn.Module, encoder: PairEncoder, pairs: Sequence[Pair], batch_size: int = 512,
                progress: bool = False, desc: str = "score") -> np.ndarray:
    """Logits of ``pairs`` (higher = the instruction describes the path), ``(len(pairs),)`` float64."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    out = np.empty(len(pairs), dtype=np.float64)
    starts = range(0, len(pairs), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        chunk = pairs[start:start + batch_size]
        out[start:start + len(chunk)] = model(collate([encoder.encode(p) for p in chunk])).double().numpy()
    model.train(was_training)
    return out


def evaluate(model: torch.nn.Module, encoder: PairEncoder, pairs: Sequence[Pair], batch_size: int) -> dict[str, float]:
    """ROC-AUC overall (``auc/all``) and per negative type (``auc/<type>``) of the pairs' scores."""
    scores = score_pairs(model, encoder, pairs, batch_size)
    aucs = roc_auc_by_kind(scores, [p.label for p in pairs], [p.kind for p in pairs])
    return {f"auc/{kind}": value for kind, value in aucs.items()}


# ----------------------------------------------------------------------------------------------- training


def pair_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], labels: torch.Tensor,
              config: DiscriminatorLearningConfig, pos_weight: float) -> torch.Tensor:
    """The configured loss of one batch of labelled pairs (``bce``/``focal``)."""
    logits = model(batch)
    if config.loss == "focal":
        return focal_loss(logits, labels, gamma=config.focal_gamma, alpha=config.focal_alpha)
    return weighted_bce(logits, labels, pos_weight=pos_weight)


def in_batch_loss(model: TwoTowerDiscriminator, batch: dict[str, torch.Tensor],
                  path_ids: Sequence[Any]) -> torch.Tensor:
    """In-batch softmax over positives; other instructions of the same path are not counted as negatives."""
    logits = model.in_batch_logits(batch)
    ids = np.asarray([str(p) for p in path_ids])
    same = torch.from_numpy(ids[:, None] == ids[None, :]) & ~torch.eye(len(ids), dtype=torch.bool)
    return in_batch_softmax_loss(logits.masked_fill(same, float("-inf")))


class PairBatches:
    """Training pairs served in batches, epoch after epoch, with fresh negatives each epoch.

    Epoch ``e`` draws negatives of ``types`` with seed ``seed * 1_000_003 + e`` and visits the episodes in a
    shuffled order, each episode's positive and negatives together (so a batch encodes few distinct instructions
    and contrasts each with its own negatives). A batch never spans two epochs.
    """

    def __init__(self, sampler: NegativeSampler, types: Sequence[str], seed: int, batch_size: int):
        self.sampler, self.types, self.seed, self.batch_size = sampler, list(types), seed, batch_size
        self.epoch = -1
        self._start_epoch(0)

    def _start_epoch(self, epoch: int) -> None:
        groups: list[list[Pair]] = []
        for pair in self.sampler.pairs(self.seed * 1_000_003 + epoch, self.types):
            if pair.label == 1:
                groups.append([])
            groups[-1].append(pair)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(groups))
        self.pairs = [pair for i in order for pair in groups[i]]
        positives = len(groups)
        self.negatives_per_positive = (len(self.pairs) - positives) / max(positives, 1)
        self.epoch, self.position = epoch, 0

    def next(self) -> list[Pair]:
        if self.position + self.batch_size > len(self.pairs):
            self._start_epoch(self.epoch + 1)
        chunk = self.pairs[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return chunk


def load_episodes(data: R2RDataConfig, files: Sequence[str], connectivity: Connectivity) -> list[R2REpisode]:
    """The episodes of ``files``, each path checked on ``connectivity`` (``InputError`` naming file and path)."""
    episodes: list[R2REpisode] = []
    for name in files:
        episodes.extend(load_r2r(data.resolve(name), connectivity))
    return episodes


@dataclass
class PairData:
    """What a pair-level trainer reads: vocabulary, features, pair encoder, training batches, validation pairs."""

    vocab: Vocabulary
    features: FeatureStore
    encoder: PairEncoder
    batches: PairBatches
    eval_pairs: dict[str, list[Pair]]


def prepare_pair_data(config: PairTrainingConfig, label: str, train_types: Sequence[str],
                      eval_types: Sequence[str]) -> PairData:
    """Training batches with negatives of ``train_types`` and validation pairs with ``eval_types`` (seeded by
    ``run.seed`` and ``run.eval_seed``); prints their sizes after ``label``, and the synthetic-features note."""
    data = config.data
    connectivity = Connectivity(data.resolve(data.connectivity))
    vocab, features = Vocabulary.load(data.resolve(data.vocab)), open_features(data)
    if not features.synthetic:  # a missing viewpoint would otherwise surface mid-training
        check_feature_keys(features, ViewpointIndex(connectivity, connectivity.scans()).keys(), data.features)
    train_files = data.split_files("train")  # pair trainers read every training file whole (weights unused)
    train = NegativeSampler(load_episodes(data, train_files, connectivity), connectivity, config.negatives)
    eval_pairs = {split: NegativeSampler(load_episodes(data, [name], connectivity), connectivity, config.negatives)
                  .pairs(config.run.eval_seed, eval_types) for split, name in data.eval.items()}
    print(f"{label}: {len(train.episodes)} training instructions from {', '.join(train_files)}; "
          + "; ".join(f"{split}: {len(pairs)} pairs" for split, pairs in eval_pairs.items()))
    if features.synthetic:
        print(SYNTHETIC_NOTE)
    return PairData(vocab, features, make_encoder(config.pairs, connectivity, vocab, features),
                    PairBatches(train, train_types, config.run.seed, config.learning.batch_size), eval_pairs)


def train(config: DiscriminatorConfig, out: Path, resume: bool = False) -> SupervisedResult:
    """Train a discriminator into the run folder ``out``; the result's metrics are ``auc/{type}`` per split."""
    learning = config.learning
    in_batch = learning.loss == "in_batch_softmax"

    def make_task() -> SupervisedTask:
        data = prepare_pair_data(config, "train-discriminator", [] if in_batch else learning.negative_types,
                                 learning.negative_types)
        encoder, batches = data.encoder, data.batches
        model = build_discriminator(to_dict(config.model), len(data.vocab), data.features.dim)

        def batch_loss() -> torch.Tensor:
            chunk = batches.next()
            batch = collate([encoder.encode(p) for p in chunk])
            if in_batch:
                return in_batch_loss(model, batch, [p.path_id for p in chunk])
            labels = torch.tensor([float(p.label) for p in chunk])
            return pair_loss(model, batch, labels, learning, learning.pos_weight or batches.negatives_per_positive)

        return SupervisedTask(
            model, data.vocab, batch_loss,
            evaluate=lambda: {split: evaluate(model, encoder, pairs, config.run.eval_batch_size)
                              for split, pairs in data.eval_pairs.items()},
            checkpoint_extras={"feature_dim": data.features.dim, "synthetic_features": data.features.synthetic},
            train_scalars=lambda: {"epoch": batches.epoch})

    return train_supervised("train-discriminator", config, make_task, out, resume)
