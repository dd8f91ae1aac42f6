"""Loading run configs: YAML files, packaged presets, ``base:`` inheritance and ``--set`` overrides."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai_multifair.config.validation import load_yaml_text
from monai_multifair.errors import MultiFairError, close_match_hint

if TYPE_CHECKING:
    from monai_multifair.config.schema import RunConfig

__all__ = ["apply_overrides", "list_presets", "load_config", "load_raw", "parse_override", "preset_path"]


def list_presets() -> tuple[str, ...]:
    """Names of the packaged presets (the YAML files of ``monai_multifair/config/presets``), sorted.

    Example:
        >>> "demo" in list_presets()
        True
    """
    folder = resources.files("monai_multifair.config").joinpath("presets")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def preset_path(name: str) -> Path:
    """The packaged YAML file of preset ``name``.

    Raises:
        MultiFairError: unknown preset (with the known ones and a close match).
    """
    presets = list_presets()
    if name not in presets:
        raise MultiFairError(
            f"unknown preset {name!r}{close_match_hint(name, presets)}; known presets: {', '.join(presets)} "
            "(or give the path of a YAML file)"
        )
    return Path(str(resources.files("monai_multifair.config").joinpath("presets", f"{name}.yaml")))


def _resolve_source(source: str | Path) -> Path:
    """The YAML file that ``source`` names.

    A name ending in ``.yaml``/``.yml`` or containing a path separator is a file path. A bare name is a
    packaged preset when there is one of that name -- a folder of the same name in the working folder
    does not shadow it (a folder is never a config); a *file* of that name is ambiguous and refused.
    Any other bare name must be an existing file.
    """
    text = str(source)
    path = Path(text)
    is_path = (
        isinstance(source, Path)
        or path.suffix.lower() in (".yaml", ".yml")
        or any(sep in text for sep in ("/", "\\"))
    )
    if not is_path and text in list_presets():
        if path.is_file():
            raise MultiFairError(
                f"{text!r} names both a packaged preset and the file {str(path.resolve())!r}; write "
                f"'./{text}' for the file, or rename it (e.g. {text}.yaml)"
            )
        return preset_path(text)
    if path.is_dir():
        raise MultiFairError(f"config {text!r} is a folder, not a YAML file (or a preset name)")
    if path.is_file():
        return path
    if is_path:
        raise MultiFairError(f"config file {text!r} does not exist")
    return preset_path(text)  # unknown preset: the error lists the presets and a close match


def _read_text(path: Path) -> str:
    """The UTF-8 text of a config file; unreadable or non-UTF-8 files are one-line errors naming it."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MultiFairError(f"config file {str(path)!r} cannot be read: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise MultiFairError(
            f"config file {str(path)!r} is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line} "
            "(save it as UTF-8)"
        ) from None


def _switches_method(key: str, base: Any, child: Any) -> bool:
    """A ``method``/``postprocessing`` section naming another method than the base's (the base's options
    belong to that other method)."""
    return (
        key in ("method", "postprocessing")
        and isinstance(base, Mapping)
        and isinstance(child, Mapping)
        and "name" in child
        and child["name"] != base.get("name")
    )


#: Keys of the ``data`` section kept when ``data.source`` switches to another source: the policy for
#: unknown attribute values. The old source's section, its modalities and attributes (names in its
#: vocabulary) and the 0.1 flat keys are dropped.
_DATA_KEYS_KEPT_ON_SWITCH = ("unknown",)


