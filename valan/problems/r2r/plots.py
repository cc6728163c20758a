"""Trajectory pictures of scored R2R episodes: the top-down drawing of ``valan.envs.r2r.drawing`` (the one
``R2REnv.render`` returns) titled with the episode's outcome (success, SPL, NE, nDTW) and its instruction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from valan.envs.drawing import save_png
from valan.envs.r2r.drawing import draw_r2r_episode
from valan.envs.r2r.graph import ScanGraph
from valan.envs.r2r.metrics import SUCCESS_THRESHOLD


def write_episode_plot(directory: str | os.PathLike, graph: ScanGraph, result: dict, reference: Sequence[str],
                       trajectory: Sequence[str], instruction: str = "") -> Path:
    """Write ``{instr_id}.png`` for one scored episode (``result`` from ``valan.envs.r2r.metrics.score_episode`` plus
    ``instr_id``) into ``directory``, atomically; returns the path."""
    title = (f"{result['instr_id']}  {'success' if result['success'] else 'failure'}  SPL {result['spl']:.2f}  "
             f"NE {result['nav_error']:.2f} m  nDTW {result['ndtw']:.2f}")
    image = draw_r2r_episode(graph, reference, trajectory, title, instruction, success_radius=SUCCESS_THRESHOLD)
    return save_png(image, directory, result["instr_id"])
