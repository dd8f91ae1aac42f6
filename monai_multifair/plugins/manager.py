"""The plugin manager: built-in and installed plugins, failures, the public registry calls.

Plugins come from three places, in this order:

1. the built-in plugin modules (encoders, each method, each data source), named in
   :data:`~monai_multifair.plugins.builtin.BUILTIN_PLUGINS` and registered under their module names, so
   they are there even when auto-loading is off or the package is not installed. The manager imports
   them by name, as datasette does: it imports nothing it registers;
2. modules named in ``MULTIFAIR_PLUGINS`` (comma-separated import names), always loaded;
3. the entry-point group ``monai_multifair.encoders`` of every installed distribution, unless
   ``MULTIFAIR_DISABLE_PLUGIN_AUTOLOAD=1``.

``MULTIFAIR_DISABLE_PLUGINS`` (comma-separated plugin names) blocks plugins by name, e.g. to resolve an
encoder-name conflict; ``MULTIFAIR_TRACE_PLUGINS=1`` writes every hook call and its result to stderr.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

import pluggy

from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.plugins import hookspecs
from monai_multifair.plugins.builtin import BUILTIN_PLUGINS
from monai_multifair.plugins.data_source_spec import DataSourceSpec
from monai_multifair.plugins.encoder_spec import EncoderSpec
from monai_multifair.plugins.method_spec import MethodSpec
from monai_multifair.plugins.registry import (
    DataSourceRegistry,
    EncoderRegistry,
    MethodRegistry,
    PluginLoadFailure,
    describe_exception,
)

if TYPE_CHECKING:
    from torch import nn

#: Entry-point group third-party distributions declare their plugin modules in.
ENTRY_POINT_GROUP = "monai_multifair.encoders"
#: Set to 1 to skip loading installed plugins (the built-in encoders stay available).
ENV_DISABLE_AUTOLOAD = "MULTIFAIR_DISABLE_PLUGIN_AUTOLOAD"
#: Set to 1 to write every hook call and its result to stderr.
ENV_TRACE = "MULTIFAIR_TRACE_PLUGINS"
#: Comma-separated module names to load as plugins (also when auto-loading is off).
ENV_PLUGINS = "MULTIFAIR_PLUGINS"
#: Comma-separated plugin names that are never registered.
ENV_DISABLE_PLUGINS = "MULTIFAIR_DISABLE_PLUGINS"

_DISTRIBUTION = "monai-multifair"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """Read a boolean environment variable (``1/true/yes/on`` or ``0/false/no/off``, unset is false)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise MultiFairError(
        f"expected environment variable {name} to be one of {'/'.join(_TRUE[:4])} or "
        f"{'/'.join(_FALSE[1:])} (or unset), got {os.environ[name]!r}"
    )


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, as ``multifair plugins`` lists it.

    Args:
        name: plugin name (the entry-point name, or the module name of a built-in or ``MULTIFAIR_PLUGINS`` one).
        source: how it was loaded, e.g. ``"entry point acme = acme.plugin"`` or ``"built in"``.
        distribution: the installed distribution that declared it, if known.
        version: that distribution's version, if known.
        hooks: the hooks it implements.
        encoders: the encoder names it provides.
        methods: the fairness method names it provides.
        data_sources: the data source names it provides.
    """

    name: str
    source: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    encoders: tuple[str, ...]
    methods: tuple[str, ...] = ()
    data_sources: tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        """Whether this is one of the package's built-in plugin modules."""
        return self.name in BUILTIN_PLUGINS

    def describe(self) -> dict[str, Any]:
        """Plain-value summary for listings and JSON."""
        return dataclasses.asdict(self)


