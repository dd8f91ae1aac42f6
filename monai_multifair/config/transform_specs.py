"""The MONAI dictionary transforms a config may name, and the checks of their specifications.

A specification is ``{"name": <a name of TRANSFORM_NAMES>, **arguments}``; the transform is built
for the modality's sample key (``keys`` is set here, never in the specification). The names map to
MONAI's own dictionary transforms through one lookup table (:func:`transform_table`; MONAI is imported
on first use), so a YAML file can name exactly the transforms listed there, with the arguments of their
constructors. The ``pipeline`` section is checked with :func:`check_transform_specs` when it is read;
:mod:`monai_multifair.data.transforms` composes the per-sample pipeline from the same specifications.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = [
    "DETERMINISTIC_TRANSFORMS",
    "RANDOM_TRANSFORMS",
    "TRANSFORM_KINDS",
    "TRANSFORM_NAMES",
    "build_transform",
    "check_transform_specs",
    "is_random_transform",
    "transform_table",
]

#: Deterministic MONAI dictionary transforms a config may name (``pipeline.transforms``: every split).
DETERMINISTIC_TRANSFORMS: tuple[str, ...] = (
    "AdjustContrastd",
    "CenterSpatialCropd",
    "ClipIntensityPercentilesd",
    "Flipd",
    "GaussianSmoothd",
    "HistogramNormalized",
    "NormalizeIntensityd",
    "Resized",
    "ResizeWithPadOrCropd",
    "Rotate90d",
    "Rotated",
    "ScaleIntensityRangePercentilesd",
    "ScaleIntensityRanged",
    "ScaleIntensityd",
    "ShiftIntensityd",
    "SpatialPadd",
    "ThresholdIntensityd",
    "Zoomd",
)
#: Random MONAI dictionary transforms (augmentation; ``pipeline.augment``: the training split only).
RANDOM_TRANSFORMS: tuple[str, ...] = (
    "RandAdjustContrastd",
    "RandAffined",
    "RandBiasFieldd",
    "RandCoarseDropoutd",
    "RandFlipd",
    "RandGaussianNoised",
    "RandGaussianSharpend",
    "RandGaussianSmoothd",
    "RandGibbsNoised",
    "RandHistogramShiftd",
    "RandRicianNoised",
    "RandRotate90d",
    "RandRotated",
    "RandScaleIntensityd",
    "RandShiftIntensityd",
    "RandSpatialCropd",
    "RandStdShiftIntensityd",
    "RandZoomd",
)
#: Every name a specification may use.
TRANSFORM_NAMES: tuple[str, ...] = tuple(sorted(DETERMINISTIC_TRANSFORMS + RANDOM_TRANSFORMS))
#: Modality kinds transforms apply to.
TRANSFORM_KINDS: tuple[str, ...] = ("image", "volume")
# set by the pipeline, not by a specification
_RESERVED_ARGUMENTS = ("keys", "allow_missing_keys")


@functools.cache
def transform_table() -> dict[str, type]:
    """``{name: MONAI class}`` for every name of :data:`TRANSFORM_NAMES` (MONAI imported on first use).

    Example:
        >>> transform_table()["RandFlipd"].__module__
        'monai.transforms.spatial.dictionary'
    """
    import monai.transforms

    return {name: getattr(monai.transforms, name) for name in TRANSFORM_NAMES}


def is_random_transform(name: str) -> bool:
    """Whether the transform called ``name`` is random (MONAI's ``RandomizableTrait``)."""
    from monai.transforms import RandomizableTrait

    return issubclass(transform_table()[name], RandomizableTrait)


def _arguments(cls: type) -> dict[str, inspect.Parameter]:
    parameters = dict(inspect.signature(cls.__init__).parameters)
    parameters.pop("self", None)
    return {k: v for k, v in parameters.items() if k not in _RESERVED_ARGUMENTS}


def build_transform(spec: Any, key: str, path: str) -> Any:
    """The MONAI dictionary transform of one specification, for sample key ``key``.

    Args:
        spec: ``{"name": ..., **arguments}``.
        key: the sample key (modality) it transforms.
        path: the config key path of ``spec`` (e.g. ``pipeline.augment.fundus[0]``), for messages.

    Raises:
        MultiFairError: not a mapping, an unknown name (with a close match and the known names), an
            argument the transform does not take (with its arguments), ``keys`` given, or an error of
            the MONAI constructor; each names ``path``.

    Example:
        >>> build_transform({"name": "RandFlipd", "prob": 0.5, "spatial_axis": 1}, "fundus", "p[0]").keys
        ('fundus',)
    """
    if not isinstance(spec, Mapping):
        raise MultiFairError(
            f"config key `{path}`: expected a mapping {{name: <transform>, <argument>: <value>, ...}}, got {spec!r}"
        )
    name = spec.get("name")
    table = transform_table()
    if not isinstance(name, str) or name not in table:
        raise MultiFairError(
            f"config key `{path}.name`: expected one of the MONAI dictionary transforms "
            f"{', '.join(TRANSFORM_NAMES)}, got {name!r}{close_match_hint(str(name), TRANSFORM_NAMES)}"
        )
    cls = table[name]
    accepted = _arguments(cls)
    arguments = {k: v for k, v in spec.items() if k != "name"}
    for argument in arguments:
        if argument in _RESERVED_ARGUMENTS:
            raise MultiFairError(
                f"config key `{path}.{argument}`: set by the pipeline (the transform acts on the modality it is "
                f"listed under), got {arguments[argument]!r}"
            )
        if argument not in accepted:
            raise MultiFairError(
                f"config key `{path}.{argument}`: not an argument of MONAI's {name}"
                f"{close_match_hint(str(argument), accepted)}; its arguments: {', '.join(accepted)}"
            )
    required = [
        n
        for n, p in accepted.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and n not in arguments
    ]
    if required:
        raise MultiFairError(f"config key `{path}.{required[0]}` is required by MONAI's {name}")
    try:
        return cls(keys=(key,), **arguments)
    except (ValueError, TypeError, KeyError, RuntimeError, AssertionError) as exc:
        raise MultiFairError(
            f"config key `{path}`: MONAI's {name} refused the arguments {arguments}: {exc}"
        ) from None


def check_transform_specs(section: Mapping[str, Sequence[Any]], path: str, *, random: bool) -> None:
    """Build every specification of ``{modality: [spec, ...]}`` once, to report errors at config time.

    Args:
        section: the YAML section.
        path: its key path (``pipeline.transforms`` or ``pipeline.augment``).
        random: whether random transforms are allowed (augmentation) or refused (every split).

    Raises:
        MultiFairError: see :func:`build_transform`; a random transform where ``random`` is false.
    """
    for modality, specs in section.items():
        for i, spec in enumerate(specs):
            transform = build_transform(spec, modality, f"{path}.{modality}[{i}]")
            if not random and is_random_transform(spec["name"]):
                raise MultiFairError(
                    f"config key `{path}.{modality}[{i}].name`: {spec['name']} is a random transform, which "
                    "`pipeline.transforms` (applied to every split) refuses; list it under `pipeline.augment` "
                    "(the training split only)"
                )
            del transform
