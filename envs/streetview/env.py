"""Touchdown / map2seq navigation on the StreetLearn graph: gymnasium ``valan/Touchdown-v0`` (``TouchdownEnv``) and
the batched form for actors (``BatchedTouchdownEnv``, following the contract of ``valan.envs.batched``).

The agent stands at a panorama with a heading (degrees clockwise from north) and follows a natural-language
route description. Movement rules, the oracle and their edge cases (start heading, dead ends, ties) are
specified in ``valan.envs.streetview.navigation``.

Actions:

- ``action_space="discrete"`` (default; Chen et al. 2019): ``Discrete(4)``, 0 = FORWARD, 1 = LEFT, 2 = RIGHT,
  3 = STOP (the Touchdown / VALAN order).
- ``action_space="panoramic"`` (VALAN's option): ``Discrete(19)``, bins 0-17 point at ``heading - 180 + 20 b``
  degrees (bin 9 = straight ahead), 18 = STOP.

An episode ends on STOP or once ``max_steps`` actions (STOP included) have been taken: 55 for training and 50
for evaluation (Touchdown), ``max_steps`` picks another limit. At that limit it ends as if the agent had
stopped (terminal reward as for STOP; the final panorama is scored).

Rewards (``reward="progress"``, VALAN's shaping): each action other than STOP earns the progress in hops toward
the goal (undirected breadth-first distance before minus after, so 0 for a turn) minus ``step_cost`` (0.2);
STOP earns ``+stop_reward`` (1.0) when the agent ends at the goal or a panorama adjacent to it (Touchdown's task
completion) and ``-stop_reward`` otherwise. VALAN rewards +1 only at the exact goal. ``reward="sparse"`` keeps
only the terminal +/- ``stop_reward``.

Observations are dicts of fixed-shape numpy arrays:

- ``instruction`` int64 (L,) token ids (``<EOS>`` then ``<PAD>``), ``instruction_length`` int64 ().
- ``panorama`` int64 (): the panorama's index in the graph (``nodes.txt`` order) = its ``feature_table()`` row.
- ``heading`` float32 () degrees in ``[0, 360)``; ``pano_yaw`` float32 () the panorama's ``pano_yaw_angle``:
  together they give the roll that centres the agent's heading (``valan.envs.streetview.views``).
- ``num_links`` int64 () outgoing links of the panorama (2 on a street, 3+ at an intersection, 1 at a dead end).
- ``link_layout`` int8 (8,): which 45-degree sectors around the heading hold an outgoing link (sector 0 straight
  ahead, then clockwise; ``navigation.link_layout``): the junction's shape, e.g. whether LEFT turns into a street.
- ``previous_action`` int64 (): the last action, ``num_actions`` at the first step.
- ``heading_change`` float32 () degrees in ``(-180, 180]``: how far the last action turned the agent, clockwise
  positive (a LEFT or RIGHT at a junction, or the bend of the street a FORWARD followed); 0 at the first step
  and after a move that changed nothing. Map2seq's "heading delta" (Schumann & Riezler 2022): relative, so it
  cannot single out a panorama.
- ``time_step`` int64 (): actions taken so far.
- ``oracle_next_action`` int64 (): the action that follows the route (FORWARD when the next route panorama is
  the one FORWARD reaches, else the turn toward it; STOP at the end of the route; off the route, toward the goal
  by breadth-first hops).
- with ``include_features=True`` only: ``features`` float32 (V, D) of the panorama, rolled so that the view
  nearest the heading is at position ``V // 2``.

Mirroring (``mirror``, training only): each episode start is mirrored left to right with probability ``mirror``.
A mirrored episode sees the street layout's reflection: ``heading`` is ``360 - heading``, ``heading_change`` changes
sign, ``link_layout`` is reflected (``navigation.mirrored_layout``), the instruction's left/right words trade
places (``valan.text.MIRROR_WORDS``), and LEFT and RIGHT (panoramic: bins ``b`` and ``18 - b``) trade places in
the actions taken, ``previous_action`` and ``oracle_next_action`` (``navigation.mirrored_actions``). Panoramas,
rewards, metrics and the trajectory stay those of the real episode. The features hold no reflected panoramas, so
mirroring is for agents that read no visual features.

Finished episodes report ``id`` (the route id), ``trajectory`` (panorama ids, consecutive duplicates removed:
the prediction format of ``valan evaluate streetview``), ``return``, ``steps``, ``task_completion`` and ``spd``
(hops from the final panorama to the goal).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from valan.data import sample_path
from valan.envs.batched import BatchedEnv, Mirroring, SingleEpisodeEnv
from valan.envs.spaces import feature_space, feature_store
from valan.envs.streetview.dataset import SAMPLE_TOUCHDOWN, StreetViewRoute, build_vocabulary, load_routes
from valan.envs.streetview.drawing import draw_streetview_episode
from valan.envs.streetview.graph import UNREACHABLE, StreetGraph, load_graph
from valan.envs.streetview.metrics import task_completion
from valan.envs.streetview.navigation import (LINK_SECTORS, NO_LINK, NUM_DISCRETE_ACTIONS, PANORAMIC_BINS,
                                              PANORAMIC_WINDOW, discrete_action_toward, discrete_move, link_layout,
                                              mirrored_actions, mirrored_layout, oracle_link,
                                              panoramic_action_toward, panoramic_move, signed_rotation)
from valan.envs.streetview.views import DEFAULT_VIEWS, rolled_features
from valan.errors import InputError
from valan.features.stores import FeatureStore, SyntheticFeatures
from valan.text import Vocabulary

PathLike = str | os.PathLike
TRAIN_MAX_STEPS = 55
EVAL_MAX_STEPS = 50
DEFAULT_MAX_INSTRUCTION_LENGTH = 300
"""Tokens incl. ``<EOS>``; the longest Touchdown dev-sample instruction has 290 tokens, map2seq's 82."""
ACTION_SPACES = ("discrete", "panoramic")
REWARDS = ("progress", "sparse")


