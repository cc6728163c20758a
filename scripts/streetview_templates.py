"""Template instructions on Street View routes: generated language to probe map2seq generalisation (docs/unseen.md).

A *light* here is an intersection cluster: a connected group of panoramas with three or more outgoing links. A
template route starts on a street (a panorama with two links), passes 0-2 lights, turns left or right at the next
one, 1-3 times, and stops at the next light or a few panoramas after the last turn; its instruction says exactly
that ("Go past 2 intersections and turn left at the third one. Stop at the next light."). Routes never revisit a
panorama, stay on one side of the unseen area's polygon and hold 15-48 panoramas (the human map2seq routes: 40
median). The records are map2seq JSON lines, ready for ``data.train`` or ``valan evaluate streetview``.

    python scripts/streetview_templates.py routes --graph ../shared/data/streetview/graph --out FILE
        [--count 3000] [--seed 0] [--area outside|inside]
    python scripts/streetview_templates.py agreement --graph ../shared/data/streetview/graph --data FILE

``routes --area inside`` samples routes inside the unseen area instead: a follower trained on templates outside
it shows there whether it learned to count lights and turn in streets it never saw. ``agreement`` measures how
well this notion of a light matches human instructions: for each route whose text names an ordinal light before
its first turn, with no turn in an earlier sentence ("Pass the first light. Turn left at the 2nd light."), it
compares the ordinal with the clusters the route enters up to that turn, and prints JSON. Bad input: one line on
stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from valan.envs.streetview.dataset import StreetViewRoute, load_routes
from valan.envs.streetview.graph import StreetGraph, load_graph
from valan.envs.streetview.navigation import FORWARD, discrete_move, signed_rotation
from valan.envs.streetview.split import UNSEEN_AREA_FILE, panoramas_inside, read_unseen_area
from valan.errors import InputError
from valan.io import atomic_write

NOT_A_LIGHT = -1
TURN_DEGREES = (45.0, 135.0)  # a turn's rotation from the heading of arrival, either way
ROUTE_PANORAMAS = (15, 48)
ORDINALS = {1: ("1st", "first"), 2: ("2nd", "second"), 3: ("3rd", "third")}
STOP_AT_LIGHT = ("Stop at the next light.", "Stop at the next intersection.", "Go straight and stop at the next light.")
STOP_AFTER_TURN = ("Stop a few steps after the turn.", "Stop shortly after turning.", "Go a little further and stop.")


def light_clusters(graph: StreetGraph) -> np.ndarray:
    """``(N,)`` int64: the intersection cluster of each panorama (``NOT_A_LIGHT`` off intersections)."""
    junction = np.diff(graph.link_offsets) >= 3
    cluster = np.full(len(graph), NOT_A_LIGHT, np.int64)
    count = 0
    for seed in np.flatnonzero(junction):
        if cluster[seed] != NOT_A_LIGHT:
            continue
        cluster[seed] = count
        stack = [int(seed)]
        while stack:
            for v in graph.neighbors(stack.pop()):
                if junction[v] and cluster[v] == NOT_A_LIGHT:
                    cluster[v] = count
                    stack.append(int(v))
        count += 1
    return cluster


class TemplateSampler:
    """Samples template routes on the panoramas where ``allowed`` is true; see the module docstring."""

    def __init__(self, graph: StreetGraph, allowed: np.ndarray, seed: int = 0):
        self.graph, self.allowed = graph, allowed
        self.cluster = light_clusters(graph)
        self.rng = random.Random(seed)
        self.starts = np.flatnonzero((np.diff(graph.link_offsets) == 2) & allowed).tolist()
        if not self.starts:
            raise InputError("no street panorama (two links) in the chosen area")

    def sample(self, max_tries: int = 100_000) -> tuple[list[int], str, float]:
        """``(route panorama indices, instruction, start heading in degrees)``."""
        for _ in range(max_tries):
            walk = _Walk(self)
            text = walk.run()
            if text is not None and ROUTE_PANORAMAS[0] <= len(walk.route) <= ROUTE_PANORAMAS[1]:
                return walk.route, text, walk.start_heading
        raise InputError(f"no template route found in {max_tries} tries (is the area too small?)")

    def light_word(self, plural: bool) -> str:
        return self.rng.choice(("light", "intersection")) + ("s" if plural else "")


class _Walk:
    """One attempt at a template route: FORWARD along streets, turning at chosen lights."""

    def __init__(self, sampler: TemplateSampler):
        self.s, self.g, self.rng = sampler, sampler.graph, sampler.rng
        self.node = self.rng.choice(sampler.starts)
        self.start_heading = self.heading = float(self.rng.choice(self.g.links(self.node)[0].tolist()))
        self.route, self.visited = [self.node], {self.node}

    def _open(self, node: int) -> bool:
        return node not in self.visited and bool(self.s.allowed[node])

    def _step(self, node: int, heading: float) -> None:
        self.node, self.heading = node, heading
        self.route.append(node)
        self.visited.add(node)

    def _forward(self) -> bool:
        """FORWARD, unless it bends the street by more than a turn's angle (a T-junction, a corner)."""
        node, heading = discrete_move(self.g, self.node, self.heading, FORWARD)
        if node == self.node or not self._open(node) or abs(signed_rotation(self.heading, heading)) > TURN_DEGREES[0]:
            return False
        self._step(node, heading)
        return True

    def _to_light(self, count: int) -> bool:
        """FORWARD until the ``count``-th light entered."""
        entered, last = 0, self.s.cluster[self.node]
        for _ in range(60):
            if not self._forward():
                return False
            here = self.s.cluster[self.node]
            if here != NOT_A_LIGHT and here != last:
                entered += 1
                if entered == count:
                    return True
            last = here
        return False

    def _turn(self, side: int) -> bool:
        """Within the current light, take the first link turning ``side`` (-1 left, +1 right) and follow it."""
        light = self.s.cluster[self.node]
        for _ in range(4):
            headings, targets = self.g.links(self.node)
            for h, t in zip(headings.tolist(), targets.tolist()):
                if TURN_DEGREES[0] <= side * signed_rotation(self.heading, h) <= TURN_DEGREES[1] and self._open(t):
                    self.heading = h
                    return self._forward()
            if not self._forward() or self.s.cluster[self.node] != light:
                return False
        return False

    def _segment_text(self, count: int, side: int, first: bool) -> str:
        turn, rng = f"turn {'left' if side < 0 else 'right'}", self.rng
        if count == 1:
            return f"At the {rng.choice(('first', 'next') if first else ('next',))} {self.s.light_word(False)} {turn}."
        verb = rng.choice(("Go straight", "Walk", "Head", "Go"))
        passed = self.s.light_word(count > 2)
        if rng.random() < 0.5:
            return f"{verb} past {count - 1} {passed} and {turn} at the {rng.choice(ORDINALS[count])} one."
        which = "next" if count == 2 else str(count - 1)
        return f"{verb} past the {which} {passed}. {turn.capitalize()} at the {rng.choice(ORDINALS[count])} " \
               f"{self.s.light_word(False)}."

    def run(self) -> str | None:
        """The instruction, or ``None`` where the walk ran into a visited panorama, the area's edge or a dead end."""
        sentences = []
        for t in range(self.rng.randint(1, 3)):
            count, side = self.rng.choice((1, 1, 2, 2, 3)), self.rng.choice((-1, 1))
            if not (self._to_light(count) and self._turn(side)):
                return None
            sentences.append(self._segment_text(count, side, t == 0))
        if self.rng.random() < 0.5:
            if not self._to_light(1):
                return None
            sentences.append(self.rng.choice(STOP_AT_LIGHT))
        else:
            for _ in range(self.rng.randint(1, 4)):
                if not self._forward() or self.s.cluster[self.node] != NOT_A_LIGHT:
                    return None
            sentences.append(self.rng.choice(STOP_AFTER_TURN))
        return " ".join(sentences)


