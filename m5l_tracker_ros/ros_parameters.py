"""ROS parameters generated from the config dataclasses' metadata.

Each leaf field of a config class (``m5l_core.config.describe``) becomes one parameter whose
descriptor carries the field's help text, numeric range, choices and read-only flag, so the
dataclass stays the single home of defaults and limits. Values coming back from ROS (the
params file, ``ros2 param set``) are checked by the same ``from_dict`` that checks YAML
files, so an invalid value is refused with the same reason everywhere.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from m5l_core.config import describe

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_SCALARS = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
            str: Parameter.Type.STRING}
_ARRAYS = {bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
           float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}


class UnsupportedFieldError(TypeError):
    """A config field has a type that has no ROS parameter equivalent."""


def parameter_type(tp: Any) -> Parameter.Type:
    """ROS parameter type of a config field type (``X | None`` maps like ``X``)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return parameter_type(args[0])
    if origin is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if args and all(a == args[0] for a in args) and args[0] in _ARRAYS:
            return _ARRAYS[args[0]]
    if tp in _SCALARS:
        return _SCALARS[tp]
    raise UnsupportedFieldError(f"no ROS parameter type for {tp!r}")


def make_descriptor(name: str, meta: Mapping[str, Any], ptype: Parameter.Type) -> ParameterDescriptor:
    """Descriptor with description, range, choices and read-only flag from the field metadata."""
    descriptor = ParameterDescriptor(name=name, type=ptype.value, description=str(meta.get("help", "")),
                                     read_only=bool(meta.get("read_only", False)))
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
    if choices:
        descriptor.additional_constraints = "one of: " + ", ".join(str(c) for c in choices)
    if low is None and high is None:
        return descriptor
    if ptype == Parameter.Type.INTEGER:
        descriptor.integer_range = [IntegerRange(
            from_value=INT64_MIN if low is None else math.ceil(low),
            to_value=INT64_MAX if high is None else math.floor(high), step=0)]
    elif ptype == Parameter.Type.DOUBLE:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=-math.inf if low is None else float(low),
            to_value=math.inf if high is None else float(high), step=0.0)]
    else:  # arrays: ROS has no per-element ranges; the bounds are stated and checked by from_dict
        descriptor.additional_constraints = _join(descriptor.additional_constraints, _bounds_text(low, high))
    return descriptor


def _bounds_text(low: float | None, high: float | None) -> str:
    if low is None:
        return f"each value <= {high}"
    return f"each value >= {low}" if high is None else f"each value in [{low}, {high}]"


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def declare_config(node: Any, cls: type, prefix: str = "") -> list[str]:
    """Declare one parameter per leaf field of ``cls`` (names ``prefix + dotted field``)."""
    names = []
    for dotted, meta in describe(cls):
        name = prefix + dotted
        ptype = parameter_type(meta["type"])
        descriptor = make_descriptor(name, meta, ptype)
        default = meta["default"]
        if default is None or (isinstance(default, tuple) and not default):
            # No value to infer from (None, empty array): declare by type; unset means the default.
            node.declare_parameter(name, ptype, descriptor)
        else:
            node.declare_parameter(name, list(default) if isinstance(default, tuple) else default, descriptor)
        names.append(name)
    return names


def read_values(node: Any, names: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """Nested dict (``a.b`` -> ``{"a": {"b": ...}}``) of the set parameters, ready for from_dict."""
    flat = {}
    for name in names:
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            continue
        flat[name[len(prefix):]] = plain_value(value)
    return nest(flat)


def plain_value(value: Any) -> Any:
    """ROS parameter value -> plain Python (arrays arrive as array.array or lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return list(value)


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": 2}`` -> ``{"a": {"b": 1}, "c": 2}``."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        parts = dotted.split(".")
        level = nested
        for part in parts[:-1]:
            level = level.setdefault(part, {})
        level[parts[-1]] = value
    return nested


def changes_by_prefix(parameters: Iterable[Parameter], prefixes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Split changed parameters into nested dicts per prefix (longest prefix wins; '' = the rest)."""
    ordered = sorted(prefixes, key=len, reverse=True)
    flat: dict[str, dict[str, Any]] = {p: {} for p in ordered}
    for parameter in parameters:
        prefix = next(p for p in ordered if parameter.name.startswith(p))
        flat[prefix][parameter.name[len(prefix):]] = plain_value(parameter.value)
    return {p: nest(values) for p, values in flat.items() if values}
