"""The record a plugin returns for each fairness method it provides."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from monai_multifair.errors import MultiFairError, close_match_hint

#: What a method changes: how the model is trained, or how its predictions become decisions.
METHOD_KINDS: dict[str, str] = {
    "training": "changes training (handlers, sampler, loss); one per run (config key `method`)",
    "postprocessing": "maps the trained model's scores to decisions; composes with any training method "
    "(config key `postprocessing`)",
}


def _no_search_space(trial: Any) -> dict[str, Any]:
    return {}


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One fairness method offered by a plugin through the ``multifair_methods`` hook.

    ``factory(options)`` builds the method from its validated options: a
    :class:`~monai_multifair.methods.FairnessMethod` for ``kind="training"``, a
    :class:`~monai_multifair.methods.PostProcessor` for ``kind="postprocessing"``.

    Args:
        name: registry name, unique across all plugins (``groupdro``); no whitespace.
        factory: builds the method from an ``options`` object.
        options: the options dataclass (YAML ``method.options`` are validated into it: unknown keys
            and bad values are errors naming the key path); ``None`` for a method without options.
        description: one line shown by ``multifair plugins``, with the method's source.
        kind: ``"training"`` or ``"postprocessing"`` (see :data:`METHOD_KINDS`).
        parse_options: ``parse_options(mapping, path) -> options`` when the options need their own
            validation (default: the dataclass tree validator of the config schema).
        search_space: ``search_space(trial) -> {option: value}`` for the equal-budget tuning of
            ``multifair compare``: calls ``trial.suggest_float/int/categorical`` (an Optuna trial) and
            returns the options of one trial; the default returns ``{}`` (nothing to tune).
        plugin: the plugin that registered the spec; filled in by the registry, leave it empty.
    """

    name: str
    factory: Callable[[Any], Any]
    options: type | None = None
    description: str = ""
    kind: str = "training"
    parse_options: Callable[[Mapping[str, Any], str], Any] | None = None
    search_space: Callable[[Any], dict[str, Any]] = _no_search_space
    plugin: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise MultiFairError(
                f"expected MethodSpec `name` to be a non-empty string without whitespace, got {self.name!r}"
            )
        if self.kind not in METHOD_KINDS:
            raise MultiFairError(
                f"expected MethodSpec `kind` of method {self.name!r} to be one of {', '.join(METHOD_KINDS)}, "
                f"got {self.kind!r}{close_match_hint(str(self.kind), METHOD_KINDS)}"
            )
        for attribute in ("factory", "search_space"):
            if not callable(getattr(self, attribute)):
                raise MultiFairError(
                    f"expected MethodSpec `{attribute}` of method {self.name!r} to be callable, "
                    f"got {type(getattr(self, attribute)).__name__}"
                )
        if self.options is not None and not dataclasses.is_dataclass(self.options):
            raise MultiFairError(
                f"expected MethodSpec `options` of method {self.name!r} to be a dataclass or None, "
                f"got {self.options!r}"
            )

    def with_plugin(self, plugin: str) -> MethodSpec:
        """Return a copy recording the plugin that registered this spec."""
        return dataclasses.replace(self, plugin=plugin)

    def option_defaults(self) -> dict[str, Any]:
        """``{option: default}`` of the options dataclass (fields without a default are left out)."""
        if self.options is None:
            return {}
        out = {}
        for f in dataclasses.fields(self.options):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    def describe(self) -> dict[str, Any]:
        """Plain-value summary (name, kind, plugin, description, options with defaults)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "description": self.description,
            "options": {k: _plain(v) for k, v in self.option_defaults().items()},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)
