"""The append-only store of a comparison: one JSON line per finished run (``runs.jsonl``).

A row is written, flushed and synced to disk when its run has finished, and only then; a run that
was interrupted leaves no row and runs again when the comparison resumes, a run that has a row never
runs again. Each row holds its ``key`` (phase, data set, arm, seed or tuning configuration, config
hash), the metrics, the timings and the versions that produced it. A torn last line (the process
killed while writing it) is cut off when the store is opened again; any other line that does not
parse is an error naming the line.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from monai_multifair.engine.outputs import json_ready
from monai_multifair.errors import MultiFairError

__all__ = ["RunStore", "config_hash"]


def config_hash(document: Mapping[str, Any]) -> str:
    """A short, stable hash of a plain document (sorted keys, JSON)."""
    text = json.dumps(json_ready(document), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RunStore:
    """``runs.jsonl`` in a comparison's output folder.

    Args:
        path: the file (created on the first append).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        if tail:  # no newline after the last line: a torn write of a run that will run again
            with open(self.path, "r+b") as handle:
                handle.truncate(len(data) - len(tail))
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise MultiFairError(f"{self.path}: line {number} is not a JSON row ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                raise MultiFairError(f"{self.path}: line {number} has no `key`")
            self._rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._rows.values()))

    def get(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one finished run (its ``key`` must be new) and sync it to disk."""
        key = row.get("key")
        if not isinstance(key, str):
            raise MultiFairError(f"a store row needs a string `key`, got {key!r}")
        if key in self._rows:
            raise MultiFairError(f"run {key!r} is already in {self.path}: a finished run never runs twice")
        line = json.dumps(json_ready(dict(row)), sort_keys=True, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._rows[key] = json.loads(line)

    def rows(self, **match: Any) -> list[dict[str, Any]]:
        """The rows whose fields equal ``match`` (e.g. ``phase="final", dataset="cohort"``)."""
        return [r for r in self._rows.values() if all(r.get(k) == v for k, v in match.items())]
