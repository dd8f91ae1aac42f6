"""Validating nested dataclasses from plain YAML values, and the YAML dialect of the config files.

Every error names the dotted key path (``trainer.lr``), the rule and the value; unknown keys name a
close match and the keys that are allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

import yaml

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "YamlLoader",
    "build",
    "check",
    "check_yaml_shape",
    "convert",
    "dump_yaml",
    "key_error",
    "load_yaml_text",
    "plain",
    "to_plain",
]


# ---------------------------------------------------------------------------------------------------
# YAML: floats such as 1e-3 (YAML 1.2), and duplicate keys are errors
class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 numbers (``1e-3`` is a float, ``010`` is ten) that refuses duplicate keys."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping(loader: YamlLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


YamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")


def _construct_int(loader: YamlLoader, node: yaml.ScalarNode) -> int:
    """YAML 1.2 integers: ``010`` is ten (YAML 1.1 would read octal 8); ``0x10`` still works."""
    text = loader.construct_scalar(node)
    if _LEADING_ZERO.match(text):
        return int(text.replace("_", ""), 10)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


YamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


#: Deepest nesting of mappings and lists a YAML document may have (aliases expanded). Config files
#: nest four or five levels; the bound keeps hostile documents (``[[[[...`` 5,000 deep) from exhausting
#: Python's recursion limit.
MAX_YAML_DEPTH = 64
#: Most values (scalars, lists and mappings) a YAML document may hold once its aliases are expanded.
#: Refuses "billion laughs" documents, whose nested aliases expand to billions of values, before any
#: is expanded.
MAX_YAML_VALUES = 100_000


def _line(event: yaml.Event) -> str:
    return f"line {event.start_mark.line + 1}" if event.start_mark is not None else "unknown line"


def check_yaml_shape(text: str, source: str) -> None:
    """Refuse YAML nested deeper than :data:`MAX_YAML_DEPTH` or expanding beyond :data:`MAX_YAML_VALUES`.

    Reads the event stream (no recursion, nothing expanded): every collection, scalar and alias adds
    its expanded size to a running count, and the depth of every value (an alias counts with the
    depth of what it refers to) is checked as it is met. An alias to a collection that is still open
    (a recursive structure) is refused too.

    Raises:
        MultiFairError: one line naming ``source``, the bound and the line of the document.
    """
    open_sizes: list[str | None] = []  # anchors of the open collections
    anchored: dict[str, tuple[int, int]] = {}  # anchor -> (expanded values, height)
    starts: list[
        tuple[int, int]
    ] = []  # per open collection: (values count at its start, height of its children)
    values = 0

    def add(size: int, height: int, event: yaml.Event) -> None:
        nonlocal values
        values += size
        if values > MAX_YAML_VALUES:
            raise MultiFairError(
                f"{source}: YAML document expands to more than {MAX_YAML_VALUES:,} values "
                f"(at {_line(event)}, through aliases/anchors); refused"
            )
        if len(starts) + height > MAX_YAML_DEPTH:
            raise MultiFairError(
                f"{source}: YAML nesting deeper than {MAX_YAML_DEPTH} levels (at {_line(event)}); refused"
            )
        if starts:
            first, child_height = starts[-1]
            starts[-1] = (first, max(child_height, height))

    for event in yaml.parse(text, Loader=YamlLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            add(1, 1, event)
            starts.append((values, 0))
            open_sizes.append(event.anchor)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            first, child_height = starts.pop()
            anchor = open_sizes.pop()
            if anchor is not None:
                anchored[anchor] = (values - first + 1, child_height + 1)
            if starts:  # the collection's own height, now known, bounds its parent's
                parent_first, parent_height = starts[-1]
                starts[-1] = (parent_first, max(parent_height, child_height + 1))
        elif isinstance(event, yaml.ScalarEvent):
            add(1, 1, event)
            if event.anchor is not None:
                anchored[event.anchor] = (1, 1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_sizes:
                raise MultiFairError(
                    f"{source}: YAML alias *{event.anchor} at {_line(event)} refers to a collection that "
                    "contains it (a recursive structure); refused"
                )
            if event.anchor in anchored:  # an undefined alias is reported by the loader
                add(*anchored[event.anchor], event)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML ``text``; syntax errors become a :class:`MultiFairError` naming ``source`` and the line.

    The document's shape is checked first (:func:`check_yaml_shape`): too deep or too large once its
    aliases are expanded is refused before anything is built.
    """
    try:
        check_yaml_shape(text, source)
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as err:
        raise MultiFairError(f"{source}: invalid YAML: {err}".replace("\n", " ")) from None


