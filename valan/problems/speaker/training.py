"""Training the speaker with teacher forcing (``valan train-speaker``) and writing instructions for paths
(``valan speak``).

Training examples are the instructions of ``data.train`` (each with its path); a step draws ``batch_size`` of
them from a shuffled epoch (seeded by ``run.seed`` and the epoch) and minimises the mean cross-entropy per target
token (``<EOS>`` included). Every evaluation scores each ``data.eval`` split:

- ``perplexity``: ``exp`` of the mean negative log-likelihood per target token of every instruction (teacher
  forcing), ``nll`` that mean in nats;
- ``bleu4``: corpus BLEU-4 (``sacrebleu``, in [0, 1]) of one instruction decoded per path (greedy, or a beam of
  ``run.beam``) against all of that path's instructions. Both sides are the R2R tokenization
  (:func:`valan.text.tokenize`: lowercase, punctuation split off) joined by spaces, scored with sacrebleu's
  ``tokenize="none"``; references keep words outside the vocabulary.

A checkpoint holds the model, the effective config (``model.visual`` resolved), the vocabulary and the feature
size, so ``valan speak`` needs only the navigation graphs (and the feature store for a visual speaker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from valan.agents.speaker import Speaker
from valan.envs.r2r.dataset import R2REpisode, graph_problems, record_problems
from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError
from valan.features.stores import SYNTHETIC_NOTE, FeatureStore
from valan.learning.supervised import SupervisedResult, SupervisedTask, load_trained, train_supervised
from valan.problems.discriminator.pairs import EncodedPair, PairEncoder, collate
from valan.problems.discriminator.training import load_episodes, open_features
from valan.problems.speaker.config import SpeakerConfig
from valan.text import EOS_ID, PAD_ID, Vocabulary, tokenize


@dataclass(frozen=True)
class SpeakerPath:
    """A path to describe and its human instructions (``references``; empty for sampled paths)."""

    path_id: Any
    scan: str
    path: tuple[str, ...]
    heading: float
    references: tuple[str, ...] = ()


def group_paths(episodes: Sequence[R2REpisode]) -> list[SpeakerPath]:
    """One :class:`SpeakerPath` per ``path_id`` of ``episodes`` (first-seen order) with all its instructions."""
    grouped: dict[Any, list[R2REpisode]] = {}
    for ep in episodes:
        grouped.setdefault(ep.path_id, []).append(ep)
    return [SpeakerPath(eps[0].path_id, eps[0].scan, eps[0].path, eps[0].heading,
                        tuple(ep.instruction for ep in eps)) for eps in grouped.values()]


def build_speaker(config: SpeakerConfig, vocab_size: int, feature_dim: int) -> Speaker:
    m = config.model
    return Speaker(vocab_size, feature_dim, m.embed_dim, m.hidden_dim, m.dropout,
                   use_visual=config.resolve_visual() == "features")


def make_encoder(config: SpeakerConfig, connectivity: Connectivity, vocab: Vocabulary,
                 features: FeatureStore) -> PairEncoder:
    """Path steps and targets as the discriminator encodes them (zero features for a speaker without vision)."""
    return PairEncoder(connectivity, vocab, features, config.inputs.max_instruction_length, config.inputs.view,
                       use_visual=config.resolve_visual() == "features")


def encode_batch(encoder: PairEncoder, paths: Sequence[SpeakerPath],
                 instructions: Sequence[str] | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The model inputs of ``paths`` and the target ids ``(B, L)`` of ``instructions`` (``None``: no targets,
    a ``(B, 1)`` ``<EOS>`` placeholder)."""
    items = []
    for n, p in enumerate(paths):
        features, geometry = encoder.path(p.scan, p.path, p.heading)
        tokens = encoder.tokens(instructions[n]) if instructions is not None else np.array([EOS_ID])
        items.append(EncodedPair(tokens, features, geometry))
    batch = collate(items)
    return batch, batch["tokens"][batch["instruction_index"]]


