"""``valan evaluate r2r``: score R2R predictions, or baseline agents, with the community's metrics.

Predictions come in the leaderboard format ``[{"instr_id": "4332_0", "trajectory": [[viewpoint, heading,
elevation], ...]}]``. Success is a navigation error strictly below 3.0 m, for every metric that uses success.
Metrics and their exact definitions: ``valan.envs.r2r.metrics``.

``score_predictions(args, predictions, source)`` scores a predictions list from any source (a file here; a
trained agent's run elsewhere), so other entry points can reuse the checks, the output and the plots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from valan.data import sample_path

HELP = ("score R2R predictions (leaderboard format) or baseline agents: success rate, SPL, navigation error, "
        "oracle success, trajectory length, steps, nDTW, SDTW, CLS")

BASELINE_CHOICES = ("random", "shortest", "stop", "all")

# (summary key, table label); distances in metres.
ROWS = (("success_rate", "success rate (SR)"), ("spl", "SPL"), ("nav_error", "navigation error (NE), m"),
        ("oracle_success_rate", "oracle success rate (OSR)"), ("trajectory_length", "trajectory length (TL), m"),
        ("steps", "steps"), ("ndtw", "nDTW"), ("sdtw", "SDTW"), ("cls", "CLS"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=sample_path("R2R_sample_val_seen.json"),
                        help="R2R-format data file with reference paths (here: the bundled val_seen sample)")
    parser.add_argument("--connectivity", type=Path, default=sample_path("connectivity"),
                        help="folder of {scan}_connectivity.json navigation graphs (here: the bundled sample's)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--predictions", type=Path,
                        help='predictions JSON: [{"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], '
                             '...]}], exactly one per instruction of --data')
    source.add_argument("--baseline", choices=BASELINE_CHOICES,
                        help="score baseline agents instead of predictions: seeded random policy (STOP or a "
                             "neighbour, uniformly, at most 12 moves), shortest-path oracle, stop at the start")
    source.add_argument("--checkpoint", type=Path,
                        help="a valan train checkpoint: run the trained agent greedily over every instruction of "
                             "--data, then score its predictions")
    parser.add_argument("--save-predictions", type=Path, metavar="FILE",
                        help="with --checkpoint: also write the agent's predictions (leaderboard format) here; on a "
                             "split without reference paths (test) they are written and not scored")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (rates in [0, 1], distances in metres) instead of a table")
    parser.add_argument("--per-episode", action="store_true",
                        help="also report every episode's metrics ('episodes' list with --json)")
    parser.add_argument("--plot-dir", type=Path,
                        help="write one top-down PNG per episode here (a subfolder per agent with --baseline)")


def run(args: argparse.Namespace) -> int:
    from valan.errors import InputError
    from valan.io import read_json

    if args.baseline is not None:
        return score_baselines(args)
    if args.checkpoint is not None:
        from valan.distributed.evaluation import TrainedCheckpoint
        from valan.io import write_json

        trained = TrainedCheckpoint.load(args.checkpoint)
        if trained.problem.name != "r2r":
            raise InputError(f"a {trained.problem.name!r} checkpoint, not an R2R one", source=trained.source)
        unscored = args.save_predictions is not None and _first_without_reference(args) is not None
        if not unscored:
            _require_references(args)
        _load(args)  # --data is checked on the graph (one line naming the file) before the agent acts on it
        predictions = trained.predictions(args.data, args.connectivity, progress=True)
        if unscored:
            write_json(args.save_predictions, predictions, indent=None)
            print(f"{args.data} has episodes without reference paths (a test split?): wrote {len(predictions)} "
                  f"predictions to {args.save_predictions}, not scored")
            return 0
        status = score_predictions(args, predictions, source=str(args.checkpoint))
        if args.save_predictions is not None:
            write_json(args.save_predictions, predictions, indent=None)
        return status
    if args.predictions is None:
        raise InputError("nothing to score: give --predictions FILE, --checkpoint CKPT or --baseline "
                         "{random,shortest,stop,all}")
    return score_predictions(args, read_json(args.predictions), source=str(args.predictions))


def score_predictions(args: argparse.Namespace, predictions: object, source: str) -> int:
    """Check and score ``predictions`` (leaderboard-format records) on ``args.data``; print; plot when asked.

    ``source`` names where the predictions came from in error messages. Nothing is written unless every
    prediction is valid.
    """
    episodes, connectivity = _load(args)
    _require_references(args, episodes)
    results = {source: _evaluate(args, episodes, connectivity, predictions, source)}
    _report(args, results, connectivity, single=True)
    return 0


def score_baselines(args: argparse.Namespace) -> int:
    """Score the baseline agents named by ``args.baseline`` on ``args.data``; print; plot when asked."""
    from valan.problems.r2r.baselines import BASELINES, baseline_predictions

    episodes, connectivity = _load(args)
    names = BASELINES if args.baseline == "all" else (args.baseline,)
    results = {}
    for name in names:
        predictions = baseline_predictions(name, episodes, connectivity, seed=args.seed)
        results[name] = _evaluate(args, episodes, connectivity, predictions, f"{name} baseline")
    _report(args, results, connectivity, single=False)
    return 0


def _first_without_reference(args: argparse.Namespace, episodes: list | None = None) -> str | None:
    """The instr_id of the first episode of ``args.data`` (``episodes``, when already loaded from it) that has no
    reference path (test splits), or None."""
    from valan.envs.r2r.dataset import load_r2r

    episodes = load_r2r(args.data) if episodes is None else episodes
    return next((ep.instr_id for ep in episodes if not ep.has_reference), None)


def _require_references(args: argparse.Namespace, episodes: list | None = None) -> None:
    """``InputError`` pointing to ``valan predict`` when ``args.data`` (``episodes``, when already loaded from it)
    cannot be scored (no reference paths)."""
    from valan.errors import InputError

    instr_id = _first_without_reference(args, episodes)
    if instr_id is not None:
        raise InputError(f"instr_id {instr_id}: no reference path (a test split?), so nothing can be scored; "
                         f"write a checkpoint's predictions with `valan predict r2r --checkpoint CKPT --data "
                         f"{args.data} --output FILE`", source=str(args.data))


def _load(args: argparse.Namespace) -> tuple[list, Any]:
    from valan.envs.r2r.dataset import load_r2r
    from valan.envs.r2r.graph import Connectivity

    connectivity = Connectivity(args.connectivity)
    return load_r2r(args.data, connectivity), connectivity


def _evaluate(args: argparse.Namespace, episodes: list, connectivity: Any, predictions: object,
              source: str) -> dict[str, Any]:
    from valan.envs.r2r.metrics import evaluate_r2r, parse_predictions

    summary, per_episode = evaluate_r2r(episodes, predictions, connectivity, predictions_source=source,
                                        data_source=str(args.data))
    return {"summary": summary, "per_episode": per_episode, "episodes": episodes,
            "trajectories": parse_predictions(predictions, source) if args.plot_dir else None}


def _report(args: argparse.Namespace, results: dict[str, dict[str, Any]], connectivity: Any, single: bool) -> None:
    """Write plots (after every result is known to be valid), then print JSON or tables."""
    if args.plot_dir is not None:
        for name, result in results.items():
            _plot(args.plot_dir if single else args.plot_dir / name, result, connectivity)
    if args.json:
        objects = {name: _json_object(result, args.per_episode) for name, result in results.items()}
        print(json.dumps(next(iter(objects.values())) if single else objects))
        return
    first = next(iter(results.values()))["summary"]
    print(f"R2R evaluation of {args.data}: {first['num_episodes']} episodes; success = navigation error < 3.0 m")
    names = list(results)
    labels = [Path(n).name if single else n for n in names]
    widths = [max(10, len(label)) for label in labels]
    print(f"{'metric':<28}" + "".join(f"  {label:>{w}}" for label, w in zip(labels, widths)))
    for key, label in ROWS:
        print(f"{label:<28}" + "".join(f"  {results[n]['summary'][key]:>{w}.3f}" for n, w in zip(names, widths)))
    if args.per_episode:
        for name in names:
            print(f"\nper episode ({name}):")
            print(f"{'instr_id':<12} {'success':>7} {'NE m':>7} {'SPL':>6} {'TL m':>7} {'steps':>5} "
                  f"{'nDTW':>6} {'SDTW':>6} {'CLS':>6}")
            for e in results[name]["per_episode"]:
                print(f"{e['instr_id']:<12} {'yes' if e['success'] else 'no':>7} {e['nav_error']:>7.2f} "
                      f"{e['spl']:>6.3f} {e['trajectory_length']:>7.2f} {e['steps']:>5d} {e['ndtw']:>6.3f} "
                      f"{e['sdtw']:>6.3f} {e['cls']:>6.3f}")


def _json_object(result: dict[str, Any], per_episode: bool) -> dict[str, Any]:
    obj: dict[str, Any] = dict(result["summary"])
    if per_episode:
        obj["episodes"] = result["per_episode"]
    return obj


def _plot(directory: Path, result: dict[str, Any], connectivity: Any) -> None:
    from tqdm import tqdm

    from valan.problems.r2r.plots import write_episode_plot

    for episode, scored in tqdm(list(zip(result["episodes"], result["per_episode"])), desc=f"plots -> {directory}",
                                unit="episode", disable=None):
        write_episode_plot(directory, connectivity.graph(episode.scan), scored, episode.path,
                           result["trajectories"][episode.instr_id], episode.instruction)
