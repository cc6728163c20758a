"""Training, evaluating and applying instruction-path discriminators.

The config (``configs/discriminator.yaml``) reuses the R2R ``data`` section of :mod:`valan.config`; a checkpoint
holds the model, the optimizer, the step, the effective config, the vocabulary and the feature size, so
``valan score``/``valan filter`` need nothing else but the navigation graphs (and the feature store when the model
was trained on real features).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from valan.agents.discriminator import TwoTowerDiscriminator, build_discriminator, in_batch_softmax_loss
from valan.config import DataConfig, from_dict, to_dict
from valan.problems.discriminator.pairs import PairEncoder, collate
from valan.envs.r2r.dataset import R2REpisode, load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError
from valan.features.stores import FeatureStore, open_feature_store
from valan.learning.losses import focal_loss, weighted_bce
from valan.problems.discriminator.metrics import roc_auc_by_kind
from valan.problems.discriminator.negatives import NEGATIVE_TYPES, NegativeConfig, NegativeSampler, Pair
from valan.text import Vocabulary

SYNTHETIC_NOTE = ("note: synthetic features carry no visual information; these results come from language and path "
                  "geometry alone (synthetic vectors at most identify viewpoints)")


@dataclass
class PairInputConfig:
    """How pairs become model inputs (see :mod:`valan.problems.discriminator.pairs`)."""

    max_instruction_length: int = 80  # tokens, <EOS> included
    # travel: the view facing the next viewpoint; arrival: the view facing the direction of arrival (what an agent
    # sees before choosing its move); mean: the panorama's mean
    view: Literal["travel", "arrival", "mean"] = "travel"
    use_visual: bool = True  # false: zero visual features (geometry and language only)


@dataclass
class DiscriminatorModelConfig:
    type: Literal["stepwise", "two_tower"] = "stepwise"
    embed_dim: int = 64  # word embedding size
    hidden_dim: int = 128  # instruction BiLSTM output (hidden_dim // 2 per direction) and path LSTM size
    dropout: float = 0.0
    initial_scale: float = 5.0  # initial inverse temperature on the cosine similarities
    # stepwise only: steps = VALAN's soft-min over steps; steps_and_tokens adds a token-side term
    pooling: Literal["steps", "steps_and_tokens"] = "steps"


@dataclass
class DiscriminatorLearningConfig:
    loss: Literal["bce", "focal", "in_batch_softmax"] = "bce"  # in_batch_softmax: two_tower only
    pos_weight: float = 0.0  # BCE weight of positives; 0 = negatives per positive of each epoch (balanced)
    focal_gamma: float = 2.0
    focal_alpha: float = 0.5  # weight of positives in the focal loss (negatives: 1 - alpha)
    batch_size: int = 128  # pairs per step (positives per step for in_batch_softmax)
    lr: float = 1e-3
    grad_clip: float = 5.0  # global gradient norm clip; 0 disables
    negative_types: list[str] = field(default_factory=lambda: list(NEGATIVE_TYPES))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.negative_types) - set(NEGATIVE_TYPES))
        if unknown:
            raise InputError(f"learning.negative_types: unknown {unknown}; known: {', '.join(NEGATIVE_TYPES)}")
        if self.batch_size < 2 or self.lr <= 0 or self.pos_weight < 0:
            raise InputError("learning.batch_size must be >= 2, learning.lr > 0 and learning.pos_weight >= 0")


@dataclass
class SupervisedRunConfig:
    """Budget, evaluation, checkpoints. A run stops at whichever budget is reached first."""

    total_steps: int = 2000
    total_minutes: float = 0.0  # wall-clock limit; 0: none
    total_cpu_minutes: float = 0.0  # limit on this process's CPU time (all threads; fair on a shared machine); 0: none
    eval_every_steps: int = 500  # evaluate and checkpoint every this many steps and at the end
    eval_batch_size: int = 512
    eval_seed: int = 0  # seed of the validation negatives (fixed across checkpoints and runs)
    keep_last: int = 3
    logdir: str = "runs/discriminator"
    seed: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class DiscriminatorConfig:
    problem: str = "discriminator"
    data: DataConfig = field(default_factory=DataConfig)
    pairs: PairInputConfig = field(default_factory=PairInputConfig)
    model: DiscriminatorModelConfig = field(default_factory=DiscriminatorModelConfig)
    negatives: NegativeConfig = field(default_factory=NegativeConfig)
    learning: DiscriminatorLearningConfig = field(default_factory=DiscriminatorLearningConfig)
    run: SupervisedRunConfig = field(default_factory=SupervisedRunConfig)

    def __post_init__(self) -> None:
        if self.learning.loss == "in_batch_softmax" and self.model.type != "two_tower":
            raise InputError("learning.loss in_batch_softmax needs model.type two_tower")


# ----------------------------------------------------------------------------------------------- building


def open_features(data: DataConfig, override: str | None = None) -> FeatureStore:
    """The config's feature store (``override``: a command-line ``--features`` value instead)."""
    spec = override or data.features
    if spec != "synthetic" and override is None:
        spec = str(data.resolve(spec))
    return open_feature_store(spec, dim=data.synthetic_dim)


