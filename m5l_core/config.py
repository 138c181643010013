"""Typed configuration: frozen dataclasses are the single home of every default.

Each field is declared with :func:`param`, which records a description and an optional
numeric range or choice list in the field metadata. YAML files and command-line overrides
only *override* defaults; an unknown key is an error naming the key and the file, so a typo
never silently falls back to a default. The ROS node builds its parameter descriptors from
the same metadata.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the key and source."""


def param(default: Any, help: str, *, low: float | None = None, high: float | None = None,
          choices: tuple | None = None, read_only: bool = False) -> Any:
    """Declare a config field with its description, range and choices."""
    metadata = {"help": help, "low": low, "high": high, "choices": choices, "read_only": read_only}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in frozen configs; use a tuple")
    return dataclasses.field(default=default, metadata=metadata)


def nested(cls: type) -> Any:
    """Declare a field holding another config dataclass with its own defaults."""
    return dataclasses.field(default_factory=cls, metadata={"help": cls.__doc__ or cls.__name__})


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the declared type, or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_type = args[0] if args else Any
        return tuple(_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if as_float != int(as_float):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def check_field(cls: type, name: str, value: Any, where: str) -> None:
    """Raise ConfigError when ``value`` is outside the declared range or choices."""
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}[name]
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if choices is not None and item not in choices:
            raise ConfigError(f"{where}: {item!r} is not one of {list(choices)}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if low is not None and item < low:
                raise ConfigError(f"{where}: {item} is below the minimum {low}")
            if high is not None and item > high:
                raise ConfigError(f"{where}: {item} is above the maximum {high}")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, source: str = "<dict>",
              base: T | None = None) -> T:
    """Build ``cls`` from defaults (or ``base``) overridden by ``data``; strict about keys."""
    base = base if base is not None else cls()
    if data is None:
        return base
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    types_ = _field_types(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{source}: {cls.__name__}.{key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(known))})")
        tp = types_[key]
        if _is_config(tp):
            changes[key] = from_dict(tp, value, source, getattr(base, key))
            continue
        coerced = _coerce(value, tp, where)
        check_field(cls, key, coerced, where)
        changes[key] = coerced
    return dataclasses.replace(base, **changes)


def load_yaml(cls: type[T], path: str | Path | None, section: str | None = None) -> T:
    """Read a YAML file (optionally one top-level ``section`` of it) into ``cls``."""
    if path is None:
        return cls()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if section is not None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = data.get(section, {})
    return from_dict(cls, data, str(path))


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) that YAML, JSON and checkpoints can store."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def apply_overrides(config: T, assignments: list[str], source: str = "--set") -> T:
    """Apply ``a.b.c=value`` strings (values parsed as YAML scalars) to a config."""
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"{source}: expected KEY=VALUE, got {assignment!r}")
        dotted, raw = assignment.split("=", 1)
        value: Any = yaml.safe_load(raw)
        for part in reversed(dotted.split(".")[1:]):
            value = {part: value}
        config = from_dict(type(config), {dotted.split(".")[0]: value}, source, config)
    return config


def describe(cls: type) -> list[tuple[str, dict[str, Any]]]:
    """(dotted name, metadata + default + type) for every leaf field, for docs and ROS params."""
    rows: list[tuple[str, dict[str, Any]]] = []
    types_ = _field_types(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        tp = types_[f.name]
        if _is_config(tp):
            rows += [(f"{f.name}.{name}", meta) for name, meta in describe(tp)]
        else:
            rows.append((f.name, {**f.metadata, "default": getattr(instance, f.name), "type": tp}))
    return rows
