"""Training configuration: YAML files -> nested, typed, validated dataclasses, plus ``--set key=value`` overrides.

A config file holds sections matching :class:`TrainConfig` (``problem``, ``data``, ``env``, ``agent``,
``learning``, ``distributed``, ``run``). Missing keys take the dataclass defaults, unknown keys are an
``InputError`` naming the file and the key, and values are checked against the field types
(``int``, ``float``, ``bool``, ``str``, ``Literal``, optional, ``list[...]``, ``dict[str, ...]``, nested dataclasses).

Problem-specific fields: a problem declares its own config class by subclassing a section and
:class:`TrainConfig`, and names it in its ``config_class`` attribute::

    @dataclass
    class TouchdownEnvConfig(EnvConfig):
        panorama_views: int = 8

    @dataclass
    class TouchdownConfig(TrainConfig):
        problem: str = "touchdown"
        env: TouchdownEnvConfig = field(default_factory=TouchdownEnvConfig)

    class TouchdownProblem(Problem):
        config_class = TouchdownConfig

:func:`load_config` reads the file's ``problem`` name first and validates the file against that problem's
``config_class``, so ``env.panorama_views`` is accepted (and type checked) for Touchdown and rejected for R2R.
Other trainers (e.g. the discriminator) can pass any dataclass as ``schema``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

import yaml

from valan.errors import InputError
from valan.io import atomic_write

T = TypeVar("T")

LearningMode = Literal["mixed", "imitation", "rl", "student_forcing"]


@dataclass
class DataConfig:
    """Where the data lives. Relative file names are resolved against ``root``; ``root: null`` = bundled sample."""

    root: str | None = None
    train: list[str] = field(default_factory=lambda: ["R2R_sample_train.json"])  # one or more episode files
    eval: dict[str, str] = field(default_factory=lambda: {"val_seen": "R2R_sample_val_seen.json"})  # split -> file
    connectivity: str = "connectivity"
    vocab: str = "train_vocab.txt"
    features: str = "synthetic"  # "synthetic" or a feature file/store path understood by valan.features.stores
    synthetic_dim: int = 64  # feature size of synthetic features (they carry no visual information)

    def resolve(self, name: str) -> Path:
        """Path of a data file: absolute names as given, others under ``root`` (or the bundled sample)."""
        path = Path(os.path.expanduser(name))
        if path.is_absolute():
            return path
        if self.root is None:
            from valan.data import sample_path

            return sample_path(name)
        return Path(os.path.expanduser(self.root)) / path


@dataclass
class EnvConfig:
    """Environment settings shared by navigation problems (problems may extend this section)."""

    max_steps: int = 12  # actions per episode, STOP included
    reward: str = "distance"  # reward name understood by the problem's environment
    max_candidates: int = 16  # navigable neighbours per step (action slots 1..max_candidates)
    max_instruction_length: int = 80  # tokens, <EOS> included


@dataclass
class AgentConfig:
    """Model sizes (problems may extend this section)."""

    embed_dim: int = 64  # word embedding size
    hidden_dim: int = 128  # LSTM size (the instruction encoder uses hidden_dim // 2 per direction)
    core_layers: int = 2  # stacked LSTM layers of the recurrent core
    geometry_dim: int = 32  # size of the projected candidate/previous-action geometry
    dropout: float = 0.0


@dataclass
class LearningConfig:
    """Losses and optimizer. Steps here are learner steps (one batch of ``batch_size`` unrolls)."""

    # imitation: teacher forcing; student_forcing: act by sampling, learn the oracle's actions; mixed: imitation
    # on teacher-forced unrolls, V-trace RL on the others; rl: V-trace only
    mode: LearningMode = "imitation"
    p_imitation: float = 0.5  # share of teacher-forced unrolls in "mixed" (VALAN: 0.5) and "student_forcing" modes
    unroll_length: int = 12  # T (the unroll holds T + 1 steps, the first overlapping the previous unroll)
    batch_size: int = 16  # B, unrolls per learner step
    lr: float = 1e-3  # Adam learning rate
    lr_decay: Literal["none", "exponential"] = "none"
    lr_decay_rate: float = 0.5  # exponential: lr * rate ** (step / lr_decay_steps)
    lr_decay_steps: int = 10000
    grad_clip: float = 10.0  # global gradient norm clip; 0 disables
    gamma: float = 0.95  # discount per action
    entropy_cost: float = 0.01
    baseline_cost: float = 0.5
    rho_bar: float = 1.0  # V-trace clip of the importance weight in the value target
    c_bar: float = 1.0  # V-trace clip of the trace coefficients
    pg_rho_bar: float = 1.0  # clip of the importance weight in the policy gradient
    curriculum: Literal["none", "constant", "adaptive"] = "none"
    curriculum_start: float = 0.2  # fraction of the easiest episodes in the initial pool
    curriculum_steps: int = 20000  # constant: env steps over which the pool widens linearly to all episodes
    curriculum_threshold: float = 0.5  # adaptive: widen the pool when the pool's success rate exceeds this

    def __post_init__(self) -> None:
        _check(0.0 <= self.p_imitation <= 1.0, "learning.p_imitation must be in [0, 1]")
        _check(self.unroll_length >= 1 and self.batch_size >= 1, "learning.unroll_length and batch_size must be >= 1")
        _check(self.lr > 0 and self.lr_decay_steps > 0 and self.lr_decay_rate > 0, "learning.lr, lr_decay_* must be > 0")
        _check(0.0 <= self.gamma <= 1.0, "learning.gamma must be in [0, 1]")
        _check(min(self.rho_bar, self.c_bar, self.pg_rho_bar) > 0, "learning.rho_bar, c_bar, pg_rho_bar must be > 0")
        _check(0.0 < self.curriculum_start <= 1.0, "learning.curriculum_start must be in (0, 1]")


@dataclass
class DistributedConfig:
    """SEED-RL layout: actors step environments, the learner batches inference and trains."""

    num_actors: int = 2
    envs_per_actor: int = 8  # environments each actor steps per inference call
    max_batch: int = 64  # most observations per inference batch
    max_wait_ms: float = 5.0  # an incomplete inference batch runs after this deadline
    queue_size: int = 8  # unrolls waiting for the trainer (backpressure beyond this)
    num_eval_actors: int = 1
    ray_address: str | None = None  # None: local Ray instance; "auto" or "host:port": join a cluster


@dataclass
class RunConfig:
    """Budget, logging, checkpoints. A run stops at whichever budget is reached first."""

    total_env_steps: int = 60000
    total_minutes: float = 0.0  # 0: no time limit
    eval_every_env_steps: int = 20000
    checkpoint_every_env_steps: int = 20000
    keep_last: int = 3
    logdir: str = "runs/r2r_sample"
    seed: int = 0


@dataclass
class TrainConfig:
    """A whole training run. ``problem`` selects the problem (and its config class) in ``valan.problems``."""

    problem: str = "r2r"
    data: DataConfig = field(default_factory=DataConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    run: RunConfig = field(default_factory=RunConfig)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


# ---------------------------------------------------------------------------------------------- type checking


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` (as loaded by yaml.safe_load) against the annotation ``tp``; return the typed value."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: expected a section (mapping), got {value!r}")
        return _from_mapping(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except InputError as e:
                errors.append(str(e))
        raise InputError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not a {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise InputError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp!r} at {where}")


def _unknown_key(key: str, known: Sequence[str], where: str) -> InputError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return InputError(f"unknown config key {where + key!r}{hint}")


def _from_mapping(cls: type[T], data: Mapping, where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in names:
            raise _unknown_key(str(key), names, prefix)
    values = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**values)


def renamed_key_error(cls: type, key: str) -> InputError | None:
    """The error for a dotted ``key`` that ``cls`` lists in its ``RENAMED`` table (old key -> new key), else None.

    A schema keeps old names there when a key moves, so an old config file or ``--set`` fails with one line that
    names the new key instead of a bare "unknown key".
    """
    renamed: Mapping[str, str] = getattr(cls, "RENAMED", {})
    parts = key.split(".")
    for depth in range(len(parts), 0, -1):
        old = ".".join(parts[:depth])
        if old in renamed:
            return InputError(f"config key {key!r} was renamed: use {renamed[old]!r}")
    return None


def _renamed_keys_in(cls: type, data: Mapping, where: str = "") -> InputError | None:
    for key, value in data.items():
        dotted = f"{where}{key}"
        error = renamed_key_error(cls, dotted)
        if error is not None:
            return error
        if isinstance(value, Mapping):
            error = _renamed_keys_in(cls, value, dotted + ".")
            if error is not None:
                return error
    return None


def from_dict(cls: type[T], data: Mapping, source: str | None = None) -> T:
    """Build the dataclass ``cls`` from a nested mapping, with defaults for missing keys.

    Raises ``InputError`` naming ``source`` and the key for unknown keys, wrong types and invalid values, and for
    keys listed in ``cls.RENAMED`` (naming the new key).
    """
    try:
        renamed = _renamed_keys_in(cls, data)
        if renamed is not None:
            raise renamed
        return _from_mapping(cls, data, "")
    except InputError as e:
        raise InputError(str(e), source=source) from None


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain nested dicts/lists (what checkpoints and saved YAML files hold)."""
    return dataclasses.asdict(config)


