"""Training and evaluating LingUNet on Touchdown SDR (``valan train-sdr``, ``valan evaluate sdr``).

The model maps ``(features (B, C, H, W), text (B, L), text_length (B,))`` to log-probabilities ``(B, H, W)`` over
the feature cells; the loss is the KL divergence from the Gaussian target (:mod:`valan.problems.sdr.data`) and
the metrics are Chen et al.'s (:mod:`valan.problems.sdr.metrics`). Training runs the supervised loop
(:mod:`valan.learning.supervised`), evaluating the ``eval`` split; checkpoints add ``in_channels`` and
``synthetic_features`` to the loop's keys.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from valan.agents.lingunet import LingUNet
from valan.checkpoint import load_checkpoint
from valan.config import from_dict, upgrade_saved
from valan.errors import InputError
from valan.features.stores import SYNTHETIC_NOTE
from valan.learning.supervised import SupervisedResult, SupervisedTask, train_supervised
from valan.problems.sdr.config import LingUNetConfig, SDRConfig, SDRFeaturesConfig
from valan.problems.sdr.data import (NpyFeatureMaps, PanoramaFeatureMaps, SDRBatch, SDRDataset, SyntheticFeatureMaps,
                                     load_sdr, resolve_data_path, split_by_route)
from valan.problems.sdr.metrics import argmax_cells, cell_distance_px, sdr_metrics
from valan.text import Vocabulary


def resolve_device(name: str) -> torch.device:
    """A ``--device`` value as a torch device: ``auto`` is CUDA when present, else the CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


# ----------------------------------------------------------------------------------------------- building


def open_feature_maps(config: SDRFeaturesConfig) -> PanoramaFeatureMaps:
    """The feature maps a config names (``source``: synthetic or npy)."""
    if config.source == "synthetic":
        return SyntheticFeatureMaps(config.channels, config.height, config.width, config.seed)
    if config.path is None:
        raise InputError(f"features.source={config.source} needs features.path")
    return NpyFeatureMaps(config.path, config.layout)


def make_model(config: LingUNetConfig, vocab_size: int, in_channels: int) -> torch.nn.Module:
    """A LingUNet of the configured sizes."""
    try:
        return LingUNet(vocab_size, in_channels, **dataclasses.asdict(config))
    except ValueError as e:
        raise InputError(f"model: {e}") from None