def _without_source(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` reduced to what does not belong to its source (see ``_DATA_KEYS_KEPT_ON_SWITCH``)."""
    return {k: copy.deepcopy(v) for k, v in data.items() if k in _DATA_KEYS_KEPT_ON_SWITCH}


def _switches_source(key: str, base: Any, child: Any) -> bool:
    """A ``data`` section naming another ``source`` than the base's."""
    return (
        key == "data"
        and isinstance(base, Mapping)
        and isinstance(child, Mapping)
        and "source" in child
        and child["source"] != base.get("source", "synthetic")
    )


def _merge(base: dict[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: mappings merge key by key, except ``encoders``, a ``method`` /
    ``postprocessing`` section that names another method (replaced as a whole), and a ``data`` section
    that names another source (merged over the base's keys that do not belong to its source)."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if _switches_method(key, out.get(key), value):
            out[key] = copy.deepcopy(value)
        elif _switches_source(key, out.get(key), value):
            out[key] = _merge(_without_source(out[key]), value)
        elif key != "encoders" and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(source: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The plain document of a config file or preset, with ``base:`` resolved (no validation).

    A document may start from another with ``base: <preset name or YAML path>`` (a relative path is
    relative to the document's folder); its keys are merged over the base's (a ``method`` section naming
    another method replaces the base's, options included; a ``data`` section naming another source drops
    the base's section of the old source, its modalities and attributes).

    Raises:
        MultiFairError: missing, unreadable or non-UTF-8 file, unknown preset, invalid YAML (with the
            line), a document nested too deep or expanding beyond the size bound through aliases
            (:func:`~monai_multifair.config.validation.check_yaml_shape`), an empty document (no keys:
            write ``{}`` to mean every default), a document that is not a mapping, or a cycle of ``base:`` references.
    """
    path = _resolve_source(source).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise MultiFairError(f"config `base:` references form a cycle: {chain}")
    document = load_yaml_text(_read_text(path), str(path))
    if document is None:  # an empty file, or comments only: most likely the wrong file, or unsaved
        raise MultiFairError(
            f"config file {str(path)!r} is empty (no keys, comments at most); write the sections to set, "
            "e.g. `base: demo-quick`, or `{}` to run every default"
        )
    if not isinstance(document, Mapping):
        raise MultiFairError(
            f"{path}: expected a YAML mapping of sections at the top level, got {type(document).__name__}"
        )
    document = dict(document)
    base = document.pop("base", None)
    if base is None:
        return document
    if not isinstance(base, str):
        raise MultiFairError(
            f"{path}: config key `base`: expected a preset name or a YAML path, got {base!r}"
        )
    base_source: str | Path = base
    if base.lower().endswith((".yaml", ".yml")) and not Path(base).is_absolute():
        base_source = path.parent / base
    return _merge(load_raw(base_source, (*_seen, path)), document)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.path=value``; the value is read as a YAML scalar or flow collection.

    Example:
        >>> parse_override("trainer.lr=1e-3")
        (['trainer', 'lr'], 0.001)
        >>> parse_override("data.attributes=[race, gender]")
        (['data', 'attributes'], ['race', 'gender'])
    """
    if not isinstance(text, str) or "=" not in text:
        raise MultiFairError(f"expected an override of the form key.path=value, got {text!r}")
    key, _, raw = text.partition("=")
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise MultiFairError(f"override {text!r}: expected a dotted key path such as trainer.lr, got {key!r}")
    value = load_yaml_text(raw, f"override {text!r}") if raw.strip() else None
    return [p.strip() for p in parts], value


def apply_overrides(document: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``document`` with each ``key.path=value`` set (later overrides win).

    Missing intermediate sections are created; unknown keys are caught by validation afterwards.

    Raises:
        MultiFairError: a malformed override, or a path through a value that is not a mapping.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    out = copy.deepcopy(dict(document))
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise MultiFairError(f"override {text!r}: `{where}` is {child!r}, not a section with keys")
            node = child
        node[parts[-1]] = value
    return out


def load_config(
    source: str | Path | Mapping[str, Any] | None = "demo",
    overrides: Sequence[str] = (),
    *,
    check_encoders: bool = True,
) -> RunConfig:
    """Load, merge and validate a run config.

    Args:
        source: a preset name (:func:`list_presets`, e.g. ``"demo"``), the path of a YAML file, or an
            already parsed mapping; ``None`` gives the built-in defaults.
        overrides: ``key.path=value`` strings (the command line's ``--set``), values read as YAML
            (``trainer.lr=1e-3``, ``trainer.amp=true``, ``data.attributes=[race, gender]``).
        check_encoders: also check encoder names and options against the plugin registry.

    Returns:
        The validated :class:`~monai_multifair.config.RunConfig`.

    Raises:
        MultiFairError: every problem, naming the key path, the rule and the value; unknown keys name
            a close match.

    An override of ``method.name`` (or ``postprocessing.name``) that changes the method drops the
    options the document gave for the previous method (options set by overrides still apply):
    ``--set method.name=groupdro`` on a config written for ``multifair`` trains GroupDRO with its
    default options. Likewise an override of ``data.source`` that changes the source drops the
    document's section of the previous source, its modalities and attributes (``--set
    data.source=support2`` on ``demo-quick`` reads SUPPORT2 with its defaults).

    Example:
        >>> cfg = load_config("demo-quick", ["trainer.epochs=1", "method.name=erm"])
        >>> cfg.trainer.epochs, cfg.method.name
        (1, 'erm')
    """
    if source is None:
        document: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        document = copy.deepcopy(dict(source))
        if "base" in document:
            base = document.pop("base")
            document = _merge(load_raw(base), document)
    else:
        document = load_raw(source)
    document = _apply_with_method_switch(document, overrides)
    # imported here: the schema loads the data sources (torch), not needed for file and override errors
    from monai_multifair.config.schema import RunConfig

    return RunConfig.from_dict(document, check_encoders=check_encoders)


def _apply_with_method_switch(document: Mapping[str, Any], overrides: Sequence[str] | str) -> dict[str, Any]:
    """:func:`apply_overrides`, except that when the overrides switch ``method.name`` (or
    ``postprocessing.name``) to another method, the document's options of the previous method are
    dropped first, and when they switch ``data.source``, the document's keys of the previous source
    (overrides given with the switch still apply)."""
    after = apply_overrides(document, overrides)
    before = dict(document)
    for section in ("method", "postprocessing"):
        old, new = before.get(section), after.get(section)
        if isinstance(old, Mapping) and isinstance(new, Mapping) and old.get("name") != new.get("name"):
            before[section] = {k: v for k, v in old.items() if k != "options"}
    old, new = before.get("data"), after.get("data")
    if (
        isinstance(old, Mapping)
        and isinstance(new, Mapping)
        and old.get("source", "synthetic") != new.get("source", "synthetic")
    ):
        before["data"] = {**_without_source(old), "source": old.get("source", "synthetic")}
    return apply_overrides(before, overrides) if before != dict(document) else after