def dump_yaml(data: Any) -> str:
    """YAML text of plain values, keys in the given order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------------
# building dataclasses
def key_error(path: str, rule: str, value: Any) -> MultiFairError:
    """``config key `path`: expected <rule>, got <value>``."""
    return MultiFairError(f"config key `{path}`: expected {rule}, got {value!r}")


def check(predicate: Callable[[Any], bool], rule: str) -> dict[str, Any]:
    """Field metadata adding a value rule, e.g. ``field(default=1, metadata=check(lambda v: v > 0, "> 0"))``."""
    return {"check": (predicate, rule)}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of names to {_describe(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return "a plain YAML value"


def plain(value: Any, path: str, _depth: int = 0) -> Any:
    """Check that ``value`` is made of plain YAML values (null, bool, numbers, strings, lists, mappings).

    Nesting deeper than :data:`MAX_YAML_DEPTH` (e.g. a self-referencing list built in Python) is an
    error, not a ``RecursionError``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if _depth >= MAX_YAML_DEPTH:
        raise key_error(path, f"values nested at most {MAX_YAML_DEPTH} levels deep", type(value).__name__)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{path}[{i}]", _depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise key_error(path, "string keys", k)
            out[k] = plain(v, _join(path, k), _depth + 1)
        return out
    raise key_error(path, "a plain YAML value (null, bool, number, string, list or mapping)", value)


def _one_item_hint(tp: Any, value: Any, path: str) -> str:
    """`` (write [x] for a list of one item)`` when ``value`` would be a valid item of the list type ``tp``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and args and args[-1] is not Ellipsis:
        return ""
    if value is None or isinstance(value, Mapping):
        return ""
    try:
        convert(args[0] if args else Any, value, path)
    except MultiFairError:
        return ""
    return f" (write [{value}] for a list of one item)"


def convert(tp: Any, value: Any, path: str) -> Any:
    """Validate ``value`` against the type ``tp`` and return it in its Python form."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return plain(value, path)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, path)
            except MultiFairError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise key_error(path, _describe(tp), value)
    if tp is type(None):
        if value is not None:
            raise key_error(path, "null", value)
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise key_error(path, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise key_error(path, "an integer", value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise key_error(path, "a number", value)
        if not math.isfinite(value):
            raise key_error(path, "a finite number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise key_error(path, "a string", value)
        return value
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(
            isinstance(a, bool) for a in args if a == value
        ):
            hint = close_match_hint(str(value), [str(a) for a in args])
            raise MultiFairError(
                f"config key `{path}`: expected one of {', '.join(repr(a) for a in args)}, got {value!r}{hint}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise MultiFairError(f"{key_error(path, _describe(tp), value)}{_one_item_hint(tp, value, path)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise key_error(path, _describe(tp), value)
            return tuple(convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise key_error(path, _describe(tp), value)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise key_error(path, "string keys", k)
            out[k] = convert(args[1] if args else Any, v, _join(path, k))
        return out
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    raise TypeError(f"unsupported schema type {tp!r} at {path}")  # a defect of the schema, not user input


def build(
    cls: type, data: Any, path: str = "", *, custom: bool = True, prebuilt: Mapping[str, Any] | None = None
) -> Any:
    """Build the dataclass ``cls`` from the mapping ``data``, validating every field.

    ``cls`` may define ``from_section(data, path)`` to build itself (unless ``custom`` is false, which
    that method passes to build its plain fields, with ``prebuilt`` field values it validated itself);
    otherwise each key must be a field
    (unknown keys are errors with a close match), values are converted with their annotations, field
    metadata ``check`` rules applied, and a :class:`MultiFairError` from ``cls.__post_init__`` is
    prefixed with the section's path.
    """
    from_section = getattr(cls, "from_section", None) if custom else None
    if from_section is not None:
        return from_section(data, path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise key_error(path or "<root>", "a mapping", data)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            where = f" in `{path}`" if path else ""
            raise MultiFairError(
                f"unknown config key `{_join(path, str(key))}`{close_match_hint(str(key), fields)}; "
                f"known keys{where}: {', '.join(fields)}"
            )
    required = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and n not in data
        and n not in (prebuilt or {})
    ]
    if required:
        raise MultiFairError(
            f"config key `{_join(path, required[0])}` is required ({_describe(hints[required[0]])})"
        )
    kwargs = dict(prebuilt or {})
    for name, value in data.items():
        field_path = _join(path, name)
        converted = convert(hints[name], value, field_path)
        rule = fields[name].metadata.get("check")
        if rule is not None and converted is not None and not rule[0](converted):
            raise key_error(field_path, rule[1], converted)
        kwargs[name] = converted
    try:
        return cls(**kwargs)
    except (MultiFairError, ValueError) as err:  # ValueError: a plugin's options dataclass checking itself
        message = str(err)
        if message.startswith("config key `"):
            raise
        raise MultiFairError(f"config section `{path or '<root>'}`: {message}") from None


def to_plain(obj: Any) -> Any:
    """Plain YAML values of a dataclass tree (objects with ``to_section()`` use it)."""
    custom = getattr(obj, "to_section", None)
    if custom is not None and dataclasses.is_dataclass(obj):
        return custom()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    return obj
