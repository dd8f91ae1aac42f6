"""Writers of small FairVision / FairVLMed folders for the loader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FOLDERS = {"train": "Training", "val": "Validation", "test": "Test"}


def write_fairvision(
    root: Path, n_per_split: int = 6, *, size: int = 12, slices: int = 5, seed: int = 0
) -> dict:
    """FairVision files with known content; returns ``{file path: arrays written}``."""
    rng = np.random.default_rng(seed)
    written = {}
    k = 0
    for folder in FOLDERS.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_split):
            k += 1
            arrays = {
                "slo_fundus": rng.integers(0, 256, (size, size), dtype=np.uint8),
                "oct_bscans": rng.integers(0, 256, (slices, size, size), dtype=np.uint8),
                "glaucoma": np.int64(i % 2),
                "race": np.int64(i % 3),
                "male": np.int64((i // 2) % 2),
                "hispanic": np.int64(0),
                "language": np.int64(i % 3),
                "maritalstatus": np.int64(1),
            }
            path = root / folder / f"data_{k:05d}.npz"
            np.savez(path, **arrays)
            written[str(path)] = arrays
    return written


def write_fairvlmed(root: Path, n_per_split: int = 6, *, size: int = 10, seed: int = 0) -> dict:
    """FairVLMed files plus data_summary.csv; returns ``{file path: arrays written (and 'csv_note')}``."""
    rng = np.random.default_rng(seed)
    written = {}
    rows = []
    k = 0
    for split, folder in FOLDERS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_split):
            k += 1
            arrays = {
                "slo_fundus": rng.integers(0, 256, (size, size), dtype=np.uint8),
                "glaucoma": np.int64((i + 1) % 2),
                "age": np.float64(50 + i),
                "gender": np.int64(i % 2),
                "race": np.int64(i % 3),
                "ethnicity": np.int64(0),
                "language": np.int64(i % 3),
                "note": np.str_(f"npz note {k}"),
                "md": np.float64(-1.5 * i),
            }
            name = f"data_{k:05d}.npz"
            np.savez(root / folder / name, **arrays)
            note = f"csv note for {name}, IOP {10 + i}"
            rows.append({"filename": name, "use": split, "note": note})
            written[str(root / folder / name)] = {**arrays, "csv_note": note}
    pd.DataFrame(rows).to_csv(root / "data_summary.csv", index=False)
    return written


@pytest.fixture
def fairvision_root(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "FairVision"
    return root, write_fairvision(root)


@pytest.fixture
def fairvlmed_root(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "FairVLMed"
    return root, write_fairvlmed(root)
