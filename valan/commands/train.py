"""``valan train``: SEED-RL-style training on Ray (learner with central inference, CPU actors, eval actors).

With no arguments it trains the VALAN R2R follower on the bundled sample with synthetic features (a few minutes
on a 2-core laptop), evaluates the untrained and the trained policy on the bundled val_seen split, and prints
both side by side. Outputs go to ``--out`` (default ``run.logdir``): ``checkpoints/``, ``config.yaml`` (the
effective config), ``tensorboard/``, ``eval/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("train an agent SEED-RL style on Ray: central batched inference, CPU actors, V-trace + imitation "
        "(default: the bundled R2R sample with synthetic features, a few minutes on 2 cores)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path,
                        help="YAML config (default: the embedded configs/r2r_sample.yaml; with --resume: the run's "
                             "saved config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set learning.lr=5e-4 (repeatable)")
    parser.add_argument("--out", type=Path, help="output folder (default: the config's run.logdir)")
    parser.add_argument("--ray-address",
                        help="join a running Ray cluster ('auto' or host:port); default: a local Ray instance "
                             "sized to this machine")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue from the newest checkpoint in the output folder (weights, optimizer, counters)")
    start.add_argument("--init-from", type=Path, metavar="CKPT",
                       help="initialise the model's weights (only) from a checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    import ray

    from valan.problems import load_train_config
    from valan.distributed.driver import train
    from valan.errors import InputError
    from valan.problems import get_problem

    config = load_train_config(args.config, args.overrides)
    out_dir = args.out if args.out is not None else Path(config.run.logdir)
    saved = out_dir / "config.yaml"
    if args.resume and args.config is None and saved.is_file():
        config = load_train_config(saved, args.overrides)
    if args.resume and not any((out_dir / "checkpoints").glob("ckpt-*.pt")):
        raise InputError("no checkpoint to resume from", source=str(out_dir / "checkpoints"))
    if args.init_from is not None and not args.init_from.is_file():
        raise InputError("checkpoint file not found", source=str(args.init_from))
    problem = get_problem(config.problem)
    problem.check_inputs(config)  # every data path, the vocabulary and the features, before Ray starts
    address = args.ray_address or config.distributed.ray_address
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    try:
        result = train(problem, config, out_dir, resume=args.resume,
                       init_from=str(args.init_from) if args.init_from else None,
                       show_progress=not args.no_progress)
    finally:
        ray.shutdown()
    print(f"trained {result.step} learner steps, {result.env_steps} env steps in {result.seconds / 60:.1f} min; "
          f"checkpoint {result.checkpoint}")
    if result.actor_failures:
        print(f"{result.actor_failures} actor failure(s) were recovered from")
    print_comparison(problem.metric_names, result.evaluations, out_dir,
                     synthetic=config.data.features == "synthetic")
    return 0


def print_comparison(metric_names: tuple[str, ...], evaluations: dict[int, dict[str, dict[str, float]]],
                     out_dir: Path, synthetic: bool) -> None:
    """Print each eval split's metrics at step 0 (untrained) and at the last evaluated step, side by side."""
    from valan.distributed.evaluation import EvalAggregator

    if not evaluations:
        return
    history = {(line["step"], line["split"]): line for line in EvalAggregator.read_history(out_dir)}
    last = max(evaluations)
    for split, metrics in evaluations[last].items():
        untrained = history.get((0, split))
        names = [n for n in metric_names if n in metrics] or sorted(metrics)
        print(f"\n{split}" + (f" ({int(metrics['num_episodes'])} episodes)" if "num_episodes" in metrics else ""))
        print(f"{'metric':<20} {'untrained':>10} {f'step {last}':>12}")
        for name in names:
            before = f"{untrained[name]:.3f}" if untrained and name in untrained else "-"
            print(f"{name:<20} {before:>10} {metrics[name]:>12.3f}")
    if synthetic:
        from valan.features.stores import SYNTHETIC_NOTE

        print(f"\n{SYNTHETIC_NOTE}")