def make_encoder(config: DiscriminatorConfig, connectivity: Connectivity, vocab: Vocabulary,
                 features: FeatureStore) -> PairEncoder:
    p = config.pairs
    return PairEncoder(connectivity, vocab, features, p.max_instruction_length, p.view, p.use_visual)


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
        return make_encoder(self.config, connectivity, self.vocab, features)


def load_discriminator(path: str | Path) -> LoadedDiscriminator:
    """A trained discriminator from a ``valan train-discriminator`` checkpoint, in eval mode."""
    from valan.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if state.get("problem") != "discriminator":
        raise InputError(f"not a discriminator checkpoint (problem {state.get('problem')!r})", source=str(path))
    config = from_dict(DiscriminatorConfig, state["config"], source=str(path))
    vocab = Vocabulary(state["vocab"])
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


def load_episodes(data: DataConfig, files: Sequence[str]) -> list[R2REpisode]:
    episodes: list[R2REpisode] = []
    for name in files:
        episodes.extend(load_r2r(data.resolve(name)))
    return episodes


@dataclass
class PairData:
    """What a pair-level trainer reads: graphs, vocabulary, features, and the train/validation episodes."""

    connectivity: Connectivity
    vocab: Vocabulary
    features: FeatureStore
    train: NegativeSampler
    eval: dict[str, NegativeSampler]


def prepare_pair_data(data: DataConfig, negatives: NegativeConfig) -> PairData:
    connectivity = Connectivity(data.resolve(data.connectivity))
    return PairData(connectivity, Vocabulary.load(data.resolve(data.vocab)), open_features(data),
                    NegativeSampler(load_episodes(data, data.train), connectivity, negatives),
                    {split: NegativeSampler(load_episodes(data, [name]), connectivity, negatives)
                     for split, name in data.eval.items()})


