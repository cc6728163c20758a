"""Small hand-made graphs shared by several test files."""

from __future__ import annotations

from pathlib import Path

from valan.envs.r2r.graph import build_scan_graph

# A plus-shaped intersection X with arms N (north), E, S, W; N continues north to N2 and then to the dead end D.
# E bends: its onward link leaves at 100 degrees. Headings are degrees clockwise from north.
NODES = {"X": 0, "N": 10, "E": 20, "S": 30, "W": 40, "N2": 50, "D": 60, "E2": 70}
LINKS = [("X", 0, "N"), ("X", 90, "E"), ("X", 180, "S"), ("X", 270, "W"),
         ("N", 180, "X"), ("N", 2, "N2"), ("N2", 182, "N"), ("N2", 359, "D"), ("D", 179, "N2"),
         ("E", 270, "X"), ("E", 100, "E2"), ("E2", 280, "E"),
         ("S", 0, "X"), ("W", 90, "X")]


def write_graph(directory: Path, nodes: dict[str, int] = NODES, links: list = LINKS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nodes.txt").write_text("".join(f"{p},{yaw},40.7,-74.0\n" for p, yaw in nodes.items()))
    (directory / "links.txt").write_text("".join(f"{a},{h},{b}\n" for a, h, b in links))
    return directory


def square_graph():
    """Four viewpoints on a 2 m square in the z = 0 plane, plus one 1 m up the stairs from d."""
    poses = {"a": (0, 0, 0), "b": (0, 2, 0), "c": (2, 2, 0), "d": (2, 0, 0), "e": (2, -1, 1)}
    names = list(poses)
    records = []
    for name in names:
        x, y, z = poses[name]
        records.append({"image_id": name, "included": True, "pose": [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1],
                        "unobstructed": [True] * len(names)})
    return build_scan_graph("toy", records)
