"""NDH episodes (Navigation from Dialog History, the task of CVDN: Thomason et al., CoRL 2019).

An NDH file is a JSON list of instances as CVDN releases them (``tasks/NDH/data/{train,val_seen,val_unseen,test}.json``):

- always: ``inst_idx`` (int, the instance's id), ``scan``, ``target`` (the target object's name), ``start_pano``
  (``heading`` and ``elevation`` in radians, ``pano`` = viewpoint id), ``nav_camera``, ``dialog_history`` (turns
  ``{nav_idx, role: navigator|oracle, message}``, oldest first) and ``nav_history`` (viewpoints so far);
- training and validation splits only: ``game_idx``, ``end_panos`` (the goal region), ``player_path`` (what the
  navigator walked after the latest answer), ``planner_path`` (the shortest-path steps shown to the oracle) and
  quality ratings. Test splits lack them: they load for running an agent, not for scoring.

Path types (CVDN's ``path_type``), the path that supervises the agent and that ``nav_error`` is measured to:
``planner_path``, ``player_path`` and ``trusted_path`` = the player path when it passes through the planner path's
goal after its start (``planner_path[-1] in player_path[1:]``), else the planner path. The goal region for goal
progress is ``end_panos`` whatever the path type.

Input text (:func:`encode_dialog`): ``<TAR>`` target, then every turn as ``<NAV>`` question or ``<ORA>`` answer,
oldest first, then ``<EOS>``; when that exceeds the maximum length the oldest dialog tokens are dropped, so the
target and the newest turns stay (CVDN's agent also keeps the newest part). The separators extend the R2R
vocabulary (:func:`with_separators`), so R2R and NDH share one tokenizer (``valan.text``) and one vocabulary.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from valan.envs.r2r.graph import Connectivity
from valan.errors import InputError
from valan.io import read_json
from valan.text import EOS_ID, PAD_ID, UNK_ID, Vocabulary, tokenize

PathType = Literal["planner_path", "player_path", "trusted_path"]
PATH_TYPES: tuple[str, ...] = ("planner_path", "player_path", "trusted_path")

NAVIGATOR, ORACLE, TARGET = "<NAV>", "<ORA>", "<TAR>"
SEPARATORS = (NAVIGATOR, ORACLE, TARGET)
ROLE_SEPARATOR = {"navigator": NAVIGATOR, "oracle": ORACLE}

REQUIRED_FIELDS = ("inst_idx", "scan", "target", "start_pano", "dialog_history")
REFERENCE_FIELDS = ("end_panos", "planner_path", "player_path")
"""Training-time fields: an instance has all of them (scorable) or none (a test split)."""


@dataclass(frozen=True)
class Turn:
    """One utterance of the dialog: ``role`` is ``navigator`` or ``oracle``; ``nav_idx`` indexes ``nav_history``."""

    role: str
    message: str
    nav_idx: int | None = None


@dataclass(frozen=True)
class NDHEpisode:
    """One NDH instance. Viewpoints are ids of ``scan``; headings and elevations in radians.

    ``end_panos``, ``planner_path`` and ``player_path`` are ``None`` in test splits (``has_reference`` False).
    """

    inst_idx: int
    scan: str
    target: str
    start_viewpoint: str
    start_heading: float
    start_elevation: float
    dialog_history: tuple[Turn, ...]
    nav_history: tuple[str, ...] = ()
    game_idx: int | None = None
    end_panos: tuple[str, ...] | None = None
    planner_path: tuple[str, ...] | None = None
    player_path: tuple[str, ...] | None = None

    @property
    def has_reference(self) -> bool:
        """Whether the instance carries the goal region and paths to score against (test splits do not)."""
        return self.end_panos is not None

    @property
    def trusted_path(self) -> tuple[str, ...]:
        """The player path when it passes through the planner goal after its start, else the planner path."""
        planner, player = self._reference("trusted_path")
        return player if planner[-1] in player[1:] else planner

    def path(self, path_type: str) -> tuple[str, ...]:
        """The path of ``path_type`` (see the module docstring); ``InputError`` on a test instance."""
        if path_type not in PATH_TYPES:
            raise InputError(f"unknown path type {path_type!r}; choose one of {', '.join(PATH_TYPES)}")
        if path_type == "trusted_path":
            return self.trusted_path
        planner, player = self._reference(path_type)
        return planner if path_type == "planner_path" else player

    def _reference(self, path_type: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if self.planner_path is None or self.player_path is None:
            raise InputError(f"no {path_type} (a test split?): the instance can be run, not scored",
                             record=f"inst_idx {self.inst_idx}")
        return self.planner_path, self.player_path

    def start(self, path_type: str) -> str:
        """Where the agent starts: the path's first viewpoint (as CVDN's environment), ``start_pano`` in tests."""
        return self.path(path_type)[0] if self.has_reference else self.start_viewpoint

    @property
    def text(self) -> str:
        """The input text with separators, oldest turn first, untruncated (for reading, not for encoding)."""
        turns = " ".join(f"{ROLE_SEPARATOR[t.role]} {t.message}" for t in self.dialog_history)
        return f"{TARGET} {self.target} {turns}".strip()


def with_separators(vocab: Vocabulary) -> Vocabulary:
    """``vocab`` with the role separators ``<NAV> <ORA> <TAR>`` appended where missing: R2R's ids stay the same."""
    missing = [token for token in SEPARATORS if token not in vocab.index]
    return Vocabulary(vocab.tokens + missing) if missing else vocab


