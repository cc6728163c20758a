"""``valan train``: SEED-RL-style training on Ray (learner with central inference, CPU actors, eval actors).

With no arguments it trains the VALAN R2R follower on the bundled sample with synthetic features (a few minutes
on a 2-core laptop), evaluates the untrained and the trained policy on the bundled val_seen split, and prints
both side by side. Outputs go to ``--out`` (default ``run.logdir``): ``checkpoints/`` (numbered, ``LATEST.pt``,
``BEST.pt``), ``config.yaml`` (the effective config), ``tensorboard/``, ``eval/``, ``run.log`` (Ray's own log lines
and warnings, and the faults the run recovered from).

The run folder is claimed first (:mod:`valan.runs`: a lock, no mixing with another run unless ``--resume`` or
``--overwrite``); SIGINT and SIGTERM save a checkpoint, then exit with 130 and 143, and ``--resume`` continues
from it.
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
                        help="join a running Ray cluster ('auto' or host:port); default: a new local Ray instance "
                             "sized to this machine")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the run in the output folder from its newest checkpoint (weights, optimizer, "
                            "counters)")
    start.add_argument("--overwrite", action="store_true",
                       help="start over in an output folder that holds another run: its files are moved to the "
                            "sibling folder <out>.previous-<UTC time>")
    parser.add_argument("--init-from", type=Path, metavar="CKPT",
                        help="initialise the model's weights (only) from a checkpoint: a file (e.g. "
                             "RUN/checkpoints/BEST.pt) or a run folder (its checkpoints/LATEST.pt)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true",
                        help="show Ray's own log lines and warnings and the workers' output on the console "
                             "(default: Ray's go to <out>/run.log)")


def run(args: argparse.Namespace) -> int:
    import signal
    import sys

    import ray  # noqa: F401  (imported before stderr_to_file: Ray's loggers bind to the stderr that goes to run.log)
    from tqdm import tqdm

    from valan.distributed.driver import check_ray_address, check_start, ray_session, train
    from valan.errors import InputError
    from valan.problems import get_problem, load_train_config
    from valan.runs import RunFolder, stderr_to_file, stop_on_signals

    if args.resume and args.init_from is not None:
        raise InputError("--resume continues a run's own checkpoint; --init-from starts a new run: give one")
    config = load_train_config(args.config, args.overrides)
    out_dir = args.out if args.out is not None else Path(config.run.logdir)
    saved = out_dir / "config.yaml"
    if args.resume and args.config is None and saved.is_file():
        config = load_train_config(saved, args.overrides)
    problem = get_problem(config.problem)
    # Everything is checked before the run folder is touched or Ray starts.
    problem.check_inputs(config)  # every data path, the vocabulary and the features
    init_from = check_start(problem, config, out_dir, resume=args.resume, init_from=args.init_from)
    address = args.ray_address or config.distributed.ray_address
    check_ray_address(address)
    signals = None
    try:
        with RunFolder(out_dir, resume=args.resume, overwrite=args.overwrite) as folder, \
                stderr_to_file(out_dir / "run.log", enabled=not args.verbose) as log:
            def say(line: str) -> None:
                tqdm.write(line, file=sys.stderr)
                log(line)

            for note in folder.notes:
                say(note)
            report_training_mix(problem.training_mix(config), out_dir, say)
            with ray_session(address, verbose=args.verbose), stop_on_signals() as signals:
                result = train(problem, config, out_dir, resume=args.resume, init_from=init_from,
                               show_progress=not args.no_progress, say=say)
    except KeyboardInterrupt as stop:  # Stopped, or what Ray's waits made of it
        signum = signals.signum if signals is not None and signals.signum else signal.SIGINT
        checkpoint = getattr(stop, "checkpoint", None)
        saved_text = (f"saved {checkpoint}; continue with: valan train --resume --out {out_dir}" if checkpoint
                      else "no checkpoint saved")
        print(f"valan: stopped by {signal.Signals(signum).name}: {saved_text}", file=sys.stderr)
        return 128 + signum
    print(f"trained {result.step} learner steps, {result.env_steps} env steps in {result.seconds / 60:.1f} min; "
          f"checkpoint {result.checkpoint} (also {out_dir / 'checkpoints' / 'LATEST.pt'})")
    if result.best_checkpoint:
        print(f"best checkpoint ({problem.select_metric} on the selection split): {result.best_checkpoint}")
    faults = [f"{result.actor_failures} actor failure(s)" if result.actor_failures else "",
              f"{result.eval_actor_failures} eval actor failure(s)" if result.eval_actor_failures else "",
              (f"{result.learner_failures} learner failure(s), {result.env_steps_lost} env steps lost"
               if result.learner_failures else "")]
    if any(faults):
        print("recovered from " + ", ".join(f for f in faults if f)
              + (f"; {result.evaluations_skipped} evaluation(s) skipped" if result.evaluations_skipped else ""))
    print_comparison(problem.metric_names, result.evaluations, out_dir,
                     synthetic=config.data.features == "synthetic")
    return 0


def report_training_mix(mix: list[dict], out_dir: Path, say) -> None:
    """With several training files: ``say`` what each contributes and write it to ``out_dir/train_data.json``."""
    from valan.io import write_json

    if len(mix) < 2:
        return
    for m in mix:
        say(f"data.train {m['file']}: {m['episodes']} episodes, weight {m['weight']:g}, "
            f"{m['share']:.1%} of training episodes")
    write_json(out_dir / "train_data.json", mix)


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