def num_actions(action_space: str) -> int:
    """4 discrete actions, or 18 panoramic bins + STOP."""
    if action_space not in ACTION_SPACES:
        raise InputError(f"unknown action space {action_space!r}; choose one of {', '.join(ACTION_SPACES)}")
    return NUM_DISCRETE_ACTIONS if action_space == "discrete" else PANORAMIC_BINS + 1


class TouchdownWorld:
    """Routes on a graph with encoded instructions: what every slot of an environment shares
    (``valan.envs.batched.EpisodeWorld``; an episode is a route, its row the route's position in the data)."""

    id_key = "id"

    def __init__(self, routes: Sequence[StreetViewRoute], graph: StreetGraph, vocab: Vocabulary,
                 max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH, source: str = ""):
        if not routes:
            raise InputError("no routes", source=source)
        self.routes, self.graph, self.vocab = list(routes), graph, vocab
        self.episode_ids = [r.id for r in self.routes]
        self.id_index: dict[str, int] = {}
        self.route_nodes: list[list[int]] = []
        self.route_position: list[dict[int, int]] = []  # panorama -> its last position on the route
        for e, route in enumerate(self.routes):
            if route.id in self.id_index:
                raise InputError("duplicate route id", source=source, record=f"route {route.id}")
            self.id_index[route.id] = e
            nodes = []
            for k, panoid in enumerate(route.route):
                if panoid not in graph:
                    raise InputError(f"route panorama {k} {panoid!r} is not in the graph", source=source,
                                     record=f"route {route.id}")
                nodes.append(graph.index[panoid])
            self.route_nodes.append(nodes)
            self.route_position.append({node: k for k, node in enumerate(nodes)})
        encoded = [vocab.encode(r.navigation_text, max_instruction_length) for r in self.routes]
        self.instructions = np.stack([ids for ids, _ in encoded])
        self.instruction_lengths = np.array([n for _, n in encoded], np.int64)
        self.start_heading = np.array([r.start_heading for r in self.routes], np.float64)

    @classmethod
    def from_sources(cls, data: PathLike | Sequence[PathLike] | None = None,
                     graph: PathLike | StreetGraph | None = None, vocab: PathLike | Vocabulary | None = None,
                     routes: Sequence[StreetViewRoute] | None = None,
                     max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH,
                     vocab_min_count: int = 5) -> "TouchdownWorld":
        """Load routes (default: the bundled Touchdown sample), graph (default: the bundled sub-graph) and
        vocabulary (default: built from these routes with ``vocab_min_count``; pass the training split's
        vocabulary to evaluation environments)."""
        source = ""
        if not isinstance(graph, StreetGraph):
            graph = load_graph(graph)
        if routes is None:  # every route checked on the graph (InputError naming file and route)
            files = [sample_path(SAMPLE_TOUCHDOWN)] if data is None else (
                [data] if isinstance(data, (str, os.PathLike)) else list(data))
            routes = [r for f in files for r in load_routes(f, graph)]
            source = ", ".join(str(f) for f in files)
        if vocab is None:
            vocab = build_vocabulary(routes, min_count=vocab_min_count)
        elif not isinstance(vocab, Vocabulary):
            vocab = Vocabulary.load(vocab)
        return cls(routes, graph, vocab, max_instruction_length, source=source)

    def instruction_text(self, row: int) -> str:
        """Route ``row``'s navigation text."""
        return self.routes[row].navigation_text

    def keys(self) -> list[tuple[str, str]]:
        """``(graph name, panoid)`` of every panorama in index order (feature-store keys)."""
        return [(self.graph.name, p) for p in self.graph.panoids]

    def feature_table(self, store: FeatureStore) -> np.ndarray:
        """``(num_panoramas, V, D)`` features in panorama index order (unrolled)."""
        return store.table(self.keys())

    def episode(self, route_id: object) -> int:
        """Row of the route named ``route_id`` (int or str); ``InputError`` when unknown."""
        try:
            return self.id_index[str(route_id)]
        except KeyError:
            raise InputError(f"unknown route id {route_id!r}") from None


