"""Hook specifications of monai_multifair: every hook a plugin may implement, in one place.

A plugin is a module (or any object) with functions decorated by ``hookimpl`` whose names match the
specifications below. Hooks are called with keyword arguments; new arguments are only ever added, so an
implementation may accept fewer arguments than its specification lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from monai_multifair.plugins.data_source_spec import DataSourceSpec
    from monai_multifair.plugins.encoder_spec import EncoderSpec
    from monai_multifair.plugins.method_spec import MethodSpec

#: The pluggy project name; also the prefix of the entry-point group ``monai_multifair.encoders`` (one group
#: for every hook: a plugin module may provide encoders, methods, data sources or any mix of them).
PROJECT_NAME = "monai_multifair"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def multifair_encoders() -> list[EncoderSpec]:
    """Return the encoders this plugin provides.

    Runs once when the encoder registry is first needed (``create_encoder``, ``list_encoders``,
    ``multifair plugins``) and again after ``get_plugin_manager(reload=True)`` or after a plugin is
    registered or unregistered. It takes no arguments.

    Returns:
        A list of ``EncoderSpec``. Names must be unique across all plugins: a name offered by two
        plugins cannot be created, and the error names both plugins.

    Examples:
        >>> from monai_multifair.plugins import EncoderSpec, hookimpl
        >>> @hookimpl
        ... def multifair_encoders():
        ...     return [EncoderSpec("my-cnn", "image2d", build_my_cnn, "my lab's fundus CNN")]
    """


@hookspec
def multifair_methods() -> list[MethodSpec]:
    """Return the fairness methods this plugin provides.

    Runs once when the method registry is first needed (a config naming ``method.name`` is validated,
    ``create_method``, ``list_methods``, ``multifair plugins``) and again after
    ``get_plugin_manager(reload=True)`` or after a plugin is registered or unregistered. It takes no
    arguments.

    Returns:
        A list of ``MethodSpec``: a name, a factory building the method from its options, the options
        dataclass, a one-line description citing the method's source, its kind (``"training"`` or
        ``"postprocessing"``) and optionally its search space for ``multifair compare``. Names must be
        unique across all plugins.

    Examples:
        >>> from monai_multifair.plugins import MethodSpec, hookimpl
        >>> @hookimpl
        ... def multifair_methods():
        ...     return [MethodSpec("focal", FocalMethod, FocalOptions, "focal loss (Lin et al., 2017)")]
    """


@hookspec
def multifair_data_sources() -> list[DataSourceSpec]:
    """Return the data sources (values of ``data.source``) this plugin provides.

    Runs once when the data-source registry is first needed (a config's ``data`` section is validated,
    ``build_datasets``, ``list_data_sources``, ``multifair plugins``) and again after
    ``get_plugin_manager(reload=True)`` or after a plugin is registered or unregistered. It takes no
    arguments.

    Returns:
        A list of ``DataSourceSpec``: a name, a description, ``build_split``, the modalities offered,
        the options dataclass of the section ``data.<name>`` and how the source may be re-split by
        ``multifair compare``. Names must be unique across all plugins.

    Examples:
        >>> from monai_multifair.plugins import DataSourceSpec, hookimpl
        >>> @hookimpl
        ... def multifair_data_sources():
        ...     return [DataSourceSpec("my-registry", "my lab's registry", build_my_split, {"ct": "volume"})]
    """
