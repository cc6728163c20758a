"""Trajectory pictures of scored Touchdown / map2seq routes: the top-down drawing of
``valan.envs.streetview.drawing`` (the one ``TouchdownEnv.render`` returns) titled with the episode's outcome
(task completion, SPD in hops, SED) and its instruction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from valan.envs.drawing import save_png
from valan.envs.streetview.drawing import draw_streetview_episode
from valan.envs.streetview.graph import StreetGraph


def write_route_plot(directory: str | os.PathLike, graph: StreetGraph, result: dict, route: Sequence[str],
                     trajectory: Sequence[str], instruction: str = "") -> Path:
    """Write ``{id}.png`` for one scored route (``result``: a per-episode record of
    ``valan.envs.streetview.metrics.evaluate_streetview``) into ``directory``, atomically; returns the path."""
    title = (f"{result['id']}  {'success' if result['task_completion'] else 'failure'}  TC {result['task_completion']:.0f}"
             f"  SPD {result['spd']} hops  SED {result['sed']:.2f}")
    image = draw_streetview_episode(graph, route, trajectory, title, instruction)
    return save_png(image, directory, result["id"])
