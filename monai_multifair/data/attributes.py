"""Sensitive attributes: code tables, the unknown-value policy, and their encoding to group ids.

Every dataset of :mod:`monai_multifair.data` goes through the same two steps:

1. :func:`apply_unknown_policy` decides what happens to rows with an unknown value (``-1`` in the
   Harvard layouts, an empty cell in a manifest) in a *selected* attribute: ``"error"`` stops with a
   message naming the first row, ``"drop"`` removes the rows and *counts* them (an
   :class:`UnknownReport`, also logged at WARNING level), ``"keep"`` keeps them as a group of their own
   (value ``"unknown"``, code ``-1``).
2. :class:`AttributeCoding` turns the attribute values into integer codes and, through
   :class:`~monai_multifair.core.groups.GroupEncoder`, into the id of their intersection (the
   ``"group"`` key of a sample). It is fitted on the training split and reused for the others so that a
   group id means the same thing everywhere.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from monai_multifair.core.groups import GroupEncoder
from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = [
    "FAIRVISION_CODES",
    "FAIRVLMED_CODES",
    "UNKNOWN_LABEL",
    "UNKNOWN_POLICIES",
    "AttributeCoding",
    "UnknownPolicy",
    "UnknownReport",
    "apply_unknown_policy",
]

logger = logging.getLogger(__name__)

UnknownPolicy = Literal["error", "drop", "keep"]
UNKNOWN_POLICIES: tuple[str, ...] = ("error", "drop", "keep")
#: Display value of an unknown attribute value kept as its own group.
UNKNOWN_LABEL = "unknown"

_RACE = {0: "Asian", 1: "Black", 2: "White"}
_HISPANIC = {0: "non-Hispanic", 1: "Hispanic"}
_LANGUAGE = {0: "English", 1: "Spanish", 2: "other"}
_MARITAL = {0: "married or partnered", 1: "single", 2: "divorced", 3: "widowed", 4: "legally separated"}

#: Documented codes of the FairVision npz attributes (``-1`` = unknown in every attribute).
FAIRVISION_CODES: dict[str, dict[int, str]] = {
    "race": _RACE,
    "male": {0: "female", 1: "male"},
    "hispanic": _HISPANIC,
    "language": _LANGUAGE,
    "maritalstatus": _MARITAL,
}
#: Documented codes of the FairVLMed npz attributes (``-1`` = unknown in every attribute).
FAIRVLMED_CODES: dict[str, dict[int, str]] = {
    "race": _RACE,
    "gender": {0: "female", 1: "male"},
    "ethnicity": _HISPANIC,
    "language": _LANGUAGE,
    "maritalstatus": _MARITAL,
}


def _is_unknown(value: Any, unknown_value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return unknown_value is not None and float(value) == float(unknown_value)
    return isinstance(value, str) and unknown_value is not None and value.strip() == str(unknown_value)


@dataclass
class UnknownReport:
    """What the unknown-value policy did to one dataset.

    Attributes:
        policy: ``"error"``, ``"drop"`` or ``"keep"``.
        total: rows before the policy.
        unknown: per attribute, how many rows had an unknown value (a row may count for several).
        dropped_ids: ids of the rows removed (``"drop"`` only).
    """

    policy: str
    total: int
    unknown: dict[str, int] = field(default_factory=dict)
    dropped_ids: list[str] = field(default_factory=list)

    @property
    def num_dropped(self) -> int:
        """Rows removed by ``"drop"``."""
        return len(self.dropped_ids)

    def __str__(self) -> str:
        detail = ", ".join(f"{a}: {n}" for a, n in self.unknown.items() if n) or "none"
        if self.policy == "drop":
            return f"dropped {self.num_dropped} of {self.total} rows with unknown attribute values ({detail})"
        if self.policy == "keep":
            return f"kept unknown attribute values as their own group ({detail})"
        return f"no unknown attribute values among {self.total} rows"


def apply_unknown_policy(
    frame: pd.DataFrame,
    attributes: Sequence[str],
    policy: str,
    *,
    unknown_value: Any = -1,
    id_column: str = "id",
    name: str = "dataset",
) -> tuple[pd.DataFrame, UnknownReport]:
    """Apply the unknown-value policy to the selected attribute columns of ``frame``.

    A value is unknown when it is missing (NaN/None/empty) or equals ``unknown_value``.

    Args:
        frame: one row per sample, with ``id_column`` and every attribute column.
        attributes: the selected sensitive attributes (other columns are not looked at).
        policy: ``"error"``, ``"drop"`` or ``"keep"``.
        unknown_value: the code for "unknown" (``-1`` in the Harvard layouts; ``None`` for none).
        id_column: column naming each row in messages (e.g. the file path).
        name: the dataset's name, for messages and the log.

    Returns:
        ``(frame, report)``: the rows kept (index reset) and an :class:`UnknownReport`.

    Raises:
        MultiFairError: unknown policy; ``"error"`` and an unknown value is present (the message names
            the first row, the attribute and how many rows are concerned).

    Example:
        >>> df = pd.DataFrame({"id": ["a", "b"], "language": [0, -1]})
        >>> kept, report = apply_unknown_policy(df, ["language"], "drop")
        >>> kept["id"].tolist(), report.num_dropped
        (['a'], 1)
    """
    if policy not in UNKNOWN_POLICIES:
        raise MultiFairError(
            f"expected `unknown` to be one of {', '.join(map(repr, UNKNOWN_POLICIES))}, got {policy!r}"
            + close_match_hint(str(policy), UNKNOWN_POLICIES)
        )
    report = UnknownReport(policy=policy, total=len(frame))
    masks = {a: frame[a].map(lambda v: _is_unknown(v, unknown_value)).to_numpy(bool) for a in attributes}
    report.unknown = {a: int(m.sum()) for a, m in masks.items()}
    any_unknown = np.zeros(len(frame), dtype=bool)
    for mask in masks.values():
        any_unknown |= mask
    if not any_unknown.any():
        return frame.reset_index(drop=True), report
    if policy == "error":
        row = int(np.flatnonzero(any_unknown)[0])
        first_attr = next(a for a, m in masks.items() if m[row])
        value = frame[first_attr].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise MultiFairError(
            f"{name}: {frame[id_column].iloc[row]!s} has an unknown value ({value!r}) "
            f"for attribute {first_attr!r} ({int(any_unknown.sum())} of {len(frame)} rows have unknown values: "
            f"{', '.join(f'{a}: {n}' for a, n in report.unknown.items() if n)}); "
            "set the config key `data.unknown` to 'drop' to remove them (counted and reported) or to 'keep' to "
            "make them a group (in Python: the `unknown` argument)"
        )
    if policy == "drop":
        report.dropped_ids = [str(v) for v in frame.loc[any_unknown, id_column]]
        logger.warning("%s: %s", name, report)
        return frame.loc[~any_unknown].reset_index(drop=True), report
    frame = frame.copy()
    for attr, mask in masks.items():
        frame[attr] = frame[attr].astype(object)
        frame.loc[mask, attr] = None
    return frame.reset_index(drop=True), report


class AttributeCoding:
    """Integer codes of the sensitive attributes and the group id of their intersection.

    An attribute whose known values are all integers keeps them as its codes (the documented codes of the
    Harvard layouts, e.g. race 0 Asian, 1 Black, 2 White); any other attribute (strings) is coded by
    the position of its value among the sorted values seen by :meth:`fit`. A kept unknown value is code
    ``-1`` and shows as ``"unknown"``. Group ids come from a
    :class:`~monai_multifair.core.groups.GroupEncoder` fitted on the *display* values (``code_names``
    applied), so group labels read ``"race=Black & gender=female"``.

    Args:
        attributes: the selected sensitive attributes, in order.
        code_names: per attribute, a table ``code -> name``; an integer code outside the table is an
            error (it is not a documented value).

    Example:
        >>> coding = AttributeCoding(["race"], {"race": {0: "Asian", 1: "Black", 2: "White"}})
        >>> frame = pd.DataFrame({"race": [2, 0, 2]})
        >>> codes, groups = coding.fit(frame).encode(frame)
        >>> codes["race"].tolist(), groups.tolist(), coding.group_labels
        ([2, 0, 2], [1, 0, 1], ('race=Asian', 'race=White'))
    """

    def __init__(self, attributes: Sequence[str], code_names: Mapping[str, Mapping[int, str]] | None = None):
        if isinstance(attributes, str):
            attributes = [attributes]
        self.attributes = tuple(attributes)
        if not self.attributes:
            raise MultiFairError("expected `attributes` to name at least one sensitive attribute, got []")
        if len(set(self.attributes)) != len(self.attributes):
            raise MultiFairError(f"expected `attributes` without repeats, got {list(self.attributes)}")
        self.code_names = {a: dict(code_names[a]) for a in self.attributes if code_names and a in code_names}
        self.categories: dict[str, tuple[str, ...]] = {}
        self.encoder: GroupEncoder | None = None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _integral(value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, np.integer)):
            return True
        return isinstance(value, (float, np.floating)) and float(value).is_integer()

    def _display(
        self, attr: str, values: pd.Series, ids: Sequence[str] | None
    ) -> tuple[np.ndarray, list[Any]]:
        codes = np.full(len(values), -1, dtype=np.int64)
        display: list[Any] = []
        names = self.code_names.get(attr)
        for i, value in enumerate(values.tolist()):
            where = f"{ids[i]!s}: " if ids is not None else ""
            if value is None or (isinstance(value, float) and math.isnan(value)):
                display.append(UNKNOWN_LABEL)
                continue
            if attr in self.categories:
                text = str(value)
                if text not in self.categories[attr]:
                    raise MultiFairError(
                        f"{where}attribute {attr!r} has value {text!r}, not seen when the coding was fitted "
                        "(on the training split); "
                        f"known: {list(self.categories[attr])}"
                    )
                codes[i] = self.categories[attr].index(text)
                display.append(text)
                continue
            if not self._integral(value):
                raise MultiFairError(f"{where}attribute {attr!r} is integer-coded but has value {value!r}")
            code = int(value)
            codes[i] = code
            if names is not None:
                if code not in names:
                    documented = ", ".join(f"{k} ({v})" for k, v in names.items())
                    raise MultiFairError(
                        f"{where}attribute {attr!r} has code {code}, which is not documented; "
                        f"known codes: {documented}, and the unknown code"
                    )
                display.append(names[code])
            else:
                display.append(code)
        return codes, display

    # ------------------------------------------------------------------ API
    def fit(self, frame: pd.DataFrame, ids: Sequence[str] | None = None) -> AttributeCoding:
        """Learn string categories and the groups present in ``frame`` (unknowns as ``None``).

        Args:
            frame: the attribute columns (of the training split).
            ids: names of the rows (files, manifest rows) for messages.

        Raises:
            MultiFairError: a value that is neither an integer code nor text (e.g. ``1.5``), or text in
                an attribute with a code table; the message names the row, the attribute and the value.
        """
        self.categories = {}
        for attr in self.attributes:
            known = []
            for i, v in enumerate(frame[attr].tolist()):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                category = isinstance(v, (str, bool, np.bool_))  # text (or true/false) categories
                if not (self._integral(v) or category) or (category and attr in self.code_names):
                    where = f"{ids[i]!s}: " if ids is not None else f"row {i}: "
                    rule = (
                        "an integer code of its table: "
                        + ", ".join(f"{k} ({n})" for k, n in self.code_names[attr].items())
                        if attr in self.code_names
                        else "an integer code or a text category"
                    )
                    raise MultiFairError(f"{where}attribute {attr!r} has value {v!r}; expected {rule}")
                known.append(v)
            if known and not all(self._integral(v) for v in known):
                self.categories[attr] = tuple(sorted({str(v) for v in known}))
        display = self.display_frame(frame)
        self.encoder = GroupEncoder(list(self.attributes)).fit(display)
        return self

    def display_frame(self, frame: pd.DataFrame, ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The attribute values as shown in group labels (code names applied, ``"unknown"``)."""
        return pd.DataFrame({a: self._display(a, frame[a], ids)[1] for a in self.attributes})

    def encode(
        self, frame: pd.DataFrame, ids: Sequence[str] | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Codes per attribute (``int64 [N]``) and group ids (``int64 [N]``) of ``frame``'s rows."""
        if self.encoder is None:
            raise MultiFairError("AttributeCoding is not fitted: call `fit` on the training rows first")
        codes: dict[str, np.ndarray] = {}
        display: dict[str, list[Any]] = {}
        for attr in self.attributes:
            codes[attr], display[attr] = self._display(attr, frame[attr], ids)
        try:
            groups = self.encoder.transform(pd.DataFrame(display))
        except MultiFairError as err:
            raise MultiFairError(f"{err}; the coding was fitted on the training split") from None
        return codes, groups

    @property
    def num_groups(self) -> int:
        """``K``, the number of intersectional groups."""
        return self._fitted().num_groups

    @property
    def group_labels(self) -> tuple[str, ...]:
        """Readable label of every group id."""
        return self._fitted().labels

    def _fitted(self) -> GroupEncoder:
        if self.encoder is None:
            raise MultiFairError("AttributeCoding is not fitted: call `fit` on the training rows first")
        return self.encoder

    def to_dict(self) -> dict[str, Any]:
        """Plain values (YAML/JSON), restored by :meth:`from_dict`."""
        return {
            "attributes": list(self.attributes),
            "code_names": {a: {int(k): v for k, v in t.items()} for a, t in self.code_names.items()},
            "categories": {a: list(c) for a, c in self.categories.items()},
            "groups": self._fitted().to_dict(),
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> AttributeCoding:
        """Rebuild a fitted coding from :meth:`to_dict`."""
        names = {a: {int(k): v for k, v in t.items()} for a, t in (state.get("code_names") or {}).items()}
        coding = cls(state["attributes"], names or None)
        coding.categories = {a: tuple(c) for a, c in (state.get("categories") or {}).items()}
        coding.encoder = GroupEncoder.from_dict(state["groups"])
        return coding

    def __repr__(self) -> str:
        fitted = f"num_groups={self.encoder.num_groups}" if self.encoder is not None else "unfitted"
        return f"AttributeCoding(attributes={list(self.attributes)}, {fitted})"
