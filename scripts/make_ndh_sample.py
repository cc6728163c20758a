"""Build the bundled NDH *format* sample (``data/ndh/NDH_sample_{train,val}.json``) from the bundled R2R sample.

This is not CVDN data: no dialog is real. It exists so that the NDH loader, environment, evaluator and training
run on a fresh machine in the exact format of CVDN's NDH release. Deterministically, for every R2R instruction
(``path_id``, instruction ``i``) on its path ``v_0 .. v_n``:

- ``inst_idx`` = ``3 * path_id + i``, ``game_idx`` = ``path_id``; ``target`` = the instruction's last word;
- ``dialog_history``: per sentence of the instruction, a navigator question (a fixed one, varied by position)
  followed by the sentence as the oracle's answer, ``nav_idx`` 0; ``nav_history`` = ``[v_0]``;
- ``start_pano`` = ``{heading: the path's heading, elevation: 0, pano: v_0}``, ``nav_camera`` = ``[]``;
- ``end_panos`` = the goal ``v_n`` and its graph neighbours within 2 m (the goal neighbourhood);
- ``planner_path`` = the first (at most) 5 hops of a shortest path from ``v_0`` to the nearest ``end_panos``
  viewpoint, as CVDN's planner shows;
- ``player_path`` = the R2R path, for odd ``i`` stopped one viewpoint short (so that ``trusted_path`` falls back to
  the planner when the player missed the planner's goal).

Usage: ``python scripts/make_ndh_sample.py [--train R2R_FILE] [--val R2R_FILE] [--connectivity DIR] [--out DIR]``
(defaults: the bundled ``data/R2R_sample_train.json`` -> train, ``data/R2R_sample_val_seen.json`` -> val, into
``data/ndh``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from valan.envs.r2r.dataset import load_r2r
from valan.envs.r2r.graph import Connectivity
from valan.io import write_json

QUESTIONS = ("which way should i go?", "where to next?", "where do i go now?", "and then?")
REGION_RADIUS = 2.0  # metres around the goal that the end region covers
PLANNER_HOPS = 5


def sentences(instruction: str) -> list[str]:
    """The instruction's sentences (split after . ! ?), stripped, empty ones dropped."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", instruction.strip()) if s.strip()]


def ndh_records(r2r_file: Path, connectivity: Connectivity) -> list[dict]:
    records = []
    for ep in load_r2r(r2r_file, connectivity):
        graph = connectivity.graph(ep.scan)
        path, goal = list(ep.path), ep.goal
        index = int(ep.instr_id.rsplit("_", 1)[1])
        region = [goal] + sorted(vp for vp in graph.viewpoints
                                 if vp != goal and graph.adjacent(vp, goal) and graph.distance(vp, goal) <= REGION_RADIUS)
        nearest = min(region, key=lambda vp: (graph.distance(path[0], vp), region.index(vp)))
        planner = graph.shortest_path(path[0], nearest)[: PLANNER_HOPS + 1]
        player = path[:-1] if index % 2 == 1 and len(path) > 2 else path
        words = re.findall(r"[A-Za-z]+", ep.instruction)
        turns = []
        for k, sentence in enumerate(sentences(ep.instruction)):
            turns.append({"nav_idx": 0, "role": "navigator", "message": QUESTIONS[k % len(QUESTIONS)]})
            turns.append({"nav_idx": 0, "role": "oracle", "message": sentence})
        records.append({
            "inst_idx": 3 * ep.path_id + index, "scan": ep.scan, "target": words[-1].lower() if words else "room",
            "start_pano": {"heading": ep.heading, "elevation": 0.0, "pano": path[0]}, "nav_camera": [],
            "dialog_history": turns, "nav_history": [path[0]], "game_idx": ep.path_id, "end_panos": region,
            "player_path": player, "planner_path": planner})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=Path("data/R2R_sample_train.json"), help="R2R file -> train")
    parser.add_argument("--val", type=Path, default=Path("data/R2R_sample_val_seen.json"), help="R2R file -> val")
    parser.add_argument("--connectivity", type=Path, default=Path("data/connectivity"))
    parser.add_argument("--out", type=Path, default=Path("data/ndh"))
    args = parser.parse_args()
    connectivity = Connectivity(args.connectivity)
    for source, name in ((args.train, "NDH_sample_train.json"), (args.val, "NDH_sample_val.json")):
        records = ndh_records(source, connectivity)
        write_json(args.out / name, records, indent=None)
        print(f"{args.out / name}: {len(records)} instances from {source}")


if __name__ == "__main__":
    main()