def decode(model: Speaker, encoder: PairEncoder, paths: Sequence[SpeakerPath], max_length: int, beam: int = 1,
           sample: bool = False, seed: int = 0, batch_size: int = 256, progress: bool = False) -> list[str]:
    """One instruction per path: greedy, sampled (``sample``, seeded) or a beam search (``beam > 1``); the
    tokens joined by spaces."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in tqdm(range(0, len(paths), batch_size), desc="speak", unit="batch", disable=not progress):
        batch, _ = encode_batch(encoder, paths[start:start + batch_size])
        if beam > 1:
            ids = model.beam_search(batch, max_length, beam)
        else:
            ids = model.generate(batch, max_length, sample=sample, generator=generator)
        out.extend(" ".join(encoder.vocab.decode(row.tolist())) for row in ids)
    model.train(was_training)
    return out


def corpus_bleu4(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 in [0, 1] (sacrebleu) of ``hypotheses`` against each one's references (any number)."""
    import sacrebleu

    tokenized = [[" ".join(tokenize(r)) for r in refs] for refs in references]
    streams = max(len(refs) for refs in tokenized)
    padded = [[refs[i] if i < len(refs) else None for refs in tokenized] for i in range(streams)]
    return sacrebleu.corpus_bleu(list(hypotheses), padded, tokenize="none").score / 100.0


@torch.no_grad()
def evaluate_speaker(model: Speaker, encoder: PairEncoder, paths: Sequence[SpeakerPath], max_length: int,
                     beam: int, batch_size: int) -> dict[str, float]:
    """``perplexity``, ``nll`` (nats per token) and ``bleu4`` on ``paths`` (see the module docstring)."""
    was_training = model.training
    model.eval()
    examples = [(p, r) for p in paths for r in p.references]
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch, targets = encode_batch(encoder, [p for p, _ in chunk], [r for _, r in chunk])
        total += float(model(batch, targets))
        tokens += int((targets != PAD_ID).sum())
    hypotheses = decode(model, encoder, paths, max_length, beam=beam, batch_size=batch_size)
    model.train(was_training)
    nll = total / max(tokens, 1)
    return {"perplexity": math.exp(nll), "nll": nll, "bleu4": corpus_bleu4(hypotheses, [p.references for p in paths])}


class InstructionBatches:
    """Training instructions in shuffled epochs (epoch ``e``'s order seeded by ``[seed, e]``); a batch never
    spans two epochs."""

    def __init__(self, paths: Sequence[SpeakerPath], seed: int, batch_size: int):
        self.examples = [(p, r) for p in paths for r in p.references]
        if not self.examples:
            raise InputError("data.train holds no instructions to learn from")
        self.seed, self.batch_size = seed, min(batch_size, len(self.examples))
        self._start_epoch(0)

    def _start_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))

    def next(self) -> list[tuple[SpeakerPath, str]]:
        if self.position + self.batch_size > len(self.order):
            self._start_epoch(self.epoch + 1)
        chunk = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return [self.examples[i] for i in chunk]


