"""Typed YAML configs: files -> nested, validated dataclasses, ``--set key=value`` overrides, atomic saving.

This module is the engine only; the schemas live with what they configure (``valan.problems.config`` and
``valan.problems.<task>.config`` for navigation training, ``valan.learning.config`` for the RL machinery,
``valan.learning.supervised`` for supervised runs). A schema is a dataclass whose fields are values or nested
dataclass sections. Missing keys take the dataclass defaults (so a YAML file holds only what differs from
them), unknown keys are an ``InputError`` naming the file and the key (with the closest known key), and values
are checked against the field types (``int``, ``float``, ``bool``, ``str``, ``Literal``, optional,
``list[...]``, ``dict[str, ...]``, nested dataclasses). A schema may list moved keys in a ``RENAMED`` class
attribute (old dotted key -> new dotted key): using an old key is then a one-line error naming the new one. Keys
that older versions wrote but that never had an effect for a schema are listed in its ``RETIRED`` set and dropped
when read, so old run folders and checkpoints still load.

:func:`load_config` takes the schema, or a function choosing it from the file's contents (navigation configs
choose by their ``problem`` name: see :func:`valan.problems.load_train_config`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, TypeVar

import yaml

from valan.errors import InputError
from valan.io import atomic_write, read_text

T = TypeVar("T")


def require(condition: bool, message: str) -> None:
    """Raise ``InputError(message)`` unless ``condition``: value checks in a section's ``__post_init__``."""
    if not condition:
        raise InputError(message)


