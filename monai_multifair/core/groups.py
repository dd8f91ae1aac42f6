"""``GroupEncoder``: sensitive-attribute columns to intersectional group ids, and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.errors import MultiFairError

__all__ = ["GroupEncoder"]


class GroupEncoder:
    """Map one or several attribute columns to group ids ``0..K-1`` of their intersection.

    Groups are the combinations of attribute values seen by :meth:`fit`, in sorted order, so the
    mapping is deterministic. Missing (NaN/None) or unseen values are errors that name the column,
    the value and the number of rows concerned.

    Args:
        attributes: column names, e.g. ``["race", "sex"]``.
        categories: optional fixed values per attribute (then every combination is a group, seen or
            not, and :meth:`fit` is not needed).

    Example:
        >>> enc = GroupEncoder(["sex", "race"]).fit({"sex": ["F", "M", "F"], "race": ["A", "B", "B"]})
        >>> enc.labels
        ('sex=F & race=A', 'sex=F & race=B', 'sex=M & race=B')
        >>> enc.transform({"sex": ["M", "F"], "race": ["B", "A"]}).tolist()
        [2, 0]
    """

    def __init__(
        self, attributes: Sequence[str], categories: Mapping[str, Sequence[Any]] | None = None
    ) -> None:
        if isinstance(attributes, str):
            attributes = [attributes]
        attributes = list(attributes)
        if not attributes:
            raise MultiFairError("expected `attributes` to name at least one column, got []")
        if len(set(attributes)) != len(attributes):
            raise MultiFairError(f"expected `attributes` without repeats, got {attributes}")
        self.attributes = tuple(str(a) for a in attributes)
        self._combinations: list[tuple[Any, ...]] | None = None
        if categories is not None:
            missing = [a for a in self.attributes if a not in categories]
            if missing:
                raise MultiFairError(f"`categories` lacks attribute(s) {missing}")
            grids = [sorted(categories[a], key=_sort_key) for a in self.attributes]
            combos = pd.MultiIndex.from_product(grids).tolist()
            self._set_combinations([c if isinstance(c, tuple) else (c,) for c in combos])

    # ------------------------------------------------------------------ fitting
    def _set_combinations(self, combinations: list[tuple[Any, ...]]) -> None:
        self._combinations = combinations
        self._index = {combo: i for i, combo in enumerate(combinations)}

    def _frame(self, data: Any) -> pd.DataFrame:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
        missing = [a for a in self.attributes if a not in frame.columns]
        if missing:
            raise MultiFairError(
                f"sensitive attribute column(s) {missing} not found; available: {list(map(str, frame.columns))}"
            )
        frame = frame[list(self.attributes)]
        for column in self.attributes:
            nulls = int(frame[column].isna().sum())
            if nulls:
                raise MultiFairError(
                    f"sensitive attribute `{column}` has {nulls} missing value(s) (NaN/None); "
                    "map them to an explicit category first"
                )
        return frame

    def fit(self, data: Any) -> GroupEncoder:
        """Learn the groups (the attribute combinations present in ``data``)."""
        frame = self._frame(data)
        combos = {tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)}
        self._set_combinations(sorted(combos, key=lambda c: tuple(_sort_key(v) for v in c)))
        return self

    def fit_transform(self, data: Any) -> np.ndarray:
        """``fit`` then ``transform``."""
        return self.fit(data).transform(data)

    def _require_fitted(self) -> list[tuple[Any, ...]]:
        if self._combinations is None:
            raise MultiFairError("GroupEncoder is not fitted: call `fit` first or pass `categories`")
        return self._combinations

    # ------------------------------------------------------------------ mapping
    @property
    def num_groups(self) -> int:
        """``K``, the number of groups."""
        return len(self._require_fitted())

    @property
    def labels(self) -> tuple[str, ...]:
        """Readable label of each group id, e.g. ``"race=Black & sex=F"``."""
        return tuple(
            " & ".join(f"{a}={v}" for a, v in zip(self.attributes, combo)) for combo in self._require_fitted()
        )

    def transform(self, data: Any) -> np.ndarray:
        """Group id (``int64``) of every row of ``data``."""
        self._require_fitted()
        frame = self._frame(data)
        ids = np.empty(len(frame), dtype=np.int64)
        unknown: dict[tuple[Any, ...], int] = {}
        for i, row in enumerate(frame.itertuples(index=False, name=None)):
            combo = tuple(_plain(v) for v in row)
            gid = self._index.get(combo)
            if gid is None:
                unknown[combo] = unknown.get(combo, 0) + 1
                ids[i] = -1
            else:
                ids[i] = gid
        if unknown:
            first, count = next(iter(unknown.items()))
            desc = ", ".join(f"{a}={v!r}" for a, v in zip(self.attributes, first))
            raise MultiFairError(
                f"unseen sensitive-attribute combination ({desc}) in {count} row(s) "
                f"({sum(unknown.values())} rows in {len(unknown)} unseen combination(s)); known groups: "
                f"{', '.join(self.labels)}"
            )
        return ids

    def inverse_transform(self, ids: Any) -> pd.DataFrame:
        """Attribute columns for group ids."""
        combos = self._require_fitted()
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = (ids < 0) | (ids >= len(combos))
        if bad.any():
            raise MultiFairError(
                f"expected group ids in [0, {len(combos)}), got {int(ids[bad][0])} ({int(bad.sum())} out of range)"
            )
        return pd.DataFrame([combos[i] for i in ids], columns=list(self.attributes))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-value form (JSON/YAML), restored by :meth:`from_dict`."""
        return {"attributes": list(self.attributes), "groups": [list(c) for c in self._require_fitted()]}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> GroupEncoder:
        """Rebuild from :meth:`to_dict`."""
        enc = cls(state["attributes"])
        enc._set_combinations([tuple(c) for c in state["groups"]])
        return enc

    def __repr__(self) -> str:
        k = "unfitted" if self._combinations is None else f"num_groups={len(self._combinations)}"
        return f"GroupEncoder(attributes={list(self.attributes)}, {k})"


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars so that 1 == np.int64(1) hash alike."""
    return value.item() if isinstance(value, np.generic) else value


def _sort_key(value: Any) -> tuple[int, Any]:
    value = _plain(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))
