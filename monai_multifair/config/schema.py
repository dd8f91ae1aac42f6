"""The run configuration: a tree of validated dataclasses, one per YAML section.

Sections: ``data`` (:class:`DataConfig`), ``encoders`` (``{modality:`` :class:`EncoderConfig` ``}``),
``fusion`` (:class:`FusionConfig`), ``trainer`` (:class:`TrainerConfig`), ``method``
(:class:`MethodConfig`), ``postprocessing`` (:class:`PostprocessingConfig`, optional), ``evaluation``
(:class:`EvaluationConfig`), ``output`` (:class:`OutputConfig`), ``pipeline`` (:class:`PipelineConfig`).
The deprecated ``modulation`` section still loads, as ``method: {name: multifair, ...}`` (or ``erm``
when ``enabled: false``), with a warning. YAML keys equal the field names; see
``docs/reference/config.md``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from monai_multifair.config.transform_specs import check_transform_specs
from monai_multifair.config.validation import build, check, convert, dump_yaml, key_error, to_plain
from monai_multifair.errors import MultiFairError, close_match, close_match_hint
from monai_multifair.plugins import (
    DataSourceSpec,
    create_method,
    get_data_source_spec,
    get_encoder_spec,
    get_method_spec,
    list_data_sources,
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
]

#: Which encoder modalities (of the plugin registry) fit which kind of data modality.
ENCODER_KINDS: dict[str, tuple[str, ...]] = {
    "image": ("image2d",),
    "volume": ("oct", "image3d"),
    "text": ("text",),
    "tabular": ("tabular",),
}
#: Flat ``data.*`` keys of version 0.1 that now live in the source's section ``data.<source>``; a config
#: that still gives them is translated, with a ``DeprecationWarning``.
LEGACY_DATA_KEYS: tuple[str, ...] = (
    "root",
    "label_key",
    "image_size",
    "oct_slices",
    "notes_file",
    "filename_column",
    "note_column",
    "note_source",
    "tabular_keys",
)


def _data_source(name: Any, path: str) -> DataSourceSpec:
    if not isinstance(name, str):
        raise key_error(path, "a data source name (`multifair plugins` lists them)", name)
    try:
        return get_data_source_spec(name)
    except MultiFairError as err:
        raise MultiFairError(f"config key `{path}`: {err}") from None


def _translate_flat_keys(data: dict[str, Any], source: DataSourceSpec, path: str) -> dict[str, Any]:
    """Move the 0.1 flat keys (``data.root`` ...) into the section ``data.<source>``, with a warning; a
    flat key wins over the same key of the section (in 0.1 it was the override of a preset's value)."""
    given = [key for key in LEGACY_DATA_KEYS if key in data]
    if not given:
        return data
    fields = {f.name for f in dataclasses.fields(source.options)} if source.options is not None else set()
    section = data.get(source.name)
    section = dict(section) if isinstance(section, Mapping) else {} if section is None else section
    if not isinstance(section, dict):
        raise key_error(f"{path}.{source.name}", "a mapping", section)
    for key in given:
        if key not in fields:
            raise MultiFairError(
                f"config key `{path}.{key}`: data.source {source.name!r} has no option {key!r} (its options "
                f"are the keys of `{path}.{source.name}`: {', '.join(sorted(fields)) or 'none'})"
            )
        replaced = f" (it replaces the value {section[key]!r} given there)" if key in section else ""
        warnings.warn(
            f"config key `{path}.{key}` is deprecated: write `{path}.{source.name}.{key}`{replaced}; the options "
            "of a data source live in its own section",
            DeprecationWarning,
            stacklevel=4,
        )
        section[key] = data.pop(key)
    data[source.name] = section
    return data


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


@dataclass
class DataConfig:
    """``data``: where the samples come from and how they are grouped.

    The data source named by ``source`` is a plugin (:class:`~monai_multifair.plugins.DataSourceSpec`,
    ``multifair plugins`` lists them); its spec decides the modalities and attributes it offers and its
    options section ``data.<source>``.

    Attributes:
        source: a registered data source: ``"synthetic"`` (the embedded cohort), ``"fairvision"``,
            ``"fairvlmed"``, ``"manifest"``, the table sources, or one a plugin adds.
        modalities: modalities to use (default: the source's default modalities, e.g. ``fundus`` +
            ``notes`` for synthetic and FairVLMed, every modality of the others).
        attributes: sensitive attributes whose intersection defines the groups (default: the source's
            default attributes: ``race``, or the first attribute of a table source).
        unknown: policy for unknown (``-1`` / empty) attribute values: ``"error"``, ``"drop"`` (counted and
            reported) or ``"keep"`` (a group of its own).
        options: the source's options section, written ``data.<source>`` in YAML (``data.synthetic``:
            :class:`~monai_multifair.data.CohortSpec`; ``data.fairvision``:
            :class:`~monai_multifair.data.FairVisionConfig`; ``data.manifest``:
            :class:`~monai_multifair.data.ManifestConfig`; ...); ``None`` for sources without one.

    The section of another source than the chosen one is an error (it would be ignored). The 0.1 flat
    keys (``data.root``, ``data.image_size``, ...; :data:`LEGACY_DATA_KEYS`) are moved into the source's
    section with a ``DeprecationWarning``. After validation the source's defaults are filled in, so a
    dumped config shows the values in effect.
    """

    source: str = "synthetic"
    modalities: list[str] | None = None
    attributes: list[str] | None = None
    unknown: Literal["error", "drop", "keep"] = "error"
    options: Any = None

    @classmethod
    def from_section(cls, data: Any, path: str) -> DataConfig:
        """Build from the YAML section: the common keys and the source's options section."""
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise key_error(path, "a mapping", data)
        data = dict(data)
        name = data.get("source", "synthetic")
        source = _data_source(name, f"{path}.source")
        data = _translate_flat_keys(data, source, path)
        common = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key != name and key not in common and key in {s.name for s in list_data_sources()}:
                raise MultiFairError(
                    f"config key `{path}.{key}`: applies to data.source {key!r} only, but data.source is {name!r}"
                )
        if "options" in data:
            raise MultiFairError(
                f"unknown config key `{path}.options`; the source's options go in `{path}.{name}`"
            )
        section = data.pop(name, None) if source.options is not None else None
        if source.options is not None and section is None and source.options_required:
            required = [
                f.name
                for f in dataclasses.fields(source.options)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            raise MultiFairError(
                f"config key `{path}.{name}`: required when data.source is {name!r} (at least "
                f"{', '.join(f'`{k}`' for k in required) or 'the section'}; e.g. --set {path}.{name}."
                f"{required[0] if required else 'KEY'}=VALUE)"
            )
        options = build(source.options, section, f"{path}.{name}") if source.options is not None else None
        return build(cls, data, path, custom=False, prebuilt={"options": options})

    def __post_init__(self) -> None:
        source = self.source_spec()
        if source.options is not None and self.options is None:
            if source.options_required:
                raise MultiFairError(
                    f"config key `data.{self.source}`: required when data.source is {self.source!r}"
                )
            self.options = source.options()
        if self.attributes is None:
            self.attributes = list(source.default_attributes)
        if not self.attributes:
            raise key_error("data.attributes", "at least one sensitive attribute", self.attributes)
        if len(set(self.attributes)) != len(self.attributes):
            raise key_error("data.attributes", "no repeated attribute", self.attributes)
        if source.attributes is not None:
            for i, attr in enumerate(self.attributes):
                if attr not in source.attributes:
                    raise MultiFairError(
                        f"config key `data.attributes[{i}]`: unknown attribute {attr!r} for data.source "
                        f"{self.source!r}{close_match_hint(attr, source.attributes)}; known: "
                        f"{', '.join(source.attributes)}"
                    )
        available = self.available_modalities()
        if self.modalities is None:
            self.modalities = list(source.default_modalities or available)
        if not self.modalities:
            raise key_error("data.modalities", "at least one modality", self.modalities)
        if len(set(self.modalities)) != len(self.modalities):
            raise key_error("data.modalities", "no repeated modality", self.modalities)
        for i, modality in enumerate(self.modalities):
            if modality not in available:
                raise MultiFairError(
                    f"config key `data.modalities[{i}]`: unknown modality {modality!r} for data.source "
                    f"{self.source!r} with its options `data.{self.source}`"
                    f"{close_match_hint(modality, available)}; known: {', '.join(available) or 'none'}"
                )

    def source_spec(self) -> DataSourceSpec:
        """The registered :class:`~monai_multifair.plugins.DataSourceSpec` of :attr:`source`."""
        return _data_source(self.source, "data.source")

    def to_section(self) -> dict[str, Any]:
        """Plain values: the common keys, then the source's options section ``data.<source>``."""
        out = {
            f.name: to_plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "options"
        }
        if self.options is not None:
            out[self.source] = to_plain(self.options)
        return out

    def available_modalities(self) -> dict[str, str]:
        """``{modality: kind}`` that the source offers (with its options)."""
        return self.source_spec().available_modalities(self.options)

    def modality_kinds(self) -> dict[str, str]:
        """``{modality: kind}`` of the selected modalities (kinds: image, volume, text, tabular)."""
        available = self.available_modalities()
        return {m: available[m] for m in self.modalities or []}


@dataclass
class EncoderWeightsConfig:
    """``encoders.<modality>.weights``: a local state dict loaded into the encoder after it is built.

    Read with ``torch.load(weights_only=True)`` on the CPU by
    :func:`~monai_multifair.networks.encoders.load_encoder_weights`. A plain string is the ``path``.

    Attributes:
        path: the file (``torch.save`` of a state dict, or of a dict holding one under ``key``).
        key: the entry of the file holding the state dict (e.g. ``state_dict``, ``model``; dots go down
            nested dicts); ``null``: the file is the state dict.
        prefix_map: ``{file key prefix: encoder key prefix}``, the longest matching prefix wins
            (``{"module.": "net."}`` maps a DDP-saved MONAI ResNet onto ``resnet18-2d``).
        exclude: file key prefixes dropped before loading (e.g. a classifier ``fc.``).
        strict: every encoder key must be loaded and every file key used (otherwise the missing and
            unexpected keys are logged and the matching ones loaded).
    """

    path: str
    key: str | None = None
    prefix_map: dict[str, str] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    strict: bool = True

    @classmethod
    def from_section(cls, data: Any, path: str) -> EncoderWeightsConfig:
        """Build from the YAML value: a mapping of the fields, or a string (the ``path``)."""
        if isinstance(data, str):
            data = {"path": data}
        return build(cls, data, path, custom=False)

    def __post_init__(self) -> None:
        if not self.path.strip():
            raise MultiFairError(f"key `path`: expected a file path, got {self.path!r}")


@dataclass
class EncoderConfig:
    """``encoders.<modality>``: an encoder of the plugin registry, its options, and how it is trained.

    Attributes:
        name: registry name (``multifair plugins`` lists them), e.g. ``small-cnn-2d``, ``bow-text``.
        options: keyword options of that encoder's factory (checked against its signature).
        weights: a local state dict to load after building (:class:`EncoderWeightsConfig`, or its path).
        freeze: stop gradients to the encoder's parameters (``requires_grad=False``; they are left out
            of the optimizer), except those matching ``trainable``.
        trainable: parameter-name patterns (``fnmatch``, e.g. ``net.layer4.*``) that a frozen encoder
            still trains; needs ``freeze: true``.
        lr: learning rate of this encoder's trainable parameters (an optimizer parameter group);
            ``null``: ``trainer.lr``.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    weights: EncoderWeightsConfig | None = None
    freeze: bool = False
    trainable: list[str] = field(default_factory=list)
    lr: float | None = field(default=None, metadata=check(_positive, "a number > 0 or null"))

    def __post_init__(self) -> None:
        # build() prefixes these messages with the section path (``encoders.<modality>``)
        for i, pattern in enumerate(self.trainable):
            if not pattern.strip():
                raise MultiFairError(
                    f"key `trainable[{i}]`: expected a parameter-name pattern, got {pattern!r}"
                )
        if self.trainable and not self.freeze:
            raise MultiFairError(
                "key `trainable`: expected only with `freeze: true` (it lists what a frozen encoder still "
                f"trains), got trainable {self.trainable} with freeze: false"
            )
        if self.lr is not None and self.freeze and not self.trainable:
            raise MultiFairError(
                "key `lr`: expected no learning rate for an encoder frozen whole (freeze: true, no `trainable` "
                f"patterns), got {self.lr}"
            )

    def to_spec(self) -> dict[str, Any]:
        """``{"name": ..., **options}``, the form :class:`~monai_multifair.networks.MultimodalFusionClassifier` takes."""
        return {"name": self.name, **self.options}


@dataclass
class FusionConfig:
    """``fusion``: the attention fusion and head (arguments of ``MultimodalFusionClassifier``).

    Attributes:
        fusion_dim: shared token width ``d``.
        num_heads: attention heads; must divide ``fusion_dim``.
        num_layers: transformer layers.
        dropout: dropout in the fusion and the head, in [0, 1).
        head_hidden: input width of the fused output layer (default ``fusion_dim``).
        demographic_token: add a learned group token to the fusion (needs the attribute at inference).
    """

    fusion_dim: int = field(default=128, metadata=check(_positive, "an integer >= 1"))
    num_heads: int = field(default=4, metadata=check(_positive, "an integer >= 1"))
    num_layers: int = field(default=2, metadata=check(_positive, "an integer >= 1"))
    dropout: float = field(default=0.1, metadata=check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    head_hidden: int | None = field(default=None, metadata=check(_positive, "an integer >= 1"))
    demographic_token: bool = False

    def __post_init__(self) -> None:
        if self.fusion_dim % self.num_heads:
            raise MultiFairError(
                f"config key `fusion.num_heads`: expected a divisor of fusion.fusion_dim ({self.fusion_dim}), "
                f"got {self.num_heads}"
            )


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class TrainerConfig:
    """``trainer``: the optimisation loop.

    Attributes:
        epochs: passes over the training split.
        batch_size: samples per step (per process).
        optimizer: ``"adamw"`` or ``"sgd"`` (with ``momentum``).
        lr: learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay.
        momentum: SGD momentum, in [0, 1).
        grad_clip: clip the global gradient norm to this value (``null``: no clipping).
        amp: automatic mixed precision (CUDA float16 with a grad scaler; bfloat16 on CPU).
        accumulation_steps: micro-batches per optimizer step.
        seed: random seed of initialisation and batch order.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        num_workers: DataLoader worker processes.
        val_interval: validate every this many epochs.
        sync_batchnorm: under ``torchrun``, synchronise BatchNorm statistics across ranks (CUDA only).
        modality_dropout: in training, drop each available modality of each sample with this
            probability (its presence mask set false), keeping at least one per sample, in [0, 1).
    """

    epochs: int = field(default=10, metadata=check(_positive, "an integer >= 1"))
    batch_size: int = field(default=64, metadata=check(_positive, "an integer >= 1"))
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = field(default=1e-3, metadata=check(_positive, "a number > 0"))
    weight_decay: float = field(default=1e-4, metadata=check(_non_negative, "a number >= 0"))
    momentum: float = field(default=0.9, metadata=check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    grad_clip: float | None = field(default=None, metadata=check(_positive, "a number > 0 or null"))
    amp: bool = False
    accumulation_steps: int = field(default=1, metadata=check(_positive, "an integer >= 1"))
    seed: int = field(default=0, metadata=check(_non_negative, "an integer >= 0"))
    device: str = field(
        default="auto",
        metadata=check(lambda v: bool(_DEVICE.match(v)), "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    )
    num_workers: int = field(default=0, metadata=check(_non_negative, "an integer >= 0"))
    val_interval: int = field(default=1, metadata=check(_positive, "an integer >= 1"))
    sync_batchnorm: bool = False
    modality_dropout: float = field(default=0.0, metadata=check(lambda v: 0 <= v < 1, "a number in [0, 1)"))


@dataclass
class MethodConfig:
    """``method``: the training method (a name of the method registry) and its options.

    ``name`` is looked up in the plugin registry, built-ins and plugins alike
    (:func:`~monai_multifair.plugins.list_methods`; ``multifair plugins`` lists them with their options);
    ``options`` are validated into the method's options dataclass (unknown keys and bad values are
    errors naming the key path). A dumped config shows every option resolved.

    Attributes:
        name: the method's registry name.
        options: the validated options object (``None`` for a method without options).

    Example:
        >>> MethodConfig.from_section({"name": "groupdro", "options": {"eta": 0.1}}, "method").options.eta
        0.1
    """

    name: str = "multifair"
    options: Any = None

    #: The kind of method this section takes.
    kind: ClassVar[str] = "training"

    def __post_init__(self) -> None:
        if self.options is None:
            spec = get_method_spec(self.name, self.kind)
            if spec.options is not None:
                self.options = spec.options()

    @classmethod
    def from_section(cls, data: Any, path: str) -> MethodConfig:
        """Build from the YAML section ``{name: ..., options: {...}}``."""

        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise key_error(path, "a mapping with `name` and `options`", data)
        for key in data:
            if key not in ("name", "options"):
                hint = close_match_hint(str(key), ("name", "options"))
                option = (
                    None if hint else close_match(str(key), cls._option_names(data.get("name", cls.name)))
                )
                if option is not None:
                    hint = f" (did you mean `{path}.options.{option}`?)"
                raise MultiFairError(
                    f"unknown config key `{path}.{key}`{hint}; "
                    f"known keys in `{path}`: name, options (a method's settings go in `{path}.options`)"
                )
        name = data.get("name", cls.name)
        if not isinstance(name, str):
            raise key_error(f"{path}.name", "a method name (a string)", name)
        try:
            spec = get_method_spec(name, cls.kind)
        except MultiFairError as err:
            raise MultiFairError(f"config key `{path}.name`: {err}") from None
        raw = data.get("options")
        if spec.parse_options is not None:
            options = spec.parse_options(raw, f"{path}.options")
        elif spec.options is not None:
            options = build(spec.options, raw, f"{path}.options")
        elif raw:
            raise MultiFairError(
                f"config key `{path}.options`: method {name!r} takes no options, got {raw!r}"
            )
        else:
            options = None
        return cls(name=name, options=options)

    @classmethod
    def _option_names(cls, name: Any) -> list[str]:
        """The option names of the method ``name`` (none when it is unknown or takes no options dataclass)."""

        try:
            spec = get_method_spec(name, cls.kind) if isinstance(name, str) else None
        except MultiFairError:
            return []
        if spec is None or spec.options is None or not dataclasses.is_dataclass(spec.options):
            return []
        return [f.name for f in dataclasses.fields(spec.options)]

    def to_section(self) -> dict[str, Any]:
        """``{name, options}`` with every option resolved."""
        if self.options is None:
            return {"name": self.name, "options": {}}
        to_dict = getattr(self.options, "to_dict", None)
        values = to_dict() if callable(to_dict) else self.options
        return {"name": self.name, "options": to_plain(values)}

    def create(self) -> Any:
        """The method object (:func:`~monai_multifair.plugins.create_method`)."""

        return create_method(self.name, self.options, kind=self.kind)


@dataclass
class PostprocessingConfig(MethodConfig):
    """``postprocessing``: an optional post-processing method (``threshold-optimizer``) and its options,
    fitted on the validation split and applied to the test split; it composes with any ``method``."""

    name: str = "threshold-optimizer"
    kind: ClassVar[str] = "postprocessing"


def _translate_modulation(data: Mapping[str, Any]) -> dict[str, Any]:
    """The deprecated ``modulation:`` section as ``method:`` (with a FutureWarning)."""
    data = dict(data)
    section = data.pop("modulation")
    if "method" in data:
        raise MultiFairError(
            "config sections `method` and `modulation` exclude each other: `modulation` is the deprecated "
            "form of `method: {name: multifair, options: {...}}`; keep `method` only"
        )
    warnings.warn(
        "config section `modulation` is deprecated: write `method: {name: multifair, options: {...}}` "
        "(`modulation.enabled: false` is `method: {name: erm}`)",
        FutureWarning,
        stacklevel=4,
    )
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise key_error("modulation", "a mapping", section)
    options = dict(section)
    enabled = convert(bool, options.pop("enabled", True), "modulation.enabled")
    data["method"] = {"name": "multifair", "options": options} if enabled else {"name": "erm"}
    return data


@dataclass
class EvaluationConfig:
    """``evaluation``: metrics and model selection.

    Attributes:
        threshold: decision threshold on the positive-class probability: a number in (0, 1), or a
            rule fitted on the validation split with the selected network and applied unchanged to the
            test split: ``"youden"`` (maximises TPR - FPR) or ``"prevalence"`` (as many predicted
            positives as validation positives); see :func:`~monai_multifair.metrics.fit_threshold`.
            The validation metrics during training use 0.5 with a rule (the network is not final yet;
            the selection metrics do not depend on the threshold). Every report states the threshold
            and how it was chosen.
        selection_metric: validation metric that picks the best checkpoint: ``"es_auc"``,
            ``"worst_group_auc"`` or ``"auc"``.
        alpha: ES-AUC's ``alpha`` (``AUC / (1 + alpha * sum_g |AUC - AUC_g|)``), >= 0.
        n_boot: bootstrap resamples for confidence intervals (0: none).
        ci_level: confidence level of the intervals, in (0, 1).
        random_state: seed of the bootstrap and of the permutations.
        n_permutations: permutations of the audit report's significance test of each attribute's
            disparities (Holm-adjusted p-values; 0: no tests).
    """

    threshold: float | Literal["youden", "prevalence"] = field(
        default=0.5,
        metadata=check(
            lambda v: isinstance(v, str) or 0 < v < 1, "a number in (0, 1), 'youden' or 'prevalence'"
        ),
    )
    selection_metric: Literal["es_auc", "worst_group_auc", "auc"] = "es_auc"
    alpha: float = field(default=1.0, metadata=check(_non_negative, "a number >= 0"))
    n_boot: int = field(default=1000, metadata=check(_non_negative, "an integer >= 0"))
    ci_level: float = field(default=0.95, metadata=check(lambda v: 0 < v < 1, "a number in (0, 1)"))
    random_state: int = field(default=0, metadata=check(_non_negative, "an integer >= 0"))
    n_permutations: int = field(default=1000, metadata=check(_non_negative, "an integer >= 0"))


@dataclass
class OutputConfig:
    """``output``: the run folder.

    Attributes:
        dir: the run folder (resolved config, checkpoints, metrics, predictions, reports).
        report_formats: audit report formats to write: any of ``html``, ``markdown``, ``json``.
        save_predictions: write per-sample test predictions (CSV).
    """

    dir: str = "runs/multifair"
    report_formats: list[Literal["html", "markdown", "json"]] = field(
        default_factory=lambda: ["html", "markdown", "json"]
    )
    save_predictions: bool = True


@dataclass
class PipelineConfig:
    """``pipeline``: how samples are transformed, cached and handed to the device.

    Transforms are MONAI dictionary transforms named in YAML (:data:`~monai_multifair.data.TRANSFORM_NAMES`),
    one list per image or volume modality, each entry ``{name: <transform>, <argument>: <value>, ...}``
    (``keys`` is the modality). OCT stacks go through 2D transforms slice by slice alike. Loader workers
    are ``trainer.num_workers``.

    Attributes:
        transforms: ``{modality: [transform, ...]}`` for every split; deterministic transforms only
            (intensity scaling, resizing, cropping, ...).
        augment: ``{modality: [transform, ...]}`` for the training split only, after ``transforms``
            (``RandFlipd``, ``RandRotated``, ``RandAffined``, ``RandGaussianNoised``, ...). Seeded per
            ``(trainer.seed, epoch, worker)``.
        cache: ``none``, ``memory`` (MONAI ``CacheDataset``: loaded samples and the deterministic
            transforms' output held in memory) or ``disk`` (MONAI ``PersistentDataset`` under
            ``cache_dir``, reused by later runs).
        cache_dir: folder of the disk cache (``disk`` only).
        cache_rate: fraction of each split held in memory (``memory`` only), in (0, 1].
        pin_memory: pin batches in page-locked memory for faster copies to a CUDA device (ignored
            without CUDA).
    """

    transforms: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    augment: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cache: Literal["none", "memory", "disk"] = "none"
    cache_dir: str | None = None
    cache_rate: float = field(default=1.0, metadata=check(lambda v: 0 < v <= 1, "a number in (0, 1]"))
    pin_memory: bool = False

    def __post_init__(self) -> None:
        check_transform_specs(self.transforms, "pipeline.transforms", random=False)
        check_transform_specs(self.augment, "pipeline.augment", random=True)
        if self.cache == "disk" and not self.cache_dir:
            raise MultiFairError(
                "config key `pipeline.cache_dir`: required when pipeline.cache is 'disk'; set it with "
                "--set pipeline.cache_dir=PATH"
            )
        if self.cache != "disk" and self.cache_dir is not None:
            raise key_error("pipeline.cache_dir", "null unless pipeline.cache is 'disk'", self.cache_dir)
        if self.cache != "memory" and self.cache_rate != 1.0:
            raise key_error("pipeline.cache_rate", "1.0 unless pipeline.cache is 'memory'", self.cache_rate)


def _default_encoders() -> dict[str, EncoderConfig]:
    return {
        "fundus": EncoderConfig("small-cnn-2d", {"in_channels": 1}),
        "notes": EncoderConfig("bow-text", {"vocab_size": 8192, "embedding_dim": 64, "max_length": 128}),
    }


@dataclass
class RunConfig:
    """A whole run: the root of the config tree.

    Build one with :func:`~monai_multifair.config.load_config` (files, presets, overrides) or
    :meth:`from_dict`; both validate the whole tree, including the encoders against the plugin
    registry. ``RunConfig()`` is the built-in default (the embedded cohort, a small CNN and a
    bag-of-words text encoder).

    Example:
        >>> cfg = RunConfig.from_dict({"trainer": {"epochs": 2}})
        >>> cfg.trainer.epochs, cfg.data.modalities
        (2, ['fundus', 'notes'])
        >>> "epochs: 2" in cfg.to_yaml()
        True
    """

    data: DataConfig = field(default_factory=DataConfig)
    encoders: dict[str, EncoderConfig] = field(default_factory=_default_encoders)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    postprocessing: PostprocessingConfig | None = None
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, check_encoders: bool = True) -> RunConfig:
        """Validate plain values (a parsed YAML document) into a ``RunConfig``.

        Args:
            data: the document; missing sections and keys take their defaults.
            check_encoders: also check encoder names, options and modality kinds against the plugin
                registry (:meth:`check_encoders`).

        Raises:
            MultiFairError: naming the key path, the rule and the value.
        """
        if isinstance(data, Mapping) and "modulation" in data:
            data = _translate_modulation(data)
        config = build(cls, data, "")
        config.check_modalities()
        if check_encoders:
            config.check_encoders()
        return config

    def check_modalities(self) -> None:
        """Every data modality has an encoder and every encoder a data modality; the encoders are put in
        ``data.modalities`` order, the order of the network's modalities and of every presence mask."""
        modalities = list(self.data.modalities or [])
        for name in self.encoders:
            if name not in modalities:
                raise MultiFairError(
                    f"config key `encoders.{name}`: {name!r} is not among data.modalities "
                    f"{modalities}{close_match_hint(name, modalities)}"
                )
        missing = [m for m in modalities if m not in self.encoders]
        if missing:
            raise MultiFairError(
                f"config key `encoders`: no encoder for modality {missing[0]!r} (data.modalities: "
                f"{', '.join(modalities)}); add `encoders.{missing[0]}: {{name: ..., options: {{...}}}}`"
            )
        self.encoders = {m: self.encoders[m] for m in modalities}

    def check_encoders(self) -> None:
        """Check each encoder against the plugin registry: the name exists, its modality fits the data
        modality's kind, and every option is a parameter of its factory."""

        kinds = self.data.modality_kinds()
        for modality, encoder in self.encoders.items():
            path = f"encoders.{modality}"
            try:
                spec = get_encoder_spec(encoder.name)
            except MultiFairError as err:
                raise MultiFairError(f"config key `{path}.name`: {err}") from None
            fits = ENCODER_KINDS[kinds[modality]]
            if spec.modality not in fits:
                raise MultiFairError(
                    f"config key `{path}.name`: encoder {encoder.name!r} takes {spec.modality} inputs, but "
                    f"modality {modality!r} is {kinds[modality]} data (needs a {' or '.join(fits)} encoder)"
                )
            parameters = inspect.signature(spec.factory).parameters
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
                continue
            for option in encoder.options:
                if option not in parameters:
                    raise MultiFairError(
                        f"unknown config key `{path}.options.{option}`: not an option of encoder "
                        f"{encoder.name!r}{close_match_hint(option, parameters)}; its options: "
                        f"{', '.join(parameters) or 'none'}"
                    )

    def to_dict(self) -> dict[str, Any]:
        """Plain values of every section (resolved), in YAML order."""
        return to_plain(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The resolved config as YAML text; also written to ``path`` when given.

        Loading the text back (:func:`~monai_multifair.config.load_config`) gives an equal config.
        """
        text = dump_yaml(self.to_dict())
        if path is not None:
            from monai_multifair.atomic_io import atomic_write_text

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
        return text