# ---------------------------------------------------------------------------------------------- overrides


def _parse_override_value(text: str, tp: Any) -> Any:
    """Read an override's text as YAML, except that string fields take the text verbatim."""
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    accepts = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    if str in accepts and value is not None:
        return text
    return value


def apply_overrides(config: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``config`` with ``key.sub=value`` overrides applied (types from the fields).

    ``value`` is read as YAML (``1e-3``, ``true``, ``[a, b]``, ``null``); string fields take it verbatim.
    Keys inside ``dict`` fields may be new (``data.eval.val_unseen=R2R_val_unseen.json``).
    """
    data = to_dict(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"override {item!r} must look like section.key=value")
        renamed = renamed_key_error(type(config), key)
        if renamed is not None:
            raise InputError(str(renamed), source="--set")
        parts = key.split(".")
        node, tp = data, type(config)
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth])
            if dataclasses.is_dataclass(tp):
                hints = typing.get_type_hints(tp)
                if part not in hints:
                    raise _unknown_key(part, list(hints), f"{where}." if where else "")
                tp = hints[part]
            elif typing.get_origin(tp) is dict:
                tp = typing.get_args(tp)[1]
            else:
                raise InputError(f"config key {where!r} is a value, not a section; cannot set {key!r}")
            if last:
                node[part] = _coerce(_parse_override_value(text, tp), tp, key)
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
    return from_dict(type(config), data, source="--set")


# ---------------------------------------------------------------------------------------------- files


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", source=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"malformed YAML{where}: {getattr(e, 'problem', e)}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("a config file must be a mapping of sections", source=str(path))
    return data


def config_class_for(problem: str) -> type[TrainConfig]:
    """The config dataclass of a problem (its ``config_class``)."""
    from valan.problems import problem_class

    return problem_class(problem).config_class


def config_from_dict(data: Mapping, source: str | None = None, schema: type[T] | None = None) -> T:
    """Build a config from a plain dict (e.g. a checkpoint's ``config``), choosing the class by ``problem``."""
    if schema is None:
        problem = data.get("problem", TrainConfig.problem)
        if not isinstance(problem, str):
            raise InputError(f"problem: expected a name, got {problem!r}", source=source)
        try:
            schema = config_class_for(problem)
        except InputError as e:
            raise InputError(str(e), source=source) from None
    return from_dict(schema, data, source=source)


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                schema: type[T] | None = None) -> T:
    """Load a YAML config (``None``: the embedded default ``configs/r2r_sample.yaml``) and apply overrides.

    An override of ``problem`` picks the config class before the file is validated.
    """
    if path is None:
        from valan.configs import config_path

        path = config_path("r2r_sample.yaml")
    path = Path(path)
    data = _read_yaml(path)
    for item in overrides:
        key, _, text = item.partition("=")
        if key.strip() == "problem":
            data["problem"] = text.strip()
    config = config_from_dict(data, source=str(path), schema=schema)
    return apply_overrides(config, [o for o in overrides if o.partition("=")[0].strip() != "problem"])


def save_config(path: str | os.PathLike, config: Any) -> Path:
    """Write the effective config as YAML atomically (sections in field order)."""
    path = Path(path)
    with atomic_write(path) as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False, default_flow_style=False)
    return path