# ---------------------------------------------------------------------------------------------- type checking


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` (as loaded by yaml.safe_load) against the annotation ``tp``; return the typed value."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # already typed (an override's value inside a list, say)
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: expected a section (mapping), got {value!r}")
        return _from_mapping(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors, section_errors = [], []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except InputError as e:
                errors.append(str(e))
                if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
                    section_errors.append(str(e))  # a mapping meant for this section: its own error says most
        if len(section_errors) == 1:
            raise InputError(section_errors[0])
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


def _without_retired(cls: type, data: Mapping) -> Mapping:
    """``data`` less the dotted keys in ``cls.RETIRED``: keys older versions wrote into saved configs and
    checkpoints although they had no effect for this schema (so old run folders still load)."""
    retired: frozenset[str] = getattr(cls, "RETIRED", frozenset())
    if not retired:
        return data

    def strip(node: Mapping, prefix: str) -> dict:
        return {key: strip(value, f"{prefix}{key}.") if isinstance(value, Mapping) else value
                for key, value in node.items() if f"{prefix}{key}" not in retired}

    return strip(data, "")


def upgrade_saved(cls: type, data: Mapping) -> dict:
    """A config mapping that an older version saved (a checkpoint's ``config``, a run's ``config.yaml``) with every
    key of ``cls.RENAMED`` moved to its new place, so it loads with :func:`from_dict`. A new key that is already
    set wins; of two old keys renamed to one new key, the first in ``RENAMED`` wins. Sections left empty go."""
    out = copy.deepcopy(dict(data))
    for old, new in getattr(cls, "RENAMED", {}).items():
        *sections, name = old.split(".")
        parents = [out]
        for section in sections:
            child = parents[-1].get(section)
            if not isinstance(child, dict):
                break
            parents.append(child)
        else:
            if name in parents[-1]:
                value = parents[-1].pop(name)
                *new_sections, new_name = new.split(".")
                target = out
                for section in new_sections:
                    target = target.setdefault(section, {})
                target.setdefault(new_name, value)
                for section, parent in zip(reversed(sections), reversed(parents[:-1])):
                    if parent[section] == {}:
                        del parent[section]
    return out


def from_dict(cls: type[T], data: Mapping, source: str | None = None) -> T:
    """Build the dataclass ``cls`` from a nested mapping, with defaults for missing keys.

    Raises ``InputError`` naming ``source`` and the key for unknown keys, wrong types and invalid values, and for
    keys listed in ``cls.RENAMED`` (naming the new key). Keys in ``cls.RETIRED`` are dropped.
    """
    try:
        data = _without_retired(cls, data)
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


def _absolute_paths(value: Any, sentinels: Sequence[str]) -> Any:
    """``value`` (a path, or a list or dict of them, or a section with ``PATH_FIELDS`` of its own) with relative
    paths made absolute against the working directory; ``sentinels`` (e.g. ``""``, ``"synthetic"``) and ``None``
    stay as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{name: _absolute_paths(getattr(value, name), sentinels)
                                             for name in getattr(value, "PATH_FIELDS", ())})
    if isinstance(value, list):
        return [_absolute_paths(v, sentinels) for v in value]
    if isinstance(value, dict):
        return {k: _absolute_paths(v, sentinels) for k, v in value.items()}
    if not isinstance(value, str) or value in sentinels:
        return value
    return str(Path.cwd() / os.path.expanduser(value))  # an absolute right-hand side replaces the cwd


def apply_overrides(config: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``config`` with ``key.sub=value`` overrides applied (types from the fields).

    ``value`` is read as YAML (``1e-3``, ``true``, ``[a, b]``, ``null``); string fields take it verbatim.
    Keys inside ``dict`` fields may be new (``data.eval.val_unseen=R2R_val_unseen.json``).

    Fields that a section lists in its ``PATH_FIELDS`` class attribute name files: relative paths given
    here are made absolute against the working directory (the command line's convention), while the same
    fields in a config file keep their relative names for the section to resolve (e.g. against ``data.root``);
    the section's ``PATH_SENTINELS`` (e.g. ``"synthetic"``) are not paths.
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
        owner: Any = None  # the section holding the field the override is in, and that field
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth])
            if dataclasses.is_dataclass(tp):
                hints = typing.get_type_hints(tp)
                if part not in hints:
                    raise _unknown_key(part, list(hints), f"{where}." if where else "")
                owner = (tp, part)
                tp = hints[part]
            elif typing.get_origin(tp) is dict:
                tp = typing.get_args(tp)[1]
            else:
                raise InputError(f"config key {where!r} is a value, not a section; cannot set {key!r}")
            if last:
                node[part] = _coerce(_parse_override_value(text, tp), tp, key)
                section, field_name = owner
                if field_name in getattr(section, "PATH_FIELDS", ()):
                    node[part] = _absolute_paths(node[part], getattr(section, "PATH_SENTINELS", ("",)))
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
    return from_dict(type(config), data, source="--set")


# ---------------------------------------------------------------------------------------------- files


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError("config file not found", source=str(path))
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise InputError("YAML nested too deeply", source=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"malformed YAML{where}: {getattr(e, 'problem', e)}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("a config file must be a mapping of sections", source=str(path))
    return data


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (),
                schema: type[T] | Callable[[Mapping, str], type[T]] | None = None) -> T:
    """Load a YAML config file and apply ``--set`` overrides.

    ``schema`` is the dataclass, or ``choose(data, source) -> dataclass`` picking it from the file's mapping
    after the overrides of top-level scalar keys (e.g. ``problem=touchdown``) were applied to that mapping.
    """
    path = Path(path)
    data = _read_yaml(path)
    top_level = [o for o in overrides if "." not in o.partition("=")[0].strip() and "=" in o]
    for item in top_level:
        key, _, text = item.partition("=")
        data[key.strip()] = text.strip()
    if schema is None:
        raise TypeError("load_config needs a schema")
    cls = schema if isinstance(schema, type) else schema(data, str(path))
    config = from_dict(cls, data, source=str(path))
    return apply_overrides(config, [o for o in overrides if o not in top_level])


def save_config(path: str | os.PathLike, config: Any) -> Path:
    """Write the effective config as YAML atomically (sections in field order)."""
    path = Path(path)
    with atomic_write(path) as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False, default_flow_style=False)
    return path