def supervised_loop(name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, run: SupervisedRunConfig,
                    out: Path, config: Any, vocab: Vocabulary, *, batch_loss: Callable[[], torch.Tensor],
                    evaluate_splits: Callable[[], dict[str, dict[str, float]]],
                    checkpoint_extras: Callable[[], dict[str, Any]], epoch: Callable[[], int],
                    grad_clip: float, resume: bool = False) -> dict[str, float]:
    """The shared loop of ``train-discriminator`` and ``pretrain-alignment``.

    Steps ``batch_loss()`` with Adam-style ``optimizer`` until ``run.total_steps`` or a time budget; every
    ``run.eval_every_steps`` (and at the end) runs ``evaluate_splits()`` (split -> scalars), logs to
    ``metrics.jsonl`` and TensorBoard (``tb/``), and saves an atomic checkpoint (``checkpoints/``; model, optimizer,
    step, config, ``config.problem``, vocab, plus ``checkpoint_extras()``). Returns the last evaluation as
    ``{split}/{scalar}``.
    """
    import json

    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from valan.checkpoint import CheckpointManager, load_checkpoint
    from valan.config import save_config

    checkpoints = CheckpointManager(out / "checkpoints", keep_last=run.keep_last)
    step = 0
    if resume:
        latest = checkpoints.latest()
        if latest is None:
            raise InputError("--resume: no checkpoint in the run folder", source=str(out / "checkpoints"))
        state = load_checkpoint(latest)
        if state.get("vocab") != vocab.tokens:
            raise InputError("--resume: the checkpoint's vocabulary differs from this run's", source=str(latest))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", config)

    writer = SummaryWriter(str(out / "tb"))
    metrics: dict[str, float] = {}
    started, started_cpu = time.monotonic(), time.process_time()
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as log, \
            tqdm(total=run.total_steps, initial=step, desc=name, unit="step") as bar:
        def record(split: str, scalars: dict[str, float]) -> None:
            for key, value in scalars.items():
                writer.add_scalar(f"{split}/{key}", value, step)
            log.write(json.dumps({"step": step, "split": split, "elapsed_s": round(time.monotonic() - started, 1),
                                  "cpu_s": round(time.process_time() - started_cpu, 1), **scalars}) + "\n")
            log.flush()

        def evaluate_and_save() -> None:
            metrics.clear()
            for split, result in evaluate_splits().items():
                record(split, result)
                metrics.update({f"{split}/{k}": v for k, v in result.items()})
            checkpoints.save(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                                    "config": to_dict(config), "problem": config.problem, "vocab": vocab.tokens,
                                    "eval_metrics": dict(metrics), **checkpoint_extras()})
            bar.set_postfix({k: f"{v:.3f}" for k, v in list(metrics.items())[:3]})

        model.train()
        losses: list[float] = []
        while step < run.total_steps:
            loss = batch_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            step += 1
            bar.update(1)
            losses.append(loss.item())
            out_of_time = ((run.total_minutes > 0 and time.monotonic() - started >= 60 * run.total_minutes)
                           or (run.total_cpu_minutes > 0
                               and time.process_time() - started_cpu >= 60 * run.total_cpu_minutes))
            if step % 50 == 0:
                record("train", {"loss": float(np.mean(losses)), "epoch": epoch()})
                losses.clear()
            if step % run.eval_every_steps == 0 or step == run.total_steps or out_of_time:
                evaluate_and_save()
            if out_of_time:
                break
    writer.close()
    return metrics


def train(config: DiscriminatorConfig, out: Path, resume: bool = False) -> dict[str, float]:
    """Train a discriminator; returns the last evaluation (``{split}/auc/{type}``)."""
    run, learning = config.run, config.learning
    if run.num_threads > 0:
        torch.set_num_threads(run.num_threads)
    torch.manual_seed(run.seed)
    data = prepare_pair_data(config.data, config.negatives)
    encoder = make_encoder(config, data.connectivity, data.vocab, data.features)
    in_batch = learning.loss == "in_batch_softmax"
    batches = PairBatches(data.train, [] if in_batch else learning.negative_types, run.seed, learning.batch_size)
    eval_pairs = {split: sampler.pairs(run.eval_seed, learning.negative_types) for split, sampler in data.eval.items()}
    print(f"discriminator: {len(data.train.episodes)} training instructions from {', '.join(config.data.train)}; "
          + "; ".join(f"{split}: {len(p)} pairs" for split, p in eval_pairs.items()))
    if data.features.synthetic:
        print(SYNTHETIC_NOTE)
    model = build_discriminator(to_dict(config.model), len(data.vocab), data.features.dim)

    def batch_loss() -> torch.Tensor:
        chunk = batches.next()
        batch = collate([encoder.encode(p) for p in chunk])
        if in_batch:
            return in_batch_loss(model, batch, [p.path_id for p in chunk])
        labels = torch.tensor([float(p.label) for p in chunk])
        return pair_loss(model, batch, labels, learning, learning.pos_weight or batches.negatives_per_positive)

    return supervised_loop(
        "train-discriminator", model, torch.optim.Adam(model.parameters(), lr=learning.lr), run, out, config,
        data.vocab, batch_loss=batch_loss,
        evaluate_splits=lambda: {split: evaluate(model, encoder, pairs, run.eval_batch_size)
                                 for split, pairs in eval_pairs.items()},
        checkpoint_extras=lambda: {"feature_dim": data.features.dim, "synthetic_features": data.features.synthetic},
        epoch=lambda: batches.epoch, grad_clip=learning.grad_clip, resume=resume)
