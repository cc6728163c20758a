"""Baseline R2R agents that need no training, producing leaderboard-format predictions.

- ``stop``: stays at the start viewpoint.
- ``shortest``: follows a shortest path to the goal (an oracle that reads the goal; an upper bound).
- ``random``: a seeded uniformly random policy over the environment's actions: at each viewpoint it picks STOP or
  one of the neighbouring viewpoints with equal probability, for at most ``max_moves`` moves.

A trajectory entry is ``[viewpoint, heading, elevation]`` (radians); after a move the heading points along the
move, clockwise from +y as in R2R, and the elevation is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from valan.envs.r2r.dataset import R2REpisode
from valan.envs.r2r.graph import Connectivity, ScanGraph

BASELINES = ("random", "shortest", "stop")


def _walk(graph: ScanGraph, episode: R2REpisode, viewpoints: Sequence[str]) -> list[list]:
    """Leaderboard trajectory of a walk starting at the episode's start."""
    trajectory = [[viewpoints[0], episode.heading, 0.0]]
    for a, b in zip(viewpoints[:-1], viewpoints[1:]):
        trajectory.append([b, graph.heading(a, b), 0.0])
    return trajectory


def random_walk(graph: ScanGraph, start: str, rng: np.random.Generator, max_moves: int = 12) -> list[str]:
    """Viewpoints of a uniformly random policy over {STOP} + neighbours, at most ``max_moves`` moves."""
    path = [start]
    for _ in range(max_moves):
        neighbours = graph.neighbors[graph.local_index(path[-1])]
        choice = int(rng.integers(len(neighbours) + 1))
        if choice == 0:
            break
        path.append(graph.viewpoints[int(neighbours[choice - 1])])
    return path


def baseline_predictions(name: str, episodes: Sequence[R2REpisode], connectivity: Connectivity,
                         seed: int = 0, max_moves: int = 12) -> list[dict]:
    """Predictions ``[{"instr_id", "trajectory"}]`` of baseline ``name`` (one of ``BASELINES``) on ``episodes``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
    rng = np.random.default_rng(seed)
    predictions = []
    for episode in episodes:
        graph = connectivity.graph(episode.scan)
        if name == "stop":
            path = [episode.start]
        elif name == "shortest":
            path = graph.shortest_path(episode.start, episode.goal)
        else:
            path = random_walk(graph, episode.start, rng, max_moves)
        predictions.append({"instr_id": episode.instr_id, "trajectory": _walk(graph, episode, path)})
    return predictions
