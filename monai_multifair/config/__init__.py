"""Run configuration: a validated YAML schema, packaged presets and ``key.path=value`` overrides.

```python
from monai_multifair.config import load_config
cfg = load_config("demo", overrides=["trainer.epochs=3", "method.name=groupdro"])
cfg.trainer.lr, cfg.method.options.eta
print(cfg.to_yaml())          # the resolved config
```

A config is a :class:`RunConfig` dataclass tree with sections ``data``, ``encoders``, ``fusion``,
``trainer``, ``method``, ``postprocessing``, ``evaluation``, ``output`` and ``pipeline``;
``docs/reference/config.md`` lists every key.
"""

from typing import TYPE_CHECKING

from monai_multifair._lazy import lazy_exports
from monai_multifair.config.loader import (
    apply_overrides,
    list_presets,
    load_config,
    load_raw,
    parse_override,
    preset_path,
)

# The schema imports the plugin registries (torch): its names are imported on first use (PEP 562), so
# that a missing config file, a YAML error or a malformed ``--set`` is reported without loading them.
_SCHEMA_NAMES = (
    "ENCODER_KINDS",
    "LEGACY_DATA_KEYS",
    "DataConfig",
    "EncoderConfig",
    "EncoderWeightsConfig",
    "EvaluationConfig",
    "FusionConfig",
    "MethodConfig",
    "OutputConfig",
    "PipelineConfig",
    "PostprocessingConfig",
    "RunConfig",
    "TrainerConfig",
)

if TYPE_CHECKING:
    from monai_multifair.config.schema import (
        ENCODER_KINDS,
        LEGACY_DATA_KEYS,
        DataConfig,
        EncoderConfig,
        EncoderWeightsConfig,
        EvaluationConfig,
        FusionConfig,
        MethodConfig,
        OutputConfig,
        PipelineConfig,
        PostprocessingConfig,
        RunConfig,
        TrainerConfig,
    )


__getattr__, __dir__ = lazy_exports(
    __name__, dict.fromkeys(_SCHEMA_NAMES, "monai_multifair.config.schema"), globals()
)


__all__ = [
    "ENCODER_KINDS",
    "LEGACY_DATA_KEYS",
    "DataConfig",
    "EncoderConfig",
    "EncoderWeightsConfig",
    "EvaluationConfig",
    "FusionConfig",
    "MethodConfig",
    "OutputConfig",
    "PipelineConfig",
    "PostprocessingConfig",
    "RunConfig",
    "TrainerConfig",
    "apply_overrides",
    "list_presets",
    "load_config",
    "load_raw",
    "parse_override",
    "preset_path",
]