def encode_dialog(vocab: Vocabulary, target: str, turns: tuple[Turn, ...], max_length: int) -> tuple[np.ndarray, int]:
    """Token ids ``(max_length,)`` int64 and length (``<EOS>`` included) of the NDH input text: ``<TAR>`` target,
    ``<NAV>``/``<ORA>`` turns oldest first, ``<EOS>``, then ``<PAD>``; over ``max_length`` the oldest dialog tokens
    are dropped (the target is cut only when it alone does not fit). ``vocab`` must hold the separators."""
    def ids(separator: str, text: str) -> list[int]:
        return [vocab.index[separator]] + [vocab.index.get(t, UNK_ID) for t in tokenize(text)]

    try:
        head = ids(TARGET, target)[: max_length - 1]
        dialog = [i for turn in turns for i in ids(ROLE_SEPARATOR[turn.role], turn.message)]
    except KeyError as e:
        raise InputError(f"the vocabulary lacks the NDH separator {e.args[0]!r} (use with_separators)") from None
    room = max_length - 1 - len(head)
    encoded = head + (dialog[len(dialog) - room:] if room > 0 else []) + [EOS_ID]
    out = np.full(max_length, PAD_ID, dtype=np.int64)
    out[: len(encoded)] = encoded
    return out, len(encoded)