class MultiFairPluginManager(pluggy.PluginManager):
    """A ``pluggy.PluginManager("monai_multifair")`` that records where each plugin came from and
    every plugin that failed, instead of letting one broken plugin break the others.

    Args:
        autoload: load the entry-point group; ``None`` reads ``MULTIFAIR_DISABLE_PLUGIN_AUTOLOAD``.
        trace: trace hook calls to stderr; ``None`` reads ``MULTIFAIR_TRACE_PLUGINS``.
        builtins: register the built-in plugin modules (encoders, methods, data sources).

    Examples:
        >>> pm = MultiFairPluginManager(autoload=False)
        >>> "small-cnn-2d" in [spec.name for spec in pm.encoder_registry().list("image2d")]
        True
        >>> pm.has_plugin("monai_multifair.methods.group_dro")
        True
    """

    def __init__(
        self, autoload: bool | None = None, trace: bool | None = None, builtins: bool = True
    ) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.load_failures: list[PluginLoadFailure] = []
        self._origins: dict[str, tuple[str, str | None, str | None]] = {}
        self._encoder_registry: EncoderRegistry | None = None
        self._method_registry: MethodRegistry | None = None
        self._data_source_registry: DataSourceRegistry | None = None
        if env_flag(ENV_TRACE) if trace is None else trace:
            self.trace.root.setwriter(lambda text: sys.stderr.write(text))
            self.enable_tracing()
        for name in _env_list(ENV_DISABLE_PLUGINS):
            self.set_blocked(name)
        if builtins:
            from monai_multifair import __version__

            for module_name in BUILTIN_PLUGINS:  # a package module that fails to import is a bug: raised
                module = importlib.import_module(module_name)
                self._register_checked(module, module_name, ("built in", _DISTRIBUTION, __version__))
        for module_name in _env_list(ENV_PLUGINS):
            self.load_module(module_name, source=ENV_PLUGINS)
        if not (env_flag(ENV_DISABLE_AUTOLOAD) if autoload is None else not autoload):
            self.load_entry_points()

    # pluggy API, extended to keep the registry in step with the registered plugins
    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (see ``pluggy.PluginManager.register``); the registries are rebuilt."""
        self._forget_registries()
        return super().register(plugin, name)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        """Unregister a plugin (see ``pluggy.PluginManager.unregister``); the registries are rebuilt."""
        self._forget_registries()
        if name is not None:
            self._origins.pop(name, None)
        return super().unregister(plugin, name)

    def _forget_registries(self) -> None:
        self._encoder_registry = None
        self._method_registry = None
        self._data_source_registry = None

    def plugin_origin(self, name: str) -> tuple[str, str | None, str | None]:
        """``(source, distribution, version)`` of a registered plugin."""
        return self._origins.get(name, ("registered in code", None, None))

    def load_module(self, module_name: str, source: str = "module") -> None:
        """Import ``module_name`` and register it as a plugin of that name; a failure is recorded."""
        if self.is_blocked(module_name):
            return
        origin = (f"{source} {module_name}", None, None)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # recorded and surfaced (listing, warning on create), others keep working
            self._fail(module_name, "import", origin, describe_exception(exc))
            return
        self._register_checked(module, module_name, origin)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load and register every entry point of ``group``; each failure is recorded, not raised."""
        for entry_point in importlib.metadata.entry_points(group=group):
            dist = entry_point.dist
            origin = (
                f"entry point {entry_point.name} = {entry_point.value}",
                dist.name if dist is not None else None,
                dist.version if dist is not None else None,
            )
            if self.is_blocked(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except (
                Exception
            ) as exc:  # recorded and surfaced (listing, warning on create), others keep working
                self._fail(entry_point.name, "import", origin, describe_exception(exc))
                continue
            self._register_checked(plugin, entry_point.name, origin)

    def encoder_registry(self) -> EncoderRegistry:
        """The encoders of all registered plugins (the hooks run once, then the result is cached)."""
        if self._encoder_registry is None:
            self._encoder_registry = EncoderRegistry.from_plugin_manager(self, self.load_failures)
        return self._encoder_registry

    def method_registry(self) -> MethodRegistry:
        """The fairness methods of all registered plugins (the hooks run once, then the result is cached)."""
        if self._method_registry is None:
            self._method_registry = MethodRegistry.from_plugin_manager(self, self.load_failures)
        return self._method_registry

    def data_source_registry(self) -> DataSourceRegistry:
        """The data sources of all registered plugins (the hooks run once, then the result is cached)."""
        if self._data_source_registry is None:
            self._data_source_registry = DataSourceRegistry.from_plugin_manager(self, self.load_failures)
        return self._data_source_registry

    def _registries(self) -> dict[str, Any]:
        return {
            "encoders": self.encoder_registry(),
            "methods": self.method_registry(),
            "data_sources": self.data_source_registry(),
        }

    def failures(self) -> list[PluginLoadFailure]:
        """Plugins that failed to import, to register, or to answer one of their hooks (each once)."""
        seen: dict[tuple[str, str, str], PluginLoadFailure] = {}
        for failure in (f for registry in self._registries().values() for f in registry.failures):
            seen.setdefault((failure.plugin, failure.stage, failure.error), failure)
        return list(seen.values())

    def plugin_infos(self) -> list[PluginInfo]:
        """The registered plugins, sorted by name."""
        registries = self._registries()
        provided: dict[str, dict[str, list[str]]] = {kind: {} for kind in registries}
        for kind, registry in registries.items():
            by_plugin = provided[kind]
            for spec in registry.list():
                by_plugin.setdefault(spec.plugin, []).append(spec.name)
            for name, plugins in registry.conflicts.items():
                for plugin in plugins:
                    by_plugin.setdefault(plugin, []).append(name)
        infos = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda item: item[0]):
            if plugin is None:
                continue
            source, distribution, version = self.plugin_origin(name)
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or ()))
            infos.append(
                PluginInfo(
                    name,
                    source,
                    distribution,
                    version,
                    hooks,
                    *(tuple(sorted(provided[kind].get(name, ()))) for kind in registries),
                )
            )
        return infos

    def _fail(self, name: str, stage: str, origin: tuple[str, str | None, str | None], error: str) -> None:
        self._forget_registries()
        self.load_failures.append(PluginLoadFailure(name, stage, origin[0], origin[1], origin[2], error))

    def _register_checked(
        self, plugin: object, name: str, origin: tuple[str, str | None, str | None]
    ) -> None:
        """Register ``plugin``; refuse (and record) one pluggy rejects, one with no hook implementation
        (a forgotten ``@hookimpl``) and one implementing a hook that does not exist (a misspelt name)."""
        try:
            registered = self.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self._fail(name, "register", origin, describe_exception(exc))
            return
        if registered is None:  # blocked
            return
        callers = self.get_hookcallers(plugin) or []
        known = [caller.name for caller in callers if caller.has_spec()]
        unknown = [caller.name for caller in callers if not caller.has_spec()]
        problem = None
        if unknown:
            specs = [n for n in dir(hookspecs) if n.startswith("multifair_")]
            problem = "; ".join(
                f"implements unknown hook {hook!r}{close_match_hint(hook, specs)}; known hooks: {', '.join(specs)}"
                for hook in unknown
            )
        elif not known:
            problem = "defines no hook implementation (functions named multifair_* decorated with @hookimpl)"
        if problem is not None:
            self.unregister(plugin)
            self._fail(name, "register", origin, f"PluginValidationError: {problem}")
            return
        self._origins[name] = origin


