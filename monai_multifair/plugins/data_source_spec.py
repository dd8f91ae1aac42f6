"""The record a plugin returns for each data source it provides (the ``multifair_data_sources`` hook)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from monai_multifair.errors import MultiFairError

#: The kinds of data modality a source can offer (one sample of each: image float ``[C, H, W]``, volume
#: float ``[S, C, H, W]``, text ``str``, tabular float ``[F]``).
MODALITY_KINDS: tuple[str, ...] = ("image", "volume", "text", "tabular")

#: How the final runs of ``multifair compare`` may vary the data of a source (its ``split`` declaration):
#: ``"fixed"``: the splits are given (a split column, split folders); a seed changes training only;
#: ``"rows"``: the source's rows can be re-split (stratified hold-out drawn per seed, or k-fold x repeats),
#: by the :class:`~monai_multifair.data.TableSplit` section at :attr:`DataSourceSpec.split_section`;
#: ``"generated"``: the data are generated from the options' ``seed`` (a new cohort per seed).
SPLIT_KINDS: dict[str, str] = {
    "fixed": "the splits are given; a seed changes training only",
    "rows": "rows re-split per seed: stratified hold-out, or k-fold x repeats (protocol cv)",
    "generated": "the data are generated anew from each seed",
}


@dataclasses.dataclass(frozen=True)
class DataSourceSpec:
    """One data source (the value of ``data.source``) offered by a plugin.

    A source turns its options section ``data.<name>`` (a dataclass, validated like every config
    section) into the ``train``/``val``/``test`` datasets of :func:`~monai_multifair.data.build_datasets`.

    Args:
        name: the ``data.source`` value, unique across all plugins; no whitespace.
        description: one line for ``multifair plugins`` and the docs.
        build_split: ``build_split(options, split, prepared, **common) -> MultimodalDataset``: one split
            (``"train"``, ``"val"`` or ``"test"``). ``options`` is the validated section, ``prepared``
            what :attr:`prepare` returned (``None`` without it) and ``common`` the keyword arguments every
            dataset takes: ``modalities`` (list or ``None`` for all), ``attributes``, ``unknown``,
            ``coding`` (the training split's, ``None`` for the training split) and ``transform``.
        modalities: ``{modality: kind}`` offered (kinds: :data:`MODALITY_KINDS`), or
            ``modalities(options) -> {modality: kind}`` for a source whose modalities the user declares.
        options: the dataclass of the section ``data.<name>`` (``None``: the source has no section).
        options_required: the section must be given (its defaults are not enough, e.g. a file path).
        default_modalities: the modalities used when ``data.modalities`` is not given (default: all).
        attributes: the sensitive attributes the source knows (``None``: any column the user names).
        default_attributes: the attributes used when ``data.attributes`` is not given.
        prepare: ``prepare(options, attributes) -> object``, run once per ``build_datasets`` call (load
            a table, generate a cohort, draw the row split), its result passed to every ``build_split``.
        split: how ``multifair compare`` may vary the data across final runs (:data:`SPLIT_KINDS`).
        split_section: ``"rows"`` sources only: where the :class:`~monai_multifair.data.TableSplit`
            settings sit in the options: ``""`` when the options are a ``TableSplit`` themselves,
            otherwise the name of the options field holding one (the manifest's ``split``).
        plugin: the plugin that registered the spec; filled in by the registry, leave it empty.

    Examples:
        >>> spec = DataSourceSpec("flat", "a table", lambda *a, **k: None, {"x": "tabular"})
        >>> spec.available_modalities(None)
        {'x': 'tabular'}
    """

    name: str
    description: str
    build_split: Callable[..., Any]
    modalities: Mapping[str, str] | Callable[[Any], Mapping[str, str]]
    options: type | None = None
    options_required: bool = False
    default_modalities: tuple[str, ...] | None = None
    attributes: tuple[str, ...] | None = None
    default_attributes: tuple[str, ...] = ("race",)
    prepare: Callable[[Any, list[str]], Any] | None = None
    split: str = "fixed"
    split_section: str | None = None
    plugin: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        def fail(key: str, rule: str, value: Any) -> None:
            raise MultiFairError(
                f"expected DataSourceSpec `{key}` of data source {self.name!r} to be {rule}, got {value!r}"
            )

        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise MultiFairError(
                f"expected DataSourceSpec `name` to be a non-empty string without whitespace, got {self.name!r}"
            )
        if not isinstance(self.description, str):
            fail("description", "a string", self.description)
        if not callable(self.build_split):
            fail("build_split", "callable", self.build_split)
        if self.prepare is not None and not callable(self.prepare):
            fail("prepare", "callable or None", self.prepare)
        if not callable(self.modalities):
            if not isinstance(self.modalities, Mapping) or not self.modalities:
                fail("modalities", "a non-empty mapping {modality: kind} or a callable", self.modalities)
            bad = {m: k for m, k in self.modalities.items() if k not in MODALITY_KINDS}
            if bad:
                fail("modalities", f"a mapping to kinds {', '.join(MODALITY_KINDS)}", bad)
        if self.attributes is not None and not set(self.default_attributes) <= set(self.attributes):
            fail(
                "default_attributes",
                f"attributes of the source ({', '.join(self.attributes)})",
                self.default_attributes,
            )
        if self.options is not None and not dataclasses.is_dataclass(self.options):
            fail("options", "a dataclass or None", self.options)
        if self.options_required and self.options is None:
            fail("options_required", "false for a source without options", self.options_required)
        if self.split not in SPLIT_KINDS:
            fail("split", f"one of {', '.join(SPLIT_KINDS)}", self.split)
        if (self.split == "rows") != (self.split_section is not None):
            fail("split_section", "given exactly when `split` is 'rows'", self.split_section)
        if self.split == "rows" and self.options is None:
            fail("options", "a dataclass holding the TableSplit settings when `split` is 'rows'", None)
        if self.split == "generated" and (
            self.options is None or "seed" not in {f.name for f in dataclasses.fields(self.options)}
        ):
            fail("options", "a dataclass with a `seed` field when `split` is 'generated'", self.options)
        if self.split_section:
            names = {f.name for f in dataclasses.fields(self.options)}
            if self.split_section not in names:
                fail("split_section", f"a field of {self.options.__name__}", self.split_section)

    def with_plugin(self, plugin: str) -> DataSourceSpec:
        """Return a copy recording the plugin that registered this spec."""
        return dataclasses.replace(self, plugin=plugin)

    def available_modalities(self, options: Any) -> dict[str, str]:
        """``{modality: kind}`` this source offers with the given options section."""
        if callable(self.modalities):
            return dict(self.modalities(options)) if options is not None else {}
        return dict(self.modalities)

    def describe(self) -> dict[str, Any]:
        """Plain-value summary (name, plugin, description, modalities, attributes, split) for listings."""
        return {
            "name": self.name,
            "plugin": self.plugin,
            "description": self.description,
            "modalities": None if callable(self.modalities) else dict(self.modalities),
            "attributes": None if self.attributes is None else list(self.attributes),
            "split": self.split,
        }