def observation_space(world: TouchdownWorld, max_steps: int, actions: int,
                      features: FeatureStore | None = None) -> spaces.Dict:
    graph = world.graph
    max_degree = int(np.diff(graph.link_offsets).max(initial=0))

    def integer(high: int, shape: tuple[int, ...] = ()) -> spaces.Box:
        return spaces.Box(0, high, shape, np.int64)

    def degrees() -> spaces.Box:
        return spaces.Box(np.float32(0.0), np.float32(360.0), (), np.float32)

    space = {
        "instruction": integer(len(world.vocab) - 1, (world.instructions.shape[1],)),
        "instruction_length": integer(world.instructions.shape[1]),
        "panorama": integer(len(graph) - 1),
        "heading": degrees(),
        "pano_yaw": degrees(),
        "num_links": integer(max_degree),
        "link_layout": spaces.Box(0, 1, (LINK_SECTORS,), np.int8),
        "previous_action": integer(actions),
        "heading_change": spaces.Box(np.float32(-180.0), np.float32(180.0), (), np.float32),
        "time_step": integer(max_steps),
        "oracle_next_action": integer(actions - 1),
    }
    if features is not None:
        space["features"] = feature_space(features, world.keys())
    return spaces.Dict(space)


class _Slots:
    """The state of ``num_slots`` concurrent episodes (``valan.envs.batched.EpisodeSlots``), advanced in plain
    Python per slot: a step is a few link lookups."""

    def __init__(self, world: TouchdownWorld, num_slots: int, action_space: str, max_steps: int, reward: str,
                 step_cost: float, stop_reward: float, features: FeatureStore | None,
                 panoramic_window: float = PANORAMIC_WINDOW, mirror: float = 0.0, seed: int = 0):
        if reward not in REWARDS:
            raise InputError(f"unknown reward {reward!r}; choose one of {', '.join(REWARDS)}")
        if max_steps < 1:
            raise InputError("max_steps must be at least 1")
        self.world, self.graph = world, world.graph
        self.num_actions = num_actions(action_space)
        self.panoramic = action_space == "panoramic"
        self.stop_action = self.num_actions - 1
        self.max_steps, self.reward, self.step_cost, self.stop_reward = max_steps, reward, step_cost, stop_reward
        self.features, self.window = features, panoramic_window
        k = num_slots
        self.episode = np.zeros(k, np.int64)
        self.node = np.zeros(k, np.int64)
        self.heading = np.zeros(k, np.float64)
        self.time = np.zeros(k, np.int64)
        self.progress = np.zeros(k, np.int64)
        self.previous_action = np.full(k, self.num_actions, np.int64)
        self.heading_change = np.zeros(k, np.float64)
        self.returns = np.zeros(k, np.float64)
        self.path: list[list[int]] = [[] for _ in range(k)]
        self.mirror = Mirroring(k, mirror, seed, world.vocab, features)
        self.mirror_actions = mirrored_actions(self.num_actions)
        self.observation_space = observation_space(world, max_steps, self.num_actions, features)
        self.action_space = spaces.Discrete(self.num_actions)

    def start(self, slots: Sequence[int], episodes: Sequence[int]) -> None:
        """Place the agents of ``slots`` at the starts of ``episodes`` (route rows), facing ``start_heading``."""
        for s, e in zip(slots, episodes):
            s, e = int(s), int(e)
            start = self.world.route_nodes[e][0]
            self.episode[s], self.node[s], self.heading[s] = e, start, self.world.start_heading[e]
            self.time[s], self.progress[s], self.previous_action[s], self.returns[s] = 0, 0, self.num_actions, 0.0
            self.heading_change[s] = 0.0
            self.path[s] = [start]
        self.mirror.draw(slots)

    def _completed(self, node: int, goal: int) -> bool:
        return node == goal or self.graph.adjacent(node, goal)

    def act(self, slots: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``actions`` to ``slots``; returns float64 rewards and whether each episode ended."""
        if np.any((actions < 0) | (actions >= self.num_actions)):
            raise ValueError(f"actions must be in [0, {self.num_actions - 1}], got {actions.tolist()}")
        actions = np.where(self.mirror.mirrored[slots], self.mirror_actions[actions], actions)  # into the real scene
        outcomes = [self._act(s, a) for s, a in zip(slots.tolist(), actions.tolist())]
        return np.array([r for r, _ in outcomes], np.float64), np.array([e for _, e in outcomes], bool)

    def _act(self, slot: int, action: int) -> tuple[float, bool]:
        e, node, heading = int(self.episode[slot]), int(self.node[slot]), float(self.heading[slot])
        route = self.world.route_nodes[e]
        goal = route[-1]
        self.time[slot] += 1
        self.previous_action[slot] = action
        self.heading_change[slot] = 0.0
        if action == self.stop_action:
            reward, ended = 0.0, True
        else:
            if self.panoramic:
                nxt, heading = panoramic_move(self.graph, node, heading, action, PANORAMIC_BINS, self.window)
            else:
                nxt, heading = discrete_move(self.graph, node, heading, action)
            reward = 0.0
            if self.reward == "progress":
                hops = self.graph.distances_to(goal)
                before, after = int(hops[node]), int(hops[nxt])
                progress = before - after if UNREACHABLE not in (before, after) else 0
                reward = progress - self.step_cost
            if nxt != node:
                self.path[slot].append(nxt)
                position = self.world.route_position[e]
                k = int(self.progress[slot])
                if k + 1 < len(route) and route[k + 1] == nxt:
                    self.progress[slot] = k + 1
                elif nxt in position:
                    self.progress[slot] = position[nxt]
            self.heading_change[slot] = signed_rotation(self.heading[slot], heading)
            self.node[slot], self.heading[slot] = nxt, heading % 360.0
            ended = bool(self.time[slot] >= self.max_steps)
        if ended:
            reward += self.stop_reward if self._completed(int(self.node[slot]), goal) else -self.stop_reward
        self.returns[slot] += reward
        return float(reward), ended

    def oracle(self, slot: int) -> int:
        e, node, heading = int(self.episode[slot]), int(self.node[slot]), float(self.heading[slot])
        route = self.world.route_nodes[e]
        link = oracle_link(self.graph, node, heading, route, int(self.progress[slot]),
                           self.graph.distances_to(route[-1]))
        if link == NO_LINK:
            return self.stop_action
        if self.panoramic:
            return panoramic_action_toward(self.graph, node, heading, link, PANORAMIC_BINS, self.window)
        return discrete_action_toward(self.graph, node, heading, link)

    def observe(self) -> dict[str, np.ndarray]:
        """Fresh observation arrays with a leading slot dimension."""
        w, g = self.world, self.graph
        node, episodes = self.node, self.episode
        heading = self.heading.astype(np.float32) % np.float32(360.0)  # float32 rounding may reach 360
        obs = {
            "instruction": w.instructions[episodes],
            "instruction_length": w.instruction_lengths[episodes],
            "panorama": node.copy(),
            "heading": heading,
            "pano_yaw": g.yaw[node],
            "num_links": (g.link_offsets[node + 1] - g.link_offsets[node]).astype(np.int64),
            "link_layout": np.stack([link_layout(g, n, h) for n, h in zip(node.tolist(), self.heading.tolist())]
                                    ).reshape(len(node), LINK_SECTORS),
            "previous_action": self.previous_action.copy(),
            "heading_change": self.heading_change.astype(np.float32),
            "time_step": self.time.copy(),
            "oracle_next_action": np.array([self.oracle(s) for s in range(len(node))], np.int64),
        }
        if self.mirror.mirrored.any():
            self._reflect(obs)
        if self.features is not None:
            table = np.stack([self.features.get(g.name, g.panoids[i]) for i in node])
            obs["features"] = rolled_features(table, self.heading, g.yaw[node].astype(np.float64))
        return obs

    def _reflect(self, obs: dict[str, np.ndarray]) -> None:
        """Turn the observations of the mirrored slots into those of the street layout's reflection (module
        docstring)."""
        m = self.mirror.mirrored
        obs["instruction"] = self.mirror.instructions(obs["instruction"])
        obs["heading"] = np.where(m, (np.float32(360.0) - obs["heading"]) % np.float32(360.0), obs["heading"])
        obs["heading_change"] = np.where(m, -obs["heading_change"], obs["heading_change"])
        obs["link_layout"] = np.where(m[:, None], mirrored_layout(obs["link_layout"]), obs["link_layout"])
        for key in ("previous_action", "oracle_next_action"):
            obs[key] = np.where(m, self.mirror_actions[obs[key]], obs[key])

    def picture(self, slot: int) -> Any:
        """The episode of ``slot`` so far, top-down on the lat/lng graph (``valan.envs.streetview.drawing``): the
        route, the path taken, start and goal, under the instruction."""
        g, row = self.graph, int(self.episode[slot])
        route = self.world.routes[row]
        title = (f"{route.id}  step {self.time[slot]} of {self.max_steps}  "
                 f"{g.hops(int(self.node[slot]), self.world.route_nodes[row][-1])} hops to the goal")
        return draw_streetview_episode(g, route.route, [g.panoids[i] for i in self.path[slot]], title,
                                       route.navigation_text)

    def summaries(self, slots: np.ndarray) -> list[dict[str, Any]]:
        """What the slots' finished episodes report (see the module docstring)."""
        g, out = self.graph, []
        for slot in slots.tolist():
            e, node = int(self.episode[slot]), int(self.node[slot])
            goal = self.world.route_nodes[e][-1]
            route_id = self.world.routes[e].id
            out.append({"id": route_id, "trajectory": [g.panoids[i] for i in self.path[slot]],
                        "return": float(self.returns[slot]), "steps": int(self.time[slot]),
                        "task_completion": task_completion(g, node, goal), "spd": g.hops(node, goal)})
        return out