_MANAGER: MultiFairPluginManager | None = None
_LOCK = threading.Lock()


def get_plugin_manager(reload: bool = False) -> MultiFairPluginManager:
    """The process-wide plugin manager, created (and plugins discovered) on first use.

    Args:
        reload: discard the current manager and discover plugins again (after installing one at run time,
            changing ``sys.path`` or the ``MULTIFAIR_*`` environment variables).

    Examples:
        >>> pm = get_plugin_manager()
        >>> pm.has_plugin("monai_multifair.networks.encoders.plugin")
        True
    """
    global _MANAGER
    with _LOCK:
        if reload or _MANAGER is None:
            importlib.invalidate_caches()
            _MANAGER = MultiFairPluginManager()
        return _MANAGER


def list_encoders(modality: str | None = None) -> list[EncoderSpec]:
    """The available encoders, sorted by name, optionally only those of one ``modality``.

    Names registered by more than one plugin are left out (see ``encoder_conflicts``).

    Examples:
        >>> "tabular-mlp" in {spec.name for spec in list_encoders("tabular")}
        True
    """
    return get_plugin_manager().encoder_registry().list(modality)


def get_encoder_spec(name: str) -> EncoderSpec:
    """The ``EncoderSpec`` registered under ``name`` (errors as for ``create_encoder``)."""
    return get_plugin_manager().encoder_registry().get(name)


