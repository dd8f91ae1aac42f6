"""SUPPORT2 (Knaus et al. 1995) as shipped by SurvSet: seriously ill hospitalised adults.

``SurvSet.data.SurvLoader().load_dataset(ds_name="support2")`` returns 9,105 patients of the Study to
Understand Prognoses and Preferences for Outcomes and Risks of Treatments with the time to death
(``time``, days) and its indicator (``event``). The package ships the table; nothing is downloaded.

Two modalities for MultiFair:

- the **physiology block** (day-3 acute physiology): mean blood pressure, white blood cells, heart
  rate, respiration, temperature, PaO2/FiO2, albumin, bilirubin, creatinine, sodium, pH, glucose, BUN,
  urine output, coma score and the SUPPORT physiology score ``sps``; a missing lab value is filled
  with the normal value that the data set's documentation recommends (albumin 3.5, PaO2/FiO2 333.3,
  bilirubin 1.01, creatinine 1.01, BUN 6.51, white blood cells 9, urine 2502; for pH and glucose, which
  it gives none for, 7.4 and 100) and flagged in a ``<name>_missing`` column;
- the **history / function block**: age, sex, years of education, income band, number of comorbidities,
  diabetes, dementia, cancer (no / yes / metastatic), disease group (8 one-hot columns), days in hospital
  before entry, and the activities-of-daily-living indices ``adlp``/``adls`` (missing: 0 and a flag).

Left out as outcome-adjacent: the SUPPORT model's own survival estimates (``surv2m``, ``surv6m``), the
do-not-resuscitate order and the 2-month functional status (``sfdm2``, which records death). The label
is **death within 180 days** (no patient is censored before that). The sensitive attribute is **race**:
``white``, ``black``, ``hispanic``, ``other`` (``asian`` 79 and ``other`` 112 merged); the 42 patients
with race ``missing`` are unknown (``data.unknown: drop`` leaves them out).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from monai_multifair.data.tables import TableCohort, table_source
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import DataSourceSpec, hookimpl

__all__ = ["SUPPORT2_HORIZON_DAYS", "SUPPORT2_LAB_DEFAULTS", "SUPPORT2_PHYSIOLOGY", "load_support2"]

#: The label's horizon: death within 180 days.
SUPPORT2_HORIZON_DAYS = 180
#: Physiology columns (SurvSet names without the ``num_`` prefix), in order.
SUPPORT2_PHYSIOLOGY: tuple[str, ...] = (
    "meanbp",
    "wblc",
    "hrt",
    "resp",
    "temp",
    "pafi",
    "alb",
    "bili",
    "crea",
    "sod",
    "ph",
    "glucose",
    "bun",
    "urine",
    "scoma",
    "sps",
)
#: Fill values of missing physiology values (the documented normal values; pH and glucose ours).
SUPPORT2_LAB_DEFAULTS: dict[str, float] = {
    "alb": 3.5,
    "pafi": 333.3,
    "bili": 1.01,
    "crea": 1.01,
    "bun": 6.51,
    "wblc": 9.0,
    "urine": 2502.0,
    "ph": 7.4,
    "glucose": 100.0,
}
_HISTORY_NUMERIC = ("age", "num_co", "edu", "hday")
_ADL = ("adlp", "adls")
_INCOME = ("under $11k", "$11-$25k", "$25-$50k", ">$50k")
_CANCER = ("no", "yes", "metastatic")
_RACE = {
    "white": "white",
    "black": "black",
    "hispanic": "hispanic",
    "asian": "other",
    "other": "other",
    "missing": "",
}
_REQUIRED = (
    "event",
    "time",
    *(f"num_{c}" for c in (*SUPPORT2_PHYSIOLOGY, *_HISTORY_NUMERIC, *_ADL)),
    "fac_sex",
    "fac_race",
    "fac_income",
    "fac_diabetes",
    "fac_dementia",
    "fac_ca",
    "fac_dzgroup",
)


def _one_hot(values: pd.Series, levels: list[str], prefix: str) -> pd.DataFrame:
    return pd.DataFrame({f"{prefix}_{level}": (values == level).to_numpy(np.float64) for level in levels})


def load_support2(frame: pd.DataFrame | None = None) -> TableCohort:
    """Load SUPPORT2 as a physiology block and a history/function block, 180-day death, race groups.

    Args:
        frame: the table in SurvSet's layout (default: read from the installed ``SurvSet`` package).

    Returns:
        :class:`~monai_multifair.data.TableCohort` with blocks ``physiology`` and ``history`` and the
        attributes ``race`` and ``sex``.

    Raises:
        MultiFairError: SurvSet is not installed (``pip install 'monai-multifair[suite]'``), or the table
            lacks a column, has a missing value where none is expected or an unexpected category.
    """
    if frame is None:
        try:
            from SurvSet.data import SurvLoader
        except ImportError:
            raise MultiFairError(
                "load_support2 needs the PyPI package `SurvSet`: pip install 'monai-multifair[suite]'"
            ) from None
        with warnings.catch_warnings():
            # SurvSet's shipped pickle names numpy.core (NumPy 2 renamed it numpy._core); harmless here
            warnings.filterwarnings(
                "ignore", message=r"numpy\.core\.numeric is deprecated", category=DeprecationWarning
            )
            frame = SurvLoader().load_dataset(ds_name="support2")["df"]
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise MultiFairError(f"support2: the table lacks column(s) {missing}")
    frame = frame.reset_index(drop=True)
    for column, allowed in (
        ("fac_race", tuple(_RACE)),
        ("fac_income", (*_INCOME, "missing")),
        ("fac_ca", _CANCER),
        ("fac_sex", ("female", "male")),
    ):
        bad = sorted(set(frame[column].astype(str)) - set(allowed))
        if bad:
            raise MultiFairError(f"support2: unexpected `{column}` value(s) {bad}; expected {list(allowed)}")
    physiology = pd.DataFrame(index=frame.index)
    for name in SUPPORT2_PHYSIOLOGY:
        values = frame[f"num_{name}"].astype(np.float64)
        absent = values.isna()
        if name in SUPPORT2_LAB_DEFAULTS:
            physiology[name] = values.fillna(SUPPORT2_LAB_DEFAULTS[name])
            physiology[f"{name}_missing"] = absent.to_numpy(np.float64)
        elif absent.any():
            # one row of the shipped table lacks its vital signs: the median of the whole column stands in
            # (a fixed number, not fitted on a split) and the row is flagged in `vitals_missing`
            physiology[name] = values.fillna(values.median())
        else:
            physiology[name] = values
    vitals = [c for c in SUPPORT2_PHYSIOLOGY if c not in SUPPORT2_LAB_DEFAULTS]
    physiology["vitals_missing"] = frame[[f"num_{c}" for c in vitals]].isna().any(axis=1).to_numpy(np.float64)
    history = pd.DataFrame(index=frame.index)
    for name in _HISTORY_NUMERIC:
        values = frame[f"num_{name}"].astype(np.float64)
        history[name] = values.fillna(values.median())  # education: 1,634 missing, the whole column's median
        history[f"{name}_missing"] = values.isna().to_numpy(np.float64)
    for name in _ADL:
        values = frame[f"num_{name}"].astype(np.float64)
        history[name] = values.fillna(0.0)
        history[f"{name}_missing"] = values.isna().to_numpy(np.float64)
    history["male"] = (frame["fac_sex"].astype(str) == "male").to_numpy(np.float64)
    history["diabetes"] = frame["fac_diabetes"].astype(np.float64).to_numpy()
    history["dementia"] = frame["fac_dementia"].astype(np.float64).to_numpy()
    groups = sorted(set(frame["fac_dzgroup"].astype(str)))
    history = pd.concat(
        [
            history,
            _one_hot(frame["fac_income"].astype(str), [*_INCOME, "missing"], "income"),
            _one_hot(frame["fac_ca"].astype(str), list(_CANCER), "cancer"),
            _one_hot(frame["fac_dzgroup"].astype(str), groups, "dzgroup"),
        ],
        axis=1,
    )
    event = frame["event"].to_numpy(np.int64) == 1
    time = frame["time"].to_numpy(np.float64)
    labelled = (event & (time <= SUPPORT2_HORIZON_DAYS)) | (time > SUPPORT2_HORIZON_DAYS)
    keep = np.flatnonzero(labelled)
    ids = frame["pid"].astype(str).to_numpy() if "pid" in frame.columns else np.arange(len(frame)).astype(str)
    return TableCohort(
        name="support2",
        blocks={
            "physiology": physiology.iloc[keep].reset_index(drop=True),
            "history": history.iloc[keep].reset_index(drop=True),
        },
        label=(event & (time <= SUPPORT2_HORIZON_DAYS))[keep].astype(np.int64),
        attributes=pd.DataFrame(
            {
                "race": frame["fac_race"].astype(str).map(_RACE).to_numpy()[keep],
                "sex": frame["fac_sex"].astype(str).to_numpy()[keep],
            }
        ),
        ids=[f"support2 patient {ids[i]}" for i in keep],
    )


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data source ``support2`` (options: :class:`~monai_multifair.data.TableSplit`)."""
    return [
        table_source(
            "support2",
            "SUPPORT2 (SurvSet, 9,105 patients): physiology block vs history/function block, 180-day "
            "death, race groups",
            load_support2,
            modalities=("physiology", "history"),
            attributes=("race", "sex"),
        )
    ]