def area_mask(graph: StreetGraph, graph_dir: Path, area: str) -> np.ndarray:
    """Panoramas outside (or, for ``area="inside"``, inside) the polygon of ``graph_dir/unseen_area_bbox.txt``."""
    inside = panoramas_inside(graph, read_unseen_area(graph_dir / UNSEEN_AREA_FILE))
    return inside if area == "inside" else ~inside


def template_records(graph: StreetGraph, allowed: np.ndarray, count: int, seed: int) -> list[dict]:
    """``count`` map2seq records (ids ``template-0``, ...)."""
    sampler = TemplateSampler(graph, allowed, seed)
    records = []
    for i in range(count):
        route, text, heading = sampler.sample()
        records.append({"id": f"template-{i}", "route_panoids": [graph.panoids[n] for n in route],
                        "navigation_text": text, "start_heading": heading})
    return records


_ORDINAL_LIGHT = re.compile(r"\b(1st|2nd|3rd|4th|5th|first|second|third|fourth|fifth) (?:traffic )?"
                            r"(?:light|intersection)")
_ORDINAL_VALUE = {"1st": 1, "first": 1, "2nd": 2, "second": 2, "3rd": 3, "third": 3, "4th": 4, "fourth": 4,
                  "5th": 5, "fifth": 5}