def create_encoder(name: str, **options: Any) -> nn.Module:
    """Build the encoder registered as ``name``: ``factory(**options)``.

    The result maps its modality's input (see ``MODALITIES``) to features ``h_m`` of shape
    ``[B, out_features]``; ``out_features`` is an attribute of the module.

    Args:
        name: registry name, e.g. ``"resnet18-2d"`` (``list_encoders()`` shows them all).
        **options: keyword options of that encoder's factory.

    Raises:
        MultiFairError: unknown name (with the known names, a close match and any plugin that failed
            to load), a name registered by two plugins (both named), or a factory result that is not an
            encoder.
        TypeError: an unknown or missing option, or a ``TypeError`` raised by the factory.

    Warns:
        PluginLoadWarning: once per registry, when some plugin failed to load.

    Examples:
        >>> import torch
        >>> enc = create_encoder("tabular-mlp", in_features=5, hidden_dims=(16,))
        >>> enc(torch.randn(4, 5)).shape == (4, enc.out_features)
        True
    """
    return get_plugin_manager().encoder_registry().create(name, **options)


def list_plugins() -> list[PluginInfo]:
    """The loaded plugins (name, source, distribution, version, hooks, what each provides), sorted by name."""
    return get_plugin_manager().plugin_infos()


def plugin_load_failures() -> list[PluginLoadFailure]:
    """Plugins that failed to import, to register or to answer their hook, with the exception text."""
    return get_plugin_manager().failures()


def encoder_conflicts() -> dict[str, tuple[str, ...]]:
    """Encoder names registered by more than one plugin, with the plugin names (none can be created)."""
    return get_plugin_manager().encoder_registry().conflicts


def list_methods(kind: str | None = None) -> list[MethodSpec]:
    """The available fairness methods, sorted by name, optionally only those of one ``kind``
    (``"training"`` or ``"postprocessing"``). Names registered by more than one plugin are left out.

    Examples:
        >>> {"erm", "groupdro", "multifair"} <= {spec.name for spec in list_methods("training")}
        True
    """
    return get_plugin_manager().method_registry().list(kind)


def get_method_spec(name: str, kind: str | None = None) -> MethodSpec:
    """The ``MethodSpec`` registered under ``name`` (of ``kind`` when given).

    Raises:
        MultiFairError: unknown name (with a close match and the known names), a name registered by two
            plugins, or a method of another kind.
    """
    return get_plugin_manager().method_registry().get(name, kind)


def create_method(name: str, options: Any = None, *, kind: str | None = None) -> Any:
    """Build the fairness method registered as ``name`` from its validated ``options`` object
    (``None``: its defaults). YAML and ``--set`` values reach it through
    :class:`~monai_multifair.config.MethodConfig`, which validates them first.

    Examples:
        >>> method = create_method("groupdro")
        >>> method.options.eta
        0.01
    """
    return get_plugin_manager().method_registry().create(name, options, kind=kind)


def method_conflicts() -> dict[str, tuple[str, ...]]:
    """Method names registered by more than one plugin, with the plugin names (none can be used)."""
    return get_plugin_manager().method_registry().conflicts


def list_data_sources() -> list[DataSourceSpec]:
    """The available data sources (values of ``data.source``), sorted by name. Names registered by more
    than one plugin are left out.

    Examples:
        >>> {"synthetic", "manifest", "ad_data"} <= {spec.name for spec in list_data_sources()}
        True
    """
    return get_plugin_manager().data_source_registry().list()


def get_data_source_spec(name: str) -> DataSourceSpec:
    """The ``DataSourceSpec`` registered under ``name``.

    Raises:
        MultiFairError: unknown name (with a close match, the known names and any plugin that failed
            to load), or a name registered by two plugins (both named).
    """
    return get_plugin_manager().data_source_registry().get(name)


def data_source_conflicts() -> dict[str, tuple[str, ...]]:
    """Data source names registered by more than one plugin, with the plugin names (none can be used)."""
    return get_plugin_manager().data_source_registry().conflicts
