"""``valan augment paths``: sample R2R-like shortest paths over given scans for speaker data augmentation.

Writes an R2R-format file (``distance`` in metres, ``scan``, ``path_id``, ``path``, ``heading`` in radians,
``instructions: []``) atomically; ``valan speak`` then fills the instructions. Path ids are
``--first-path-id``, ``--first-path-id + 1``, ... (R2R's own ids are below 10,000, so the default never collides
with them). Sampling: :mod:`valan.envs.r2r.sampling`.
"""

from __future__ import annotations

import argparse

HELP = ("sample R2R-like shortest paths (4-6 edges, 5-25 m by default) over given scans into an R2R-format file "
        "without instructions (deterministic per seed)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from valan.envs.r2r.sampling import PathLimits

    limits = PathLimits()
    parser.add_argument("--connectivity", required=True, help="folder of {scan}_connectivity.json files")
    scans = parser.add_mutually_exclusive_group(required=True)
    scans.add_argument("--scans", nargs="+", metavar="SCAN", help="scan ids to sample paths in")
    scans.add_argument("--scans-of", metavar="FILE",
                       help="sample in the scans of this R2R-format file (e.g. the training file)")
    parser.add_argument("--count", type=int, required=True, help="number of paths")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same paths)")
    parser.add_argument("--output", required=True, help="R2R-format JSON file to write")
    parser.add_argument("--first-path-id", type=int, default=1_000_000, help="path_id of the first path")
    parser.add_argument("--min-edges", type=int, default=limits.min_edges, help="fewest edges of a path")
    parser.add_argument("--max-edges", type=int, default=limits.max_edges, help="most edges of a path")
    parser.add_argument("--min-metres", type=float, default=limits.min_metres, help="shortest path length, metres")
    parser.add_argument("--max-metres", type=float, default=limits.max_metres, help="longest path length, metres")


def run(args: argparse.Namespace) -> int:
    from valan.envs.r2r.dataset import parse_r2r
    from valan.envs.r2r.graph import Connectivity
    from valan.envs.r2r.sampling import PathLimits, sample_paths
    from valan.io import read_json, write_json

    connectivity = Connectivity(args.connectivity)
    scans = args.scans
    if args.scans_of is not None:
        scans = sorted({episode.scan for episode in parse_r2r(read_json(args.scans_of), source=args.scans_of)})
    limits = PathLimits(args.min_edges, args.max_edges, args.min_metres, args.max_metres)
    paths = sample_paths(connectivity, scans, args.count, args.seed, limits, progress=True)
    write_json(args.output, [p.record(args.first_path_id + n) for n, p in enumerate(paths)])
    used = len({p.scan for p in paths})
    print(f"sampled {len(paths)} paths in {used} of {len(set(scans))} scans "
          f"(path_ids {args.first_path_id}..{args.first_path_id + len(paths) - 1}) -> {args.output}")
    return 0
