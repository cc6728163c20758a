"""Movement rules and the route-following oracle on a ``StreetGraph`` (pure functions, no episode state).

Angles are degrees clockwise from north, in ``[0, 360)``. The agent's state is a panorama and a heading.

**Facing link.** At panorama ``p`` with heading ``h``, the agent *faces* the outgoing link whose heading is
closest to ``h`` (smallest absolute angle); on a tie (``h`` exactly between two links, frequent with integer
headings) the link listed first in ``links.txt`` wins, as in Touchdown's navigator and VALAN. Every discrete
action is defined relative to the facing link:

- ``FORWARD``: move along the facing link to its end panorama and take the link's heading.
- ``LEFT`` / ``RIGHT``: stay, and turn to the heading of the nearest link counter-clockwise / clockwise of the
  facing link (the next link in circular heading order; links with the facing link's exact heading are
  skipped). With a single outgoing link the heading snaps to it.
- ``STOP``: ends the episode (handled by the environment).

Consequences, pinned by the tests:

- *Start.* An episode's ``start_heading`` need not be a link heading (every Touchdown route starts at 0).
  The heading is **not** snapped at reset; the first action is taken relative to the facing link, so FORWARD
  moves along the link nearest the start heading and LEFT/RIGHT turn to the links beside it.
- *After FORWARD* the heading is that of the link just travelled, which is usually within a few degrees of a
  link of the new panorama (streets continue), so the next FORWARD continues straight on.
- *Dead end* (one outgoing link, pointing back): that link is the facing one, so FORWARD turns around and goes
  back; LEFT and RIGHT turn to face it. The agent may enter a dead end.
- A panorama without outgoing links (a cut border of a sub-graph): every move is a no-op.

Differences from the Touchdown navigator (``base_navigator.py``) and VALAN's ``streetview_common``, which
key links by integer heading and require the heading to equal a link heading exactly: there, FORWARD with a
heading that matches no link (only possible at the start) stays put and only snaps the heading; after FORWARD
the heading snaps to the link of the *new* panorama nearest the old heading (valan keeps the travelled link's
heading and takes the same link as the facing one); a move into a panorama with fewer than two links is
refused (VALAN then ends the episode). valan allows those moves because 6 of 1,600 map2seq routes end at such a
panorama. Replaying valan's oracle actions under the Touchdown navigator's rules visits the same panoramas on
1,594 of the 1,600 map2seq dev and test routes (which start on a link heading); the other 6 are the refused
dead ends.

**Panoramic actions** (VALAN's option): ``bins`` bins of ``360 / bins`` degrees (18 x 20) plus STOP. Bin ``b``
points at ``heading - 180 + b * 360 / bins`` (egocentric, so bin ``bins // 2`` is straight ahead). The agent
moves along the link nearest that direction when it lies within ``window`` degrees (40, VALAN's
``pano_heading_window``) and takes the link's heading; otherwise it turns in place to that direction.

**Oracle.** On the route (at ``route[progress]``) the target is the next route panorama; at the route's end, or
at the goal, STOP. Off the route the target is an outgoing neighbour with the fewest hops to the goal
(undirected breadth-first distances), ties to the one needing the smallest turn from the facing link. The
discrete action toward a target is FORWARD when the facing link leads to it, otherwise the turn of the shorter
rotation (RIGHT when the target link is 0-180 degrees clockwise of the facing link, LEFT from 180 degrees on,
as in map2seq's oracle); repeated turns reach the target monotonically.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from valan.envs.streetview.graph import UNREACHABLE, StreetGraph

FORWARD, LEFT, RIGHT, STOP = 0, 1, 2, 3
LINK_SECTORS = 8  # 45-degree sectors around the agent's heading in a link layout
NUM_DISCRETE_ACTIONS = 4
PANORAMIC_BINS = 18
PANORAMIC_WINDOW = 40.0
NO_LINK = -1


def clockwise(a: float, b: float) -> float:
    """Clockwise rotation from heading ``a`` to heading ``b``, degrees in ``[0, 360)``."""
    return (b - a) % 360.0


def signed_rotation(a: float, b: float) -> float:
    """Rotation from heading ``a`` to heading ``b``, degrees in ``(-180, 180]``, clockwise positive."""
    return 180.0 - clockwise(b, a + 180.0)


def angle_between(a: float, b: float) -> float:
    """Unsigned angle between two headings, degrees in ``[0, 180]``."""
    cw = clockwise(a, b)
    return min(cw, 360.0 - cw)


def link_layout(graph: StreetGraph, node: int, heading: float) -> np.ndarray:
    """Where ``node``'s outgoing links lead relative to ``heading``: int8 ``(LINK_SECTORS,)``, 1 for each
    45-degree sector holding a link. Sector 0 is centred straight ahead (-22.5 to 22.5 degrees), then clockwise
    (1 = ahead right, 2 = right, 4 = back, 6 = left). Coarse on purpose: it says what the junction offers
    without the exact angles that would single out a panorama."""
    headings, _ = graph.links(node)
    sectors = ((((headings.astype(np.float64) - heading) % 360.0 + 22.5) // 45.0).astype(np.int64)) % LINK_SECTORS
    layout = np.zeros(LINK_SECTORS, np.int8)
    layout[sectors] = 1
    return layout


def mirrored_layout(layout: np.ndarray) -> np.ndarray:
    """The link layout(s) ``(..., LINK_SECTORS)`` of the scene mirrored left to right: sector ``i`` becomes sector
    ``-i`` (ahead right <-> ahead left, right <-> left; ahead and back stay)."""
    return layout[..., (-np.arange(LINK_SECTORS)) % LINK_SECTORS]


def mirrored_actions(num_actions: int) -> np.ndarray:
    """``(num_actions + 1,)`` int64: each action's mirror image, left to right, with index ``num_actions`` (no
    action yet) itself. Discrete: LEFT <-> RIGHT; panoramic (``num_actions = bins + 1``): bin ``b`` <-> bin
    ``(bins - b) % bins`` (straight ahead and straight back stay); STOP stays. The map is its own inverse."""
    ids = np.arange(num_actions + 1, dtype=np.int64)
    if num_actions == NUM_DISCRETE_ACTIONS:
        ids[LEFT], ids[RIGHT] = RIGHT, LEFT
    else:
        bins = num_actions - 1
        ids[:bins] = (bins - np.arange(bins)) % bins
    return ids


def facing_link(graph: StreetGraph, node: int, heading: float) -> int:
    """Global index of the outgoing link the agent faces (see module docstring); ``NO_LINK`` without links."""
    a, b = int(graph.link_offsets[node]), int(graph.link_offsets[node + 1])
    best, best_key = NO_LINK, None
    for k, (h, rank) in enumerate(zip(graph.link_heading[a:b].tolist(), graph.link_rank[a:b].tolist())):
        key = (angle_between(heading, h), rank)
        if best_key is None or key < best_key:
            best, best_key = a + k, key
    return best


def turn(graph: StreetGraph, node: int, heading: float, action: int) -> float:
    """Heading after ``LEFT`` or ``RIGHT`` at ``node`` (degrees)."""
    f = facing_link(graph, node, heading)
    if f == NO_LINK:
        return heading
    fh = float(graph.link_heading[f])
    a, b = int(graph.link_offsets[node]), int(graph.link_offsets[node + 1])
    best_heading, best_rotation = fh, None
    for h in graph.link_heading[a:b].tolist():
        rotation = clockwise(fh, h) if action == RIGHT else clockwise(h, fh)
        if rotation > 0 and (best_rotation is None or rotation < best_rotation):
            best_heading, best_rotation = h, rotation
    return best_heading


def discrete_move(graph: StreetGraph, node: int, heading: float, action: int) -> tuple[int, float]:
    """``(node, heading)`` after ``FORWARD``, ``LEFT`` or ``RIGHT``; ``STOP`` changes nothing."""
    if action == FORWARD:
        f = facing_link(graph, node, heading)
        if f == NO_LINK:
            return node, heading
        return int(graph.link_target[f]), float(graph.link_heading[f])
    if action in (LEFT, RIGHT):
        return node, turn(graph, node, heading, action)
    if action == STOP:
        return node, heading
    raise ValueError(f"discrete actions are 0-3, got {action}")


def bin_direction(heading: float, action_bin: int, bins: int = PANORAMIC_BINS) -> float:
    """Absolute direction (degrees) that panoramic bin ``action_bin`` points at from ``heading``."""
    return (heading - 180.0 + action_bin * 360.0 / bins) % 360.0


def panoramic_move(graph: StreetGraph, node: int, heading: float, action_bin: int, bins: int = PANORAMIC_BINS,
                   window: float = PANORAMIC_WINDOW) -> tuple[int, float]:
    """``(node, heading)`` after panoramic bin ``action_bin`` (``0 <= action_bin < bins``)."""
    if not 0 <= action_bin < bins:
        raise ValueError(f"panoramic bins are 0-{bins - 1}, got {action_bin}")
    direction = bin_direction(heading, action_bin, bins)
    k = facing_link(graph, node, direction)
    if k != NO_LINK and angle_between(float(graph.link_heading[k]), direction) < window:
        return int(graph.link_target[k]), float(graph.link_heading[k])
    return node, direction


def oracle_link(graph: StreetGraph, node: int, heading: float, route: Sequence[int], progress: int,
                goal_hops: np.ndarray) -> int:
    """Global index of the link the oracle wants to take next, or ``NO_LINK`` for STOP.

    ``route`` holds panorama indices, ``progress`` the agent's position on it (on the route when
    ``route[progress] == node``), ``goal_hops`` the hop distances to the goal (``StreetGraph.distances_to``).
    """
    a, b = int(graph.link_offsets[node]), int(graph.link_offsets[node + 1])
    targets = graph.link_target[a:b].tolist()
    if route[progress] == node and progress + 1 < len(route) and route[progress + 1] in targets:
        return a + targets.index(route[progress + 1])
    if node == route[-1] or a == b:
        return NO_LINK
    f = facing_link(graph, node, heading)
    fh = float(graph.link_heading[f])
    best, best_key = NO_LINK, None
    for k, t in enumerate(targets):
        d = int(goal_hops[t])
        if d == UNREACHABLE:
            continue
        key = (d, angle_between(fh, float(graph.link_heading[a + k])))
        if best_key is None or key < best_key:
            best, best_key = a + k, key
    return best


def discrete_action_toward(graph: StreetGraph, node: int, heading: float, link: int) -> int:
    """The discrete action that takes (or turns toward) ``link``; ``STOP`` for ``NO_LINK``."""
    if link == NO_LINK:
        return STOP
    f = facing_link(graph, node, heading)
    if f == link:
        return FORWARD
    cw = clockwise(float(graph.link_heading[f]), float(graph.link_heading[link]))
    return RIGHT if 0.0 < cw < 180.0 else LEFT


def panoramic_action_toward(graph: StreetGraph, node: int, heading: float, link: int, bins: int = PANORAMIC_BINS,
                            window: float = PANORAMIC_WINDOW) -> int:
    """The panoramic bin that moves along ``link`` (``bins`` = STOP for ``NO_LINK``).

    The bin nearest the link's direction is tried first, then the others by angular distance; if no bin reaches
    the link (two links closer together than a bin), the nearest bin is returned and the oracle recovers from
    wherever it leads.
    """
    if link == NO_LINK:
        return bins
    target, direction = int(graph.link_target[link]), float(graph.link_heading[link])
    step = 360.0 / bins
    ego = clockwise(heading, direction)  # bin b points at heading - 180 + b * step
    order = sorted(range(bins), key=lambda b: (angle_between((b * step - 180.0) % 360.0, ego), b))
    for action_bin in order:
        if panoramic_move(graph, node, heading, action_bin, bins, window)[0] == target:
            return action_bin
    return order[0]