def ordinal_agreement(graph: StreetGraph, routes: Sequence[StreetViewRoute]) -> dict:
    """How often a human instruction's first ordinal light equals the number of clusters the route enters up to
    its first turn (a link more than 45 degrees off the previous one); only instructions that name no turn in a
    sentence before that light's count."""
    cluster = light_clusters(graph)
    offsets: collections.Counter[int] = collections.Counter()
    for r in routes:
        text = r.navigation_text.lower()
        match = _ORDINAL_LIGHT.search(text)
        if match is None or "turn" in text[:text.rfind(". ", 0, match.start()) + 1]:
            continue  # no ordinal light, or a turn named in an earlier sentence
        nodes = [graph.node(p) for p in r.route]
        headings = [float(graph.link_heading[_link(graph, a, b)]) for a, b in zip(nodes, nodes[1:])]
        turn = next((i for i in range(1, len(headings))
                     if abs(signed_rotation(headings[i - 1], headings[i])) > TURN_DEGREES[0]), None)
        if turn is None:
            continue
        entered, last = 0, cluster[nodes[0]]
        for node in nodes[1:turn + 1]:
            entered += bool(cluster[node] != NOT_A_LIGHT and cluster[node] != last)
            last = cluster[node]
        offsets[entered - _ORDINAL_VALUE[match.group(1)]] += 1
    n = sum(offsets.values())
    return {"routes": len(routes), "with_ordinal_light": n, "exact": offsets[0] / n if n else None,
            "within_one": (offsets[-1] + offsets[0] + offsets[1]) / n if n else None,
            "clusters_minus_ordinal": {str(k): offsets[k] for k in sorted(offsets)}}


def _link(graph: StreetGraph, a: int, b: int) -> int:
    """Global index of the link from ``a`` to ``b`` (routes walk along links: ``load_routes`` checks it)."""
    targets = graph.links(a)[1].tolist()
    return int(graph.link_offsets[a]) + targets.index(b)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    routes = commands.add_parser("routes", help="write template routes as map2seq JSON lines")
    routes.add_argument("--graph", type=Path, required=True, help="folder with nodes.txt, links.txt and "
                        f"{UNSEEN_AREA_FILE}")
    routes.add_argument("--out", type=Path, required=True)
    routes.add_argument("--count", type=int, default=3000, help="routes to write (default 3000)")
    routes.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    routes.add_argument("--area", choices=("outside", "inside"), default="outside",
                        help="sample outside the unseen area (training data) or inside it (a check)")
    agreement = commands.add_parser("agreement", help="how well human ordinal lights match the clusters")
    agreement.add_argument("--graph", type=Path, required=True)
    agreement.add_argument("--data", type=Path, required=True, help="map2seq or Touchdown JSON lines")
    args = parser.parse_args(argv)
    try:
        graph = load_graph(args.graph)
        if args.command == "routes":
            if args.count < 1:
                raise InputError(f"--count must be positive, got {args.count}")
            records = template_records(graph, area_mask(graph, args.graph, args.area), args.count, args.seed)
            with atomic_write(args.out) as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
            lengths = [len(r["route_panoids"]) for r in records]
            print(json.dumps({"out": str(args.out), "routes": len(records), "area": args.area,
                              "median_panoramas": float(np.median(lengths)), "max_panoramas": max(lengths)}))
        else:
            print(json.dumps(ordinal_agreement(graph, load_routes(args.data, graph=graph))))
    except InputError as e:
        print(f"streetview_templates: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
