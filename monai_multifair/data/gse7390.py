"""GSE7390 (TRANSBIG, Desmedt et al. 2007) as shipped by scikit-survival: breast-cancer gene expression.

``sksurv.datasets.load_breast_cancer()`` returns 198 node-negative breast-cancer patients with the
expression of the **76 genes** of the Wang et al. (2005) prognostic signature and four clinical
variables (``age``, ``er``, ``grade``, ``size``), plus the time to distant metastasis (``t.tdm``, days)
and its event indicator (``e.tdm``). The package ships the table; nothing is downloaded.

Two modalities for MultiFair: the **gene block** (76 expression values) and the **clinical block**
(age, ER positive, tumour size, grade one-hot: poorly / intermediate / well differentiated / unknown).
The label is **distant metastasis within 5 years** (``t.tdm <= 1826`` days with ``e.tdm``); the 9
patients censored before 5 years have no label and are left out (189 remain, 35 positive). The
sensitive attribute is the **age group**: ``<45`` (76 patients) and ``>=45`` (113).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monai_multifair.data.tables import TableCohort, table_source
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import DataSourceSpec, hookimpl

__all__ = ["GSE7390_CLINICAL", "GSE7390_HORIZON_DAYS", "load_gse7390"]

#: Columns of the clinical block, in order.
GSE7390_CLINICAL: tuple[str, ...] = (
    "age",
    "er_positive",
    "size",
    "grade_poorly",
    "grade_intermediate",
    "grade_well",
    "grade_unknown",
)
#: The label's horizon: distant metastasis within 5 years.
GSE7390_HORIZON_DAYS = 1826
_GRADES = {
    "poorly differentiated": "grade_poorly",
    "intermediate": "grade_intermediate",
    "well differentiated": "grade_well",
    "unkown": "grade_unknown",  # spelled so in the shipped table
    "unknown": "grade_unknown",
}


def load_gse7390(features: pd.DataFrame | None = None, outcome: np.ndarray | None = None) -> TableCohort:
    """Load GSE7390 as a gene block and a clinical block, 5-year distant metastasis, age groups.

    Args:
        features: the feature table (default: ``sksurv.datasets.load_breast_cancer()[0]``): columns
            ``X<probe>`` (the genes), ``age``, ``er`` (``positive``/``negative``), ``grade``, ``size``.
        outcome: the structured outcome array with fields ``e.tdm`` (bool) and ``t.tdm`` (days)
            (default: the package's).

    Returns:
        :class:`~monai_multifair.data.TableCohort` with blocks ``genes`` and ``clinical`` and the
        attribute ``age_group``.

    Raises:
        MultiFairError: scikit-survival is not installed (``pip install 'monai-multifair[suite]'``),
            only one of ``features``/``outcome`` is given, or the table lacks a column or has an
            unexpected value.
    """
    if (features is None) != (outcome is None):
        raise MultiFairError("load_gse7390: give both `features` and `outcome`, or neither")
    if features is None:
        try:
            from sksurv.datasets import load_breast_cancer
        except ImportError:
            raise MultiFairError(
                "load_gse7390 needs the PyPI package `scikit-survival`: pip install 'monai-multifair[suite]'"
            ) from None
        features, outcome = load_breast_cancer()
    missing = [c for c in ("age", "er", "grade", "size") if c not in features.columns]
    if missing:
        raise MultiFairError(f"GSE7390: the feature table lacks column(s) {missing}")
    genes = [c for c in features.columns if str(c).startswith("X")]
    if not genes:
        raise MultiFairError("GSE7390: no gene column (named X<probe>) in the feature table")
    names = getattr(np.asarray(outcome).dtype, "names", None) or ()
    if "e.tdm" not in names or "t.tdm" not in names:
        raise MultiFairError(f"GSE7390: expected outcome fields 'e.tdm' and 't.tdm', got {list(names)}")
    if len(outcome) != len(features):
        raise MultiFairError(f"GSE7390: {len(outcome)} outcomes for {len(features)} feature rows")
    er = features["er"].astype(str)
    bad = sorted(set(er) - {"positive", "negative"})
    if bad:
        raise MultiFairError(f"GSE7390: unexpected `er` value(s) {bad}; expected 'positive' or 'negative'")
    grade = features["grade"].astype(str)
    bad = sorted(set(grade) - set(_GRADES))
    if bad:
        raise MultiFairError(f"GSE7390: unexpected `grade` value(s) {bad}; expected {sorted(_GRADES)}")
    event = np.asarray(outcome["e.tdm"], dtype=bool)
    time = np.asarray(outcome["t.tdm"], dtype=np.float64)
    labelled = (event & (time <= GSE7390_HORIZON_DAYS)) | (time > GSE7390_HORIZON_DAYS)
    keep = np.flatnonzero(labelled)
    clinical = pd.DataFrame(
        {
            "age": features["age"].astype(np.float64).to_numpy(),
            "er_positive": (er == "positive").to_numpy(np.float64),
            "size": features["size"].astype(np.float64).to_numpy(),
            **{
                column: (grade.map(_GRADES) == column).to_numpy(np.float64) for column in GSE7390_CLINICAL[3:]
            },
        }
    )
    age = features["age"].astype(np.float64).to_numpy()
    return TableCohort(
        name="gse7390",
        blocks={
            "genes": features[genes].astype(np.float64).iloc[keep].reset_index(drop=True),
            "clinical": clinical.iloc[keep].reset_index(drop=True),
        },
        label=(event & (time <= GSE7390_HORIZON_DAYS))[keep].astype(np.int64),
        attributes=pd.DataFrame({"age_group": np.where(age[keep] < 45, "<45", ">=45")}),
        ids=[f"gse7390 row {i}" for i in keep],
    )


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data source ``gse7390`` (options: :class:`~monai_multifair.data.TableSplit`)."""
    return [
        table_source(
            "gse7390",
            "breast cancer GSE7390 (scikit-survival, 189 patients): 76 genes vs a clinical block, 5-year "
            "distant metastasis, age groups",
            load_gse7390,
            modalities=("genes", "clinical"),
            attributes=("age_group",),
        )
    ]