def train(config: SpeakerConfig, out: Path, resume: bool = False) -> SupervisedResult:
    """Train a speaker into the run folder ``out``; the result's metrics are ``perplexity``, ``nll`` and ``bleu4``
    per evaluation split."""
    data, run = config.data, config.run

    def make_task() -> SupervisedTask:
        connectivity = Connectivity(data.resolve(data.connectivity))
        vocab, features = Vocabulary.load(data.resolve(data.vocab)), open_features(data)
        train_files = data.split_files("train")
        train_paths = group_paths(load_episodes(data, train_files, connectivity))
        eval_paths = {split: group_paths(load_episodes(data, [name], connectivity)) for split, name in data.eval.items()}
        batches = InstructionBatches(train_paths, run.seed, config.learning.batch_size)
        print(f"train-speaker: {len(batches.examples)} training instructions ({len(train_paths)} paths) from "
              f"{', '.join(train_files)}; " + "; ".join(f"{split}: {len(p)} paths" for split, p in eval_paths.items())
              + f"; visual features: {config.resolve_visual()}")
        if features.synthetic:
            print(SYNTHETIC_NOTE)
        encoder = make_encoder(config, connectivity, vocab, features)
        model = build_speaker(config, len(vocab), features.dim)

        def batch_loss() -> torch.Tensor:
            chunk = batches.next()
            batch, targets = encode_batch(encoder, [p for p, _ in chunk], [r for _, r in chunk])
            return model(batch, targets) / (targets != PAD_ID).sum()

        return SupervisedTask(
            model, vocab, batch_loss,
            evaluate=lambda: {split: evaluate_speaker(model, encoder, paths, config.inputs.max_instruction_length,
                                                      run.beam, run.eval_batch_size)
                              for split, paths in eval_paths.items()},
            checkpoint_extras={"feature_dim": features.dim, "synthetic_features": features.synthetic},
            train_scalars=lambda: {"epoch": batches.epoch})

    return train_supervised("train-speaker", config, make_task, out, resume)


# ----------------------------------------------------------------------------------------------- speaking


@dataclass
class LoadedSpeaker:
    model: Speaker
    config: SpeakerConfig
    vocab: Vocabulary
    feature_dim: int
    step: int


def load_speaker(path: str | Path) -> LoadedSpeaker:
    """A trained speaker from a ``valan train-speaker`` checkpoint, in eval mode."""
    state, config, vocab = load_trained(path, "speaker", SpeakerConfig)
    model = build_speaker(config, len(vocab), int(state["feature_dim"]))
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedSpeaker(model, config, vocab, int(state["feature_dim"]), int(state["step"]))


def read_paths(path: str | Path, connectivity: Connectivity) -> tuple[list[dict], list[SpeakerPath]]:
    """The records of an R2R-format file (instructions may be empty) and their paths, checked on the graphs:
    ``InputError`` naming the record at the first malformed field or path that is not a walk on its scan."""
    from valan.io import read_json

    source = str(path)
    records = read_json(path)
    if not isinstance(records, list):
        raise InputError("expected a JSON list of paths", source=source)
    paths = []
    for n, record in enumerate(records):
        where, problems = record_problems(record, n)
        problems = problems or graph_problems(record, connectivity)
        if problems:
            raise InputError(problems[0], source=source, record=where)
        paths.append(SpeakerPath(record["path_id"], record["scan"], tuple(record["path"]), float(record["heading"])))
    return records, paths


def speak(checkpoint: str | Path, data: str | Path, connectivity: str | Path | None = None,
          features: str | None = None, beam: int = 1, sample: bool = False, seed: int = 0,
          batch_size: int = 256) -> tuple[list[dict], bool]:
    """Records of the R2R-format file ``data`` with ``instructions`` replaced by one instruction per path from
    the speaker of ``checkpoint`` and ``source: "speaker"`` added; and whether the features were synthetic.

    ``connectivity``/``features`` default to the training run's (its config's ``data`` section).
    """
    loaded = load_speaker(checkpoint)
    config = loaded.config
    graphs = Connectivity(connectivity if connectivity is not None else config.data.resolve(config.data.connectivity))
    store = open_features(config.data, features)
    if store.dim != loaded.feature_dim:
        raise InputError(f"the speaker was trained on {loaded.feature_dim}-d features; the feature store has "
                         f"{store.dim}-d (pass the training run's store with --features)")
    records, paths = read_paths(data, graphs)
    encoder = make_encoder(config, graphs, loaded.vocab, store)
    texts = decode(loaded.model, encoder, paths, config.inputs.max_instruction_length, beam=beam, sample=sample,
                   seed=seed, batch_size=batch_size, progress=True)
    return [{**record, "instructions": [text], "source": "speaker"} for record, text in zip(records, texts)], \
        store.synthetic