def _is_viewpoints(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def record_problems(record: object, position: int) -> tuple[str, list[str]]:
    """Where an NDH record is (``inst_idx N`` or ``record N``) and every problem of its fields, one line each."""
    if not isinstance(record, dict):
        return f"record {position}", ["expected a JSON object"]
    where = f"inst_idx {record['inst_idx']}" if "inst_idx" in record else f"record {position}"
    problems = [f"missing field {key!r}" for key in REQUIRED_FIELDS if key not in record]
    if "inst_idx" in record and (isinstance(record["inst_idx"], bool) or not isinstance(record["inst_idx"], int)):
        problems.append(f"field 'inst_idx' must be an integer, got {record['inst_idx']!r}")
    for key in ("scan", "target"):
        if key in record and not isinstance(record[key], str):
            problems.append(f"field {key!r} must be a string")
    start = record.get("start_pano", {})
    if not isinstance(start, dict) or not isinstance(start.get("pano"), str) or not _number(start.get("heading")) \
            or not _number(start.get("elevation", 0.0)):
        problems.append("field 'start_pano' must be {heading, elevation, pano}")
    turns = record.get("dialog_history", [])
    if not isinstance(turns, list) or not all(
            isinstance(t, dict) and t.get("role") in ROLE_SEPARATOR and isinstance(t.get("message"), str)
            for t in turns):
        problems.append("field 'dialog_history' must be a list of {nav_idx, role: navigator|oracle, message}")
    if "nav_history" in record and not isinstance(record["nav_history"], list):
        problems.append("field 'nav_history' must be a list of viewpoint ids")
    present = [key for key in REFERENCE_FIELDS if key in record]
    if present and len(present) < len(REFERENCE_FIELDS):
        problems += [f"missing field {key!r} (training splits have all of {', '.join(REFERENCE_FIELDS)})"
                     for key in REFERENCE_FIELDS if key not in record]
    problems += [f"field {key!r} must be a non-empty list of viewpoint ids" for key in present
                 if not _is_viewpoints(record[key])]
    return where, problems


def graph_problems(record: dict, connectivity: Connectivity) -> list[str]:
    """Problems of a record on the navigation graphs: unknown scan, unknown viewpoints (start, end region, paths),
    consecutive path viewpoints that are not adjacent."""
    scan = record.get("scan")
    if not isinstance(scan, str) or scan not in connectivity:
        return [f"unknown scan {scan!r} (no connectivity file)"]
    graph = connectivity.graph(scan)
    problems = []
    start = record["start_pano"]["pano"]
    if start not in graph:
        problems.append(f"start_pano {start} is not in scan {scan}")
    for key in REFERENCE_FIELDS:
        viewpoints = record.get(key) or []
        problems += [f"{key} viewpoint {vp} is not in scan {scan}" for vp in viewpoints if vp not in graph]
        if key != "end_panos":
            problems += [f"{key} positions {i} and {i + 1} ({a} -> {b}) are not adjacent in scan {scan}"
                         for i, (a, b) in enumerate(zip(viewpoints, viewpoints[1:]))
                         if a != b and a in graph and b in graph and not graph.adjacent(a, b)]
    return problems


def parse_ndh(records: object, source: str = "", connectivity: Connectivity | None = None) -> list[NDHEpisode]:
    """NDH records (a JSON list as released) -> episodes; ``InputError`` naming ``source`` and the record at the
    first bad field, duplicate ``inst_idx`` and, with ``connectivity``, the first viewpoint off its scan's graph."""
    if not isinstance(records, list):
        raise InputError("expected a JSON list of NDH instances", source=source)
    episodes, seen = [], set()
    for n, item in enumerate(records):
        where, problems = record_problems(item, n)
        if not problems and connectivity is not None:
            problems = graph_problems(item, connectivity)
        if not problems and item["inst_idx"] in seen:
            problems = ["duplicate inst_idx"]
        if problems:
            raise InputError(problems[0], source=source, record=where)
        seen.add(item["inst_idx"])
        reference = {key: tuple(item[key]) for key in REFERENCE_FIELDS if key in item}
        start = item["start_pano"]
        episodes.append(NDHEpisode(
            inst_idx=item["inst_idx"], scan=item["scan"], target=item["target"], start_viewpoint=start["pano"],
            start_heading=float(start["heading"]), start_elevation=float(start.get("elevation", 0.0)),
            dialog_history=tuple(Turn(t["role"], t["message"], t.get("nav_idx")) for t in item["dialog_history"]),
            nav_history=tuple(item.get("nav_history", ())),
            game_idx=item.get("game_idx"), **reference))
    return episodes


def load_ndh(path: str | os.PathLike, connectivity: Connectivity | None = None) -> list[NDHEpisode]:
    """Load an NDH file as released by CVDN (train/val or test form), checking it on ``connectivity`` if given."""
    return parse_ndh(read_json(path), source=str(path), connectivity=connectivity)