def _touchdown_slots(num_slots: int, data: PathLike | Sequence[PathLike] | None, graph: PathLike | StreetGraph | None,
                     vocab: PathLike | Vocabulary | None, features: FeatureStore | PathLike | None,
                     routes: Sequence[StreetViewRoute] | None, action_space: str, max_steps: int,
                     max_instruction_length: int, reward: str, step_cost: float, stop_reward: float,
                     include_features: bool, vocab_min_count: int, mirror: float = 0.0,
                     seed: int = 0) -> tuple[_Slots, FeatureStore]:
    """The slots of a Touchdown env (arguments as ``TouchdownEnv``'s) and its feature store."""
    world = TouchdownWorld.from_sources(data, graph, vocab, routes, max_instruction_length, vocab_min_count)
    features = feature_store(features, SyntheticFeatures(views=DEFAULT_VIEWS), DEFAULT_VIEWS)
    slots = _Slots(world, num_slots, action_space, max_steps, reward, step_cost, stop_reward,
                   features if include_features else None, mirror=mirror, seed=seed)
    return slots, features


class TouchdownEnv(SingleEpisodeEnv):
    """One Touchdown or map2seq episode at a time (gymnasium API; ``valan.envs.batched.SingleEpisodeEnv``); see
    the module docstring. Episode ids are route ids (``info["id"]``).

    Args:
        data: route file(s) in JSON lines (Touchdown or map2seq records); default the bundled Touchdown sample.
        graph: folder with ``nodes.txt`` and ``links.txt`` (or a ``StreetGraph``); default the bundled sub-graph.
        vocab: vocabulary file or ``Vocabulary``; default built from ``data`` (give the training split's for
            evaluation).
        features: feature store for ``include_features`` and ``feature_table()``, or its path (a store folder, a
            ``.tsv`` file); default ``SyntheticFeatures(views=8)`` (no visual information). With
            ``include_features`` the ``features`` Box is bounded by the store's values over every panorama.
        routes: already-loaded routes to use instead of ``data``.
        action_space: ``"discrete"`` or ``"panoramic"``.
        max_steps: actions per episode, STOP included (55 train, 50 evaluation in Touchdown).
        max_instruction_length: token ids per instruction, ``<EOS>`` included.
        reward, step_cost, stop_reward: see the module docstring.
        include_features: put the rolled ``(V, D)`` features into observations.
        vocab_min_count: minimum token count when the vocabulary is built from ``data``.
        render_mode: ``"rgb_array"``: ``render()`` returns the top-down picture of the episode so far (the route
            and the path taken on the lat/lng graph, start, goal, the instruction).
    """

    world: TouchdownWorld

    def __init__(self, data: PathLike | Sequence[PathLike] | None = None, graph: PathLike | StreetGraph | None = None,
                 vocab: PathLike | Vocabulary | None = None, features: FeatureStore | PathLike | None = None,
                 routes: Sequence[StreetViewRoute] | None = None, action_space: str = "discrete",
                 max_steps: int = TRAIN_MAX_STEPS, max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH,
                 reward: str = "progress", step_cost: float = 0.2, stop_reward: float = 1.0,
                 include_features: bool = False, vocab_min_count: int = 5, render_mode: str | None = None):
        super().__init__(*_touchdown_slots(1, data, graph, vocab, features, routes, action_space, max_steps,
                                           max_instruction_length, reward, step_cost, stop_reward, include_features,
                                           vocab_min_count), render_mode=render_mode)

    @property
    def graph(self) -> StreetGraph:
        return self.world.graph


