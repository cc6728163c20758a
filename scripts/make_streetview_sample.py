"""Regenerate the bundled Street View sample in ``data/streetview/`` from the full Touchdown/map2seq data.

Usage: python scripts/make_streetview_sample.py --streetview ../shared/data/streetview --out data/streetview

The sample is the StreetLearn sub-graph inside a latitude/longitude box of lower Manhattan (every panorama in
the box and every link between two of them, in the original file order) and every route of the Touchdown dev
sample and of map2seq's seen dev split that lies entirely inside the box, records unchanged. Panoramas on the
box's border keep only their links inside it.
"""

import argparse
import json
from pathlib import Path

# (south, west, north, east) in degrees: 1,710 panoramas holding 21 Touchdown and 47 map2seq dev routes.
DEFAULT_BOX = (40.714, -74.002, 40.724, -73.994)
ROUTE_FILES = {"touchdown_sample.jsonl": "touchdown_unseen_dev_sample.jsonl",
               "map2seq_sample.jsonl": "map2seq_seen_dev.jsonl"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streetview", type=Path, required=True,
                        help="folder with graph/nodes.txt, graph/links.txt and the route files")
    parser.add_argument("--out", type=Path, default=Path("data/streetview"))
    parser.add_argument("--box", type=float, nargs=4, default=DEFAULT_BOX, metavar=("SOUTH", "WEST", "NORTH", "EAST"),
                        help="latitude/longitude box, degrees")
    args = parser.parse_args()
    south, west, north, east = args.box
    (args.out / "graph").mkdir(parents=True, exist_ok=True)

    node_lines, inside = [], set()
    for line in (args.streetview / "graph" / "nodes.txt").read_text().splitlines():
        panoid, _, lat, lng = line.split(",")
        if south <= float(lat) <= north and west <= float(lng) <= east:
            node_lines.append(line)
            inside.add(panoid)
    link_lines = [line for line in (args.streetview / "graph" / "links.txt").read_text().splitlines()
                  if line.split(",")[0] in inside and line.split(",")[2] in inside]
    (args.out / "graph" / "nodes.txt").write_text("\n".join(node_lines) + "\n")
    (args.out / "graph" / "links.txt").write_text("\n".join(link_lines) + "\n")
    print(f"graph: {len(node_lines)} panoramas, {len(link_lines)} links")

    for name, source in ROUTE_FILES.items():
        lines = [line for line in (args.streetview / source).read_text().splitlines()
                 if line.strip() and all(p in inside for p in json.loads(line)["route_panoids"])]
        (args.out / name).write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} routes from {source}")


if __name__ == "__main__":
    main()
