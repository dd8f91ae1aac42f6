"""Run configuration: a validated YAML schema, packaged presets and ``key.path=value`` overrides.

```python
from monai_multifair.config import load_config
cfg = load_config("demo", overrides=["trainer.epochs=3", "modulation.enabled=false"])
cfg.trainer.lr, cfg.modulation.settings.fairness_weight
print(cfg.to_yaml())          # the resolved config
```

A config is a :class:`RunConfig` dataclass tree with sections ``data``, ``encoders``, ``fusion``,
``trainer``, ``modulation``, ``evaluation``, ``output`` and ``pipeline``; ``docs/reference/config.md`` lists
every key.
"""

from monai_multifair.config.loader import (
    apply_overrides,
    list_presets,
    load_config,
    load_raw,
    parse_override,
    preset_path,
)
from monai_multifair.config.schema import (
    ENCODER_KINDS,
    SOURCES,
    DataConfig,
    EncoderConfig,
    EncoderWeightsConfig,
    EvaluationConfig,
    FusionConfig,
    ManifestConfig,
    ModulationConfig,
    OutputConfig,
    PipelineConfig,
    RunConfig,
    TrainerConfig,
)

__all__ = [
    "ENCODER_KINDS",
    "SOURCES",
    "DataConfig",
    "EncoderConfig",
    "EncoderWeightsConfig",
    "EvaluationConfig",
    "FusionConfig",
    "ManifestConfig",
    "ModulationConfig",
    "OutputConfig",
    "PipelineConfig",
    "RunConfig",
    "TrainerConfig",
    "apply_overrides",
    "list_presets",
    "load_config",
    "load_raw",
    "parse_override",
    "preset_path",
]
