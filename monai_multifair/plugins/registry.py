"""The registries: what the ``multifair_encoders``, ``multifair_methods`` and ``multifair_data_sources``
hooks of all plugins returned.

Built by ``MultiFairPluginManager.encoder_registry()`` / ``method_registry()`` /
``data_source_registry()``; users normally call the module-level functions (``create_encoder``,
``list_encoders``, ``create_method``, ``list_methods``, ``list_data_sources``, ``get_data_source_spec``) of
:mod:`monai_multifair.plugins` instead. The registries share :class:`SpecRegistry`: specs by name,
names claimed by two plugins (unusable, both named), and plugins that failed.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.plugins.data_source_spec import DataSourceSpec
from monai_multifair.plugins.encoder_spec import MODALITIES, EncoderSpec
from monai_multifair.plugins.method_spec import METHOD_KINDS, MethodSpec

if TYPE_CHECKING:
    import pluggy
    from torch import nn


class PluginLoadWarning(UserWarning):
    """Warned when an encoder is created while some plugin failed to load or to answer its hook."""


@dataclasses.dataclass(frozen=True)
class PluginLoadFailure:
    """A plugin that could not be used, kept so the other plugins still work and the failure is shown.

    Args:
        plugin: the plugin (entry-point or module) name.
        stage: ``"import"`` (loading the module failed), ``"register"`` (pluggy refused it, or it
            implements no or unknown hooks) or ``"hook"`` (its ``multifair_encoders`` raised or returned
            something other than a list of ``EncoderSpec``).
        source: where it came from, e.g. ``"entry point acme = acme.plugin"``.
        distribution: the installed distribution that declared it, if known.
        version: that distribution's version, if known.
        error: ``"ExceptionType: message"``.
    """

    plugin: str
    stage: str
    source: str
    distribution: str | None
    version: str | None
    error: str

    def __str__(self) -> str:
        origin = f" from {self.distribution} {self.version}" if self.distribution else ""
        return f"plugin {self.plugin!r} ({self.source}{origin}) failed at {self.stage}: {self.error}"

    def describe(self) -> dict[str, Any]:
        """Plain-value summary for listings and JSON."""
        return dataclasses.asdict(self)


def describe_exception(exc: BaseException) -> str:
    """``"ExceptionType: message"`` for a failure record."""
    return f"{type(exc).__name__}: {exc}"


class SpecRegistry:
    """Specs by name, name conflicts between plugins, and plugin failures (one hook's view).

    Args:
        specs: every spec returned by the hooks, each with its ``plugin`` filled in.
        failures: plugins that failed to load or to answer the hook.
    """

    #: The hook whose results the registry holds; the spec type it returns; the word for one entry.
    hook: str = ""
    spec_type: type = object
    noun: str = "entry"

    def __init__(self, specs: Iterable[Any], failures: Sequence[PluginLoadFailure] = ()) -> None:
        by_name: dict[str, list[Any]] = {}
        for spec in specs:
            by_name.setdefault(spec.name, []).append(spec)
        self._specs = {name: group[0] for name, group in by_name.items() if len(group) == 1}
        self._conflicts = {
            name: tuple(spec.plugin for spec in group) for name, group in by_name.items() if len(group) > 1
        }
        self.failures: tuple[PluginLoadFailure, ...] = tuple(failures)
        self._warned = False

    @classmethod
    def from_plugin_manager(
        cls, pm: pluggy.PluginManager, load_failures: Sequence[PluginLoadFailure] = ()
    ) -> SpecRegistry:
        """Call the hook on each registered plugin separately, so every spec is attributed to its
        plugin; a plugin whose hook raises or returns a wrong value is recorded as a failure and the
        others are kept."""
        specs: list[Any] = []
        failures = list(load_failures)
        registered = [(name, plugin) for name, plugin in pm.list_name_plugin() if plugin is not None]
        implementers = {impl.plugin_name for impl in getattr(pm.hook, cls.hook).get_hookimpls()}
        for name in sorted(name for name, _ in registered):
            if name not in implementers:
                continue
            others = [other for other_name, other in registered if other_name != name]
            caller = pm.subset_hook_caller(cls.hook, remove_plugins=others)
            try:
                results = caller()
            except Exception as exc:  # a broken plugin must not break the others: recorded and surfaced
                failures.append(_hook_failure(pm, name, describe_exception(exc)))
                continue
            for result in results:
                if not isinstance(result, (list, tuple)) or not all(
                    isinstance(s, cls.spec_type) for s in result
                ):
                    failures.append(
                        _hook_failure(
                            pm,
                            name,
                            f"TypeError: {cls.hook} must return a list of {cls.spec_type.__name__}, "
                            f"got {result!r}",
                        )
                    )
                    continue
                specs.extend(spec.with_plugin(name) for spec in result)
        return cls(specs, failures)

    @property
    def conflicts(self) -> dict[str, tuple[str, ...]]:
        """Names offered by more than one plugin, with those plugins (such names cannot be used)."""
        return dict(self._conflicts)

    def names(self) -> list[str]:
        """The usable names, sorted."""
        return sorted(self._specs)

    def get(self, name: str) -> Any:
        """The spec registered under ``name``.

        Raises:
            MultiFairError: the name is unknown (the message lists the known names, a close match and any
                plugin that failed to load) or offered by several plugins (the message names them).
        """
        if name in self._conflicts:
            plugins = " and ".join(repr(p) for p in self._conflicts[name])
            raise MultiFairError(
                f"{self.noun} name {name!r} is registered by more than one plugin: {plugins}; uninstall one "
                "of them or disable it with MULTIFAIR_DISABLE_PLUGINS=<plugin name>"
            )
        if not isinstance(name, str) or name not in self._specs:
            known = sorted(self._specs)
            message = (
                f"unknown {self.noun} {name!r}{close_match_hint(str(name), known)}; known: "
                f"{', '.join(known) or 'none'}"
            )
            if self.failures:
                message += "; plugins that failed to load: " + "; ".join(str(f) for f in self.failures)
            raise MultiFairError(message)
        return self._specs[name]

    def _warn_failures(self) -> None:
        if self.failures and not self._warned:
            self._warned = True
            warnings.warn(
                PluginLoadWarning(
                    f"some {self.noun} plugins could not be used: " + "; ".join(str(f) for f in self.failures)
                ),
                stacklevel=4,
            )


class EncoderRegistry(SpecRegistry):
    """Encoder specs by name (the ``multifair_encoders`` hook), conflicts and failures."""

    hook = "multifair_encoders"
    spec_type = EncoderSpec
    noun = "encoder"

    def list(self, modality: str | None = None) -> list[EncoderSpec]:
        """The usable specs (conflicting names left out), sorted by name, optionally of one modality."""
        if modality is not None and modality not in MODALITIES:
            raise MultiFairError(
                f"expected `modality` to be one of {', '.join(sorted(MODALITIES))} or None, "
                f"got {modality!r}{close_match_hint(modality, MODALITIES)}"
            )
        return [
            spec
            for name, spec in sorted(self._specs.items())
            if modality is None or spec.modality == modality
        ]

    def create(self, name: str, **options: Any) -> nn.Module:
        """Build the encoder ``name`` with ``options`` passed to its factory.

        Returns:
            An ``nn.Module`` whose ``out_features`` is a positive integer.

        Raises:
            MultiFairError: unknown or conflicting name, or the factory returned something that is not an
                encoder (not an ``nn.Module``, or no positive integer ``out_features``).
            TypeError: an option the factory does not accept, a required option missing, or a
                ``TypeError`` raised by the factory (re-raised with the encoder name).
        """
        spec = self.get(name)
        self._warn_failures()
        _check_options(spec, options)
        try:
            module = spec.factory(**options)
        except TypeError as exc:
            raise TypeError(
                f"encoder {name!r} (plugin {spec.plugin!r}) could not be built from options "
                f"{sorted(options)}: {exc}"
            ) from exc
        from torch import nn  # here, not at the top: listing and config checks never load torch

        if not isinstance(module, nn.Module):
            raise MultiFairError(
                f"expected the factory of encoder {name!r} (plugin {spec.plugin!r}) to return a "
                f"torch.nn.Module, got {type(module).__name__}"
            )
        width = getattr(module, "out_features", None)
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise MultiFairError(
                f"expected encoder {name!r} (plugin {spec.plugin!r}) to have a positive integer attribute "
                f"`out_features` (its feature width), got {width!r}"
            )
        return module


class MethodRegistry(SpecRegistry):
    """Fairness method specs by name (the ``multifair_methods`` hook), conflicts and failures."""

    hook = "multifair_methods"
    spec_type = MethodSpec
    noun = "method"

    def list(self, kind: str | None = None) -> list[MethodSpec]:
        """The usable specs (conflicting names left out), sorted by name, optionally of one kind."""
        if kind is not None and kind not in METHOD_KINDS:
            raise MultiFairError(
                f"expected `kind` to be one of {', '.join(METHOD_KINDS)} or None, got {kind!r}"
                f"{close_match_hint(str(kind), METHOD_KINDS)}"
            )
        return [spec for _, spec in sorted(self._specs.items()) if kind is None or spec.kind == kind]

    def get(self, name: str, kind: str | None = None) -> MethodSpec:
        """The spec registered under ``name`` (of ``kind`` when given; errors as :meth:`SpecRegistry.get`,
        an unknown name with ``kind`` lists the methods of that kind only)."""
        if (
            kind is not None
            and isinstance(name, str)
            and name not in self._specs
            and name not in self._conflicts
        ):
            known = [s.name for s in self.list(kind)]
            message = (
                f"unknown {kind} method {name!r}{close_match_hint(name, known)}; known {kind} methods: "
                f"{', '.join(known) or 'none'}"
            )
            if self.failures:
                message += "; plugins that failed to load: " + "; ".join(str(f) for f in self.failures)
            raise MultiFairError(message)
        spec = super().get(name)
        if kind is not None and spec.kind != kind:
            others = ", ".join(s.name for s in self.list(kind))
            raise MultiFairError(
                f"method {name!r} is a {spec.kind} method, expected a {kind} method; {kind} methods: {others}"
            )
        return spec

    def create(self, name: str, options: Any = None, *, kind: str | None = None) -> Any:
        """Build the method ``name`` from validated ``options`` (``None``: the defaults).

        Raises:
            MultiFairError: unknown, conflicting or wrong-kind name, or options of the wrong type.
        """
        spec = self.get(name, kind)
        self._warn_failures()
        if options is None and spec.options is not None:
            options = spec.options()
        if spec.options is not None and not isinstance(options, spec.options):
            raise MultiFairError(
                f"expected the options of method {name!r} to be a {spec.options.__name__}, got "
                f"{type(options).__name__}"
            )
        return spec.factory(options)


class DataSourceRegistry(SpecRegistry):
    """Data source specs by name (the ``multifair_data_sources`` hook), conflicts and failures."""

    hook = "multifair_data_sources"
    spec_type = DataSourceSpec
    noun = "data source"

    def list(self) -> list[DataSourceSpec]:
        """The usable specs (conflicting names left out), sorted by name."""
        return [spec for _, spec in sorted(self._specs.items())]

    def get(self, name: str) -> DataSourceSpec:
        """The spec registered under ``name`` (errors as :meth:`SpecRegistry.get`)."""
        spec = super().get(name)
        self._warn_failures()
        return spec


def _hook_failure(pm: pluggy.PluginManager, name: str, error: str) -> PluginLoadFailure:
    origin = getattr(pm, "plugin_origin", None)
    source, distribution, version = origin(name) if origin else ("registered in code", None, None)
    return PluginLoadFailure(name, "hook", source, distribution, version, error)


def _check_options(spec: EncoderSpec, options: Mapping[str, Any]) -> None:
    """Match ``options`` against the factory signature before calling it, for a precise message."""
    try:
        signature = inspect.signature(spec.factory)
    except (TypeError, ValueError):  # no introspectable signature (e.g. a C callable): the call decides
        return
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = None
    else:
        accepted = [
            n
            for n, p in params.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
    where = f"encoder {spec.name!r} (plugin {spec.plugin!r})"
    if accepted is not None:
        for key in options:
            if key not in accepted:
                raise TypeError(
                    f"{where} got an unknown option {key!r}{close_match_hint(key, accepted)}; "
                    f"accepted options: {', '.join(accepted) or 'none'}"
                )
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and n not in options
    ]
    if missing:
        raise TypeError(f"{where} needs the option(s) {', '.join(repr(m) for m in missing)}")