class BatchedTouchdownEnv(BatchedEnv):
    """``num_envs`` Touchdown or map2seq episodes stepped together for one actor, with automatic reset: the
    contract of ``valan.envs.batched`` (``reset``, ``step``, ``active``, ``finished``, evaluation mode,
    ``set_episode_pool``).

    Observations have the keys of ``TouchdownEnv`` with a leading ``num_envs`` dimension; ``infos["finished"]``
    lists the ended episodes (dicts with ``slot`` and the fields of the module docstring). Evaluation runs every
    route exactly once in file order.

    Constructor arguments are those of ``TouchdownEnv`` plus ``num_envs``, ``evaluation``, ``seed`` and
    ``mirror`` (the probability that an episode start is mirrored left to right; module docstring); ``max_steps``
    defaults to 50 with ``evaluation=True`` and 55 otherwise.
    """

    world: TouchdownWorld

    def __init__(self, num_envs: int, data: PathLike | Sequence[PathLike] | None = None,
                 graph: PathLike | StreetGraph | None = None, vocab: PathLike | Vocabulary | None = None,
                 features: FeatureStore | None = None, routes: Sequence[StreetViewRoute] | None = None,
                 action_space: str = "discrete", max_steps: int | None = None,
                 max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH, reward: str = "progress",
                 step_cost: float = 0.2, stop_reward: float = 1.0, include_features: bool = False,
                 vocab_min_count: int = 5, evaluation: bool = False, seed: int = 0, mirror: float = 0.0):
        if max_steps is None:
            max_steps = EVAL_MAX_STEPS if evaluation else TRAIN_MAX_STEPS
        super().__init__(*_touchdown_slots(num_envs, data, graph, vocab, features, routes, action_space, max_steps,
                                           max_instruction_length, reward, step_cost, stop_reward, include_features,
                                           vocab_min_count, mirror, seed), evaluation, seed)

    @property
    def graph(self) -> StreetGraph:
        return self.world.graph
