"""DataSourceSpec refuses an inconsistent declaration with a message naming the field, the rule and the value."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from monai_multifair.data import TableSplit
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import DataSourceSpec


@dataclass
class Seeded:
    seed: int = 0


@dataclass
class Unseeded:
    path: str = "x.csv"


def spec(**kwargs) -> DataSourceSpec:
    return DataSourceSpec(
        **{"name": "mine", "description": "", "build_split": print, "modalities": {"x": "tabular"}, **kwargs}
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "my source"}, r"`name` to be a non-empty string without whitespace, got 'my source'"),
        (
            {"modalities": {"x": "table"}},
            r"`modalities` of data source 'mine' to be a mapping to kinds image, volume, text, tabular, got \{'x': 'table'\}",
        ),
        (
            {"split": "folds"},
            r"`split` of data source 'mine' to be one of fixed, rows, generated, got 'folds'",
        ),
        (
            {"split": "rows", "options": TableSplit},
            r"`split_section` of data source 'mine' to be given exactly when `split` is 'rows', got None",
        ),
        (
            {"split": "rows", "split_section": "split", "options": Unseeded},
            r"`split_section` of data source 'mine' to be a field of Unseeded, got 'split'",
        ),
        (
            {"split": "generated", "options": Unseeded},
            r"`options` of data source 'mine' to be a dataclass with a `seed` field when `split` is 'generated'",
        ),
        ({"split": "generated"}, r"`options` of data source 'mine' to be a dataclass with a `seed` field"),
    ],
)
def test_inconsistent_declarations_are_refused(kwargs, message):
    with pytest.raises(MultiFairError, match=message):
        spec(**kwargs)


def test_consistent_declarations_are_accepted():
    assert spec(split="generated", options=Seeded).split == "generated"
    assert spec(split="rows", split_section="", options=TableSplit).describe()["split"] == "rows"
