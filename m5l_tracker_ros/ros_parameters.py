"""ROS parameters generated from the config dataclasses' metadata.

Each leaf field of a config class (``m5l_core.config.describe``) becomes one parameter whose
descriptor carries the field's help text, numeric range, choices and read-only flag, so the
dataclass stays the single home of defaults and limits. Values coming back from ROS (the
params file, ``ros2 param set``) are checked by the same ``from_dict`` that checks YAML
files, so an invalid value is refused with the same reason everywhere.

Every parameter holds a value (an empty tuple default becomes an empty array of its type), so
``ros2 param get`` and ``ros2 param dump`` answer for all of them and a dumped file loads back.
Integers given for float parameters (``initial_bbox: [1, 2, 3, 4]``, ``ros2 param set ... 1``)
are taken as floats, as users write them.
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
# given type -> the float type it may stand for
_WIDENED = {Parameter.Type.INTEGER: Parameter.Type.DOUBLE,
            Parameter.Type.INTEGER_ARRAY: Parameter.Type.DOUBLE_ARRAY}


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
        overrides = getattr(node, "_parameter_overrides", {})
        if name in overrides:
            overrides[name] = widen_integers(overrides[name], ptype)
        if default is None or (isinstance(default, tuple) and not default):
            # No value to infer the type from: declare by type, then give the empty array its value
            # (a params file's `[]` arrives unset too). None stays unset: it has no ROS value.
            node.declare_parameter(name, ptype, descriptor)
            if isinstance(default, tuple) and node.get_parameter_or(name).type_ == Parameter.Type.NOT_SET:
                node.set_parameters([Parameter(name, ptype, [])])
        else:
            node.declare_parameter(name, list(default) if isinstance(default, tuple) else default, descriptor)
        names.append(name)
    return names


def widen_integers(parameter: Parameter, declared: Parameter.Type) -> Parameter:
    """``parameter`` as floats when it holds integers and ``declared`` is the float type."""
    if _WIDENED.get(parameter.type_) != declared:
        return parameter
    value = parameter.value
    widened = float(value) if declared == Parameter.Type.DOUBLE else [float(v) for v in value]
    return Parameter(parameter.name, declared, widened)


def widen_integer_changes(node: Any, parameters: list[Parameter]) -> list[Parameter]:
    """Pre-set callback: integers set on float parameters become floats before type checking."""
    widened = []
    for parameter in parameters:
        declared = (Parameter.Type(node.describe_parameter(parameter.name).type)
                    if node.has_parameter(parameter.name) else None)
        widened.append(parameter if declared is None else widen_integers(parameter, declared))
    return widened


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
