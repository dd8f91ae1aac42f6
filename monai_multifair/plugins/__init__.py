"""Plugins (pluggy): the encoder, fairness-method and data-source registries, the hooks, the built-ins.

A plugin is a module with ``@hookimpl`` functions named after the hooks of ``hookspecs``:
``multifair_encoders()`` returns ``EncoderSpec`` records, ``multifair_methods()`` returns ``MethodSpec``
records, ``multifair_data_sources()`` returns ``DataSourceSpec`` records. Third parties declare their
module in the entry-point group ``monai_multifair.encoders`` (one group for every hook); the built-in
modules (:data:`BUILTIN_PLUGINS`) implement the same hooks and are registered by module name.

This package is a leaf: it imports none of the modules it registers.

```python
from monai_multifair.plugins import EncoderSpec, hookimpl

@hookimpl
def multifair_encoders():
    return [EncoderSpec(name="my-cnn", modality="image2d", factory=build_my_cnn,
                        description="my lab's fundus CNN")]
```

```python
from monai_multifair.plugins import create_encoder, list_encoders
encoder = create_encoder("resnet18-2d", in_channels=1)   # features [B, encoder.out_features]
[spec.name for spec in list_encoders("text")]             # ['bow-text', 'hf-text', 'minilm-text']
```

Environment variables (read when the plugin manager is created, or on ``get_plugin_manager(reload=True)``):

- ``MULTIFAIR_DISABLE_PLUGIN_AUTOLOAD=1``: do not load installed plugins (built-ins stay available);
- ``MULTIFAIR_PLUGINS=mod_a,mod_b``: also load these modules as plugins (even with auto-loading off);
- ``MULTIFAIR_DISABLE_PLUGINS=name_a,name_b``: never register plugins of these names;
- ``MULTIFAIR_TRACE_PLUGINS=1``: write every hook call and its result to stderr.
"""

from typing import TYPE_CHECKING

from monai_multifair._lazy import lazy_exports
from monai_multifair.plugins.builtin import BUILTIN_PLUGINS
from monai_multifair.plugins.data_source_spec import MODALITY_KINDS, SPLIT_KINDS, DataSourceSpec
from monai_multifair.plugins.encoder_spec import MODALITIES, EncoderSpec
from monai_multifair.plugins.hookspecs import hookimpl, hookspec
from monai_multifair.plugins.method_spec import METHOD_KINDS, MethodSpec

# The plugin manager and the registries import torch (``nn.Module`` checks): their names are imported on
# first use (PEP 562), so that ``multifair --help`` can list MODALITIES without loading torch.
_LAZY = {
    **dict.fromkeys(
        (
            "ENTRY_POINT_GROUP",
            "ENV_DISABLE_AUTOLOAD",
            "ENV_DISABLE_PLUGINS",
            "ENV_PLUGINS",
            "ENV_TRACE",
            "MultiFairPluginManager",
            "PluginInfo",
            "create_encoder",
            "create_method",
            "data_source_conflicts",
            "encoder_conflicts",
            "get_data_source_spec",
            "get_encoder_spec",
            "get_method_spec",
            "get_plugin_manager",
            "list_data_sources",
            "list_encoders",
            "list_methods",
            "list_plugins",
            "method_conflicts",
            "plugin_load_failures",
        ),
        "monai_multifair.plugins.manager",
    ),
    **dict.fromkeys(
        (
            "DataSourceRegistry",
            "EncoderRegistry",
            "MethodRegistry",
            "PluginLoadFailure",
            "PluginLoadWarning",
            "SpecRegistry",
        ),
        "monai_multifair.plugins.registry",
    ),
}

if TYPE_CHECKING:
    from monai_multifair.plugins.manager import (
        ENTRY_POINT_GROUP,
        ENV_DISABLE_AUTOLOAD,
        ENV_DISABLE_PLUGINS,
        ENV_PLUGINS,
        ENV_TRACE,
        MultiFairPluginManager,
        PluginInfo,
        create_encoder,
        create_method,
        data_source_conflicts,
        encoder_conflicts,
        get_data_source_spec,
        get_encoder_spec,
        get_method_spec,
        get_plugin_manager,
        list_data_sources,
        list_encoders,
        list_methods,
        list_plugins,
        method_conflicts,
        plugin_load_failures,
    )
    from monai_multifair.plugins.registry import (
        DataSourceRegistry,
        EncoderRegistry,
        MethodRegistry,
        PluginLoadFailure,
        PluginLoadWarning,
        SpecRegistry,
    )


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_DISABLE_PLUGINS",
    "ENV_PLUGINS",
    "ENV_TRACE",
    "METHOD_KINDS",
    "MODALITIES",
    "MODALITY_KINDS",
    "SPLIT_KINDS",
    "DataSourceRegistry",
    "DataSourceSpec",
    "EncoderRegistry",
    "EncoderSpec",
    "MethodRegistry",
    "MethodSpec",
    "MultiFairPluginManager",
    "PluginInfo",
    "PluginLoadFailure",
    "PluginLoadWarning",
    "SpecRegistry",
    "create_encoder",
    "create_method",
    "data_source_conflicts",
    "encoder_conflicts",
    "get_data_source_spec",
    "get_encoder_spec",
    "get_method_spec",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "list_data_sources",
    "list_encoders",
    "list_methods",
    "list_plugins",
    "method_conflicts",
    "plugin_load_failures",
]
