"""``valan train-sdr``: train LingUNet on Touchdown spatial description resolution.

Writes to the run folder: ``config.yaml`` (the effective config), ``vocab.txt``, ``metrics.jsonl`` (one JSON
object per line: ``step``, ``split`` (train/eval) and the scalars), TensorBoard scalars under ``tb/``, and
``checkpoints/ckpt-<step>.pt`` (atomic, the last ``training.keep_last`` kept).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "train LingUNet for Touchdown spatial description resolution (SDR)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML config; None: the embedded configs/sdr.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, e.g. --set training.steps=1000 (repeatable)")
    parser.add_argument("--out", default=None, help="run folder; None: the config's training.logdir")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from valan.checkpoint import CheckpointManager, load_checkpoint
    from valan.config import load_config, save_config, to_dict
    from valan.configs import config_path
    from valan.errors import InputError
    from valan.problems.sdr.task import (SDRConfig, SDRDataset, batch_tensors, evaluate_model, kl_divergence, load_sdr,
                           make_model, open_feature_maps, resolve_data_path, split_by_route, SYNTHETIC_NOTE)
    from valan.text import Vocabulary

    config = load_config(args.config or config_path("sdr.yaml"), args.overrides, schema=SDRConfig)
    out = Path(args.out or config.training.logdir)
    data, train_cfg = config.data, config.training
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)

    feature_maps = open_feature_maps(config.features)
    # Data: a held-out share of the training routes unless an eval file is given.
    train_path = resolve_data_path(data.train)
    train_examples, skipped = load_sdr(train_path, data.panoramas)
    if data.eval is None:
        train_examples, eval_examples = split_by_route(train_examples, data.eval_fraction, data.split_seed)
        eval_source = f"{data.eval_fraction:.0%} of the routes of {train_path}"
    else:
        eval_examples, _ = load_sdr(resolve_data_path(data.eval), data.panoramas)
        eval_source = data.eval
    vocab = Vocabulary.build([e.text for e in train_examples], min_count=data.vocab_min_count)
    dataset_args = dict(vocab=vocab, feature_maps=feature_maps, max_text_length=data.max_text_length,
                        sigma_px=config.target.sigma_px, width_px=config.target.panorama_width_px,
                        height_px=config.target.panorama_height_px)
    train_set, eval_set = SDRDataset(train_examples, **dataset_args), SDRDataset(eval_examples, **dataset_args)
    print(f"SDR: {len(train_set)} training examples from {train_path} ({skipped} skipped: target not visible), "
          f"{len(eval_set)} evaluation examples from {eval_source}; feature maps "
          f"{feature_maps.channels} x {feature_maps.height} x {feature_maps.width} (C x H x W), vocabulary {len(vocab)}")
    if feature_maps.synthetic:
        print(SYNTHETIC_NOTE)

    model = make_model(config.model, len(vocab), feature_maps.channels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    checkpoints = CheckpointManager(out / "checkpoints", keep_last=train_cfg.keep_last)
    step = 0
    if args.resume:
        latest = checkpoints.latest()
        if latest is None:
            raise InputError("--resume: no checkpoint in the run folder", source=str(out / "checkpoints"))
        state = load_checkpoint(latest)
        if state.get("vocab") != vocab.tokens:
            raise InputError("--resume: the checkpoint's vocabulary differs from this run's data", source=str(latest))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", config)
    vocab.save(out / "vocab.txt")

    def checkpoint_state(eval_metrics: dict[str, float] | None) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "config": to_dict(config), "problem": "sdr", "vocab": vocab.tokens,
                "in_channels": feature_maps.channels, "synthetic_features": feature_maps.synthetic,
                "eval_metrics": eval_metrics or {}}

    writer = SummaryWriter(str(out / "tb"))
    eval_metrics: dict[str, float] | None = None
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as log:
        def record(split: str, scalars: dict[str, float]) -> None:
            for name, value in scalars.items():
                writer.add_scalar(f"{split}/{name}", value, step)
            log.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")
            log.flush()

        batches = train_set.sample_batches(train_cfg.batch_size, rng)
        model.train()
        losses: list[float] = []
        with tqdm(total=train_cfg.steps, initial=step, desc="train-sdr", unit="step") as bar:
            while step < train_cfg.steps:
                t = batch_tensors(next(batches), device)
                loss = kl_divergence(t["target"], model(t["features"], t["text"], t["text_length"]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if train_cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
                optimizer.step()
                step += 1
                bar.update(1)
                losses.append(loss.item())
                if step % train_cfg.log_every == 0:
                    record("train", {"loss": float(np.mean(losses))})
                    bar.set_postfix(loss=f"{np.mean(losses):.3f}")
                    losses.clear()
                final = step == train_cfg.steps
                if step % train_cfg.eval_every == 0 or final:
                    eval_metrics, _ = evaluate_model(model, eval_set, train_cfg.eval_batch_size, device)
                    record("eval", eval_metrics)
                if step % train_cfg.checkpoint_every == 0 or final:
                    checkpoints.save(step, checkpoint_state(eval_metrics))
    writer.close()

    if eval_metrics is not None:
        print(f"step {step}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in eval_metrics.items()))
    print(f"run folder: {out} (latest checkpoint {checkpoints.latest()})")
    if feature_maps.synthetic:
        print(SYNTHETIC_NOTE)
    return 0