def load_sdr_model(path: str | os.PathLike, device: torch.device | str = "cpu"
                   ) -> tuple[SDRConfig, Vocabulary, torch.nn.Module, dict[str, Any]]:
    """Rebuild the config, vocabulary and LingUNet (in eval mode) of a ``valan train-sdr`` checkpoint."""
    state = load_checkpoint(path)
    if state.get("problem") != "sdr" or not {"config", "vocab", "in_channels", "model"} <= state.keys():
        raise InputError(f"not an SDR checkpoint (problem {state.get('problem')!r}); train one with valan train-sdr",
                         source=str(path))
    config = from_dict(SDRConfig, upgrade_saved(SDRConfig, state["config"]), source=str(path))
    vocab = Vocabulary(state["vocab"])
    model = make_model(config.model, len(vocab), int(state["in_channels"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise InputError(f"model weights do not fit the checkpoint's config: {str(e).splitlines()[0]}",
                         source=str(path)) from None
    return config, vocab, model.to(device).eval(), state


# ------------------------------------------------------------------------------------ loss and evaluation


def kl_divergence(target: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``KL(target || prediction) = sum_cells t * (log t - log p)`` (``0 log 0 = 0``).

    ``target`` and ``log_probs`` are ``(B, H, W)``; ``target`` sums to 1 per example.
    """
    return F.kl_div(log_probs.flatten(1), target.flatten(1), reduction="batchmean")


def batch_tensors(batch: SDRBatch, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The batch's arrays as tensors on ``device``."""
    return {name: torch.from_numpy(getattr(batch, name)).to(device)
            for name in ("features", "text", "text_length", "target")}


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset: SDRDataset, batch_size: int = 32,
                   device: torch.device | str = "cpu") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score ``model`` (``(features, text, text_length) -> log-probs (B, H, W)``) on every example once.

    Returns the summary (``acc@40/80/120``, ``mean_distance`` in pixels, ``num_examples``, ``loss`` = mean KL)
    and per-example records ``{id, x, y, predicted_cell, target_cell, distance_px}`` where ``x``, ``y`` are the
    predicted cell's centre as ratios of the panorama's width and height (the static-centre convention) and
    cells are ``[row, col]``.
    """
    was_training = model.training
    model.eval()
    distances, records, loss_sum = [], [], 0.0
    for batch in dataset.batches(batch_size):
        t = batch_tensors(batch, device)
        log_probs = model(t["features"], t["text"], t["text_length"])
        loss_sum += float(kl_divergence(t["target"], log_probs)) * len(batch.example_ids)
        pred = argmax_cells(log_probs.cpu().numpy())
        dist = cell_distance_px(pred, batch.target_cell, dataset.space)
        distances.append(dist)
        for i, example_id in enumerate(batch.example_ids):
            records.append({"id": example_id, "x": float(pred[i, 1] + 0.5) / dataset.space.grid_width,
                            "y": float(pred[i, 0] + 0.5) / dataset.space.grid_height, "predicted_cell": pred[i].tolist(),
                            "target_cell": batch.target_cell[i].tolist(), "distance_px": float(dist[i])})
    model.train(was_training)
    summary = sdr_metrics(np.concatenate(distances))
    summary["loss"] = loss_sum / len(dataset)
    return summary, records


# ----------------------------------------------------------------------------------------------- training


def load_datasets(config: SDRConfig, feature_maps: PanoramaFeatureMaps) -> tuple[SDRDataset, SDRDataset, Vocabulary]:
    """Training and evaluation sets (a held-out share of the training routes unless ``data.eval`` names a file)
    and the vocabulary built from the training texts; prints what was loaded."""
    data, target = config.data, config.target
    train_path = resolve_data_path(data.train)
    train_examples, skipped = load_sdr(train_path, data.panoramas)
    if data.eval is None:
        train_examples, eval_examples = split_by_route(train_examples, data.eval_fraction, data.split_seed)
        eval_source = f"{data.eval_fraction:.0%} of the routes of {train_path}"
    else:
        eval_examples, _ = load_sdr(resolve_data_path(data.eval), data.panoramas)
        eval_source = data.eval
    feature_maps.check_covers(sorted({e.panoid for e in (*train_examples, *eval_examples)}))
    vocab = Vocabulary.build([e.text for e in train_examples], min_count=data.vocab_min_count)
    sets = [SDRDataset(examples, vocab, feature_maps, data.max_text_length, target.sigma_px, target.panorama_width_px,
                       target.panorama_height_px) for examples in (train_examples, eval_examples)]
    print(f"SDR: {len(sets[0])} training examples from {train_path} ({skipped} skipped: target not visible), "
          f"{len(sets[1])} evaluation examples from {eval_source}; feature maps {feature_maps.channels} x "
          f"{feature_maps.height} x {feature_maps.width} (C x H x W), vocabulary {len(vocab)}")
    return sets[0], sets[1], vocab


def train(config: SDRConfig, out: Path, device: torch.device | str = "cpu", resume: bool = False) -> SupervisedResult:
    """Train LingUNet into the run folder ``out``; the result's metrics are the ``eval`` split's summary."""
    def make_task() -> SupervisedTask:
        feature_maps = open_feature_maps(config.features)
        train_set, eval_set, vocab = load_datasets(config, feature_maps)
        if feature_maps.synthetic:
            print(SYNTHETIC_NOTE)
        model = make_model(config.model, len(vocab), feature_maps.channels).to(device)
        batches = train_set.sample_batches(config.learning.batch_size, np.random.default_rng(config.run.seed))

        def batch_loss() -> torch.Tensor:
            t = batch_tensors(next(batches), device)
            return kl_divergence(t["target"], model(t["features"], t["text"], t["text_length"]))

        return SupervisedTask(
            model, vocab, batch_loss,
            evaluate=lambda: {"eval": evaluate_model(model, eval_set, config.run.eval_batch_size, device)[0]},
            checkpoint_extras={"in_channels": feature_maps.channels, "synthetic_features": feature_maps.synthetic})

    return train_supervised("train-sdr", config, make_task, out, resume)
