"""The append-only run store."""

from __future__ import annotations

import json

import pytest

from monai_multifair.comparison import RunStore, config_hash
from monai_multifair.errors import MultiFairError


def test_rows_survive_reopening_and_nan_is_stored_as_null(tmp_path) -> None:
    store = RunStore(tmp_path / "runs.jsonl")
    store.append({"key": "a", "phase": "final", "metrics": {"auc": float("nan")}})
    store.append({"key": "b", "phase": "tune"})
    again = RunStore(tmp_path / "runs.jsonl")
    assert len(again) == 2 and "a" in again
    assert again.get("a")["metrics"]["auc"] is None
    assert [r["key"] for r in again.rows(phase="tune")] == ["b"]


def test_a_finished_run_cannot_be_stored_twice(tmp_path) -> None:
    store = RunStore(tmp_path / "runs.jsonl")
    store.append({"key": "a"})
    with pytest.raises(MultiFairError, match="never runs twice"):
        store.append({"key": "a"})


def test_a_torn_last_line_is_cut_off(tmp_path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + '{"key": "b", "met', encoding="utf-8")
    store = RunStore(path)
    assert len(store) == 1 and "b" not in store
    assert path.read_text(encoding="utf-8") == json.dumps({"key": "a"}) + "\n"
    store.append({"key": "b"})
    assert len(RunStore(path)) == 2


def test_a_broken_line_inside_the_file_is_an_error(tmp_path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n', encoding="utf-8")
    with pytest.raises(MultiFairError, match="line 2"):
        RunStore(path)


def test_config_hash_ignores_key_order() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_the_file_store_offers_the_claims_interface_for_its_single_worker(tmp_path) -> None:
    store = RunStore(tmp_path / "runs.jsonl")
    assert store.claim("a", "w1", 60) and store.claim("a", "w2", 60)  # no claims kept in a file
    assert store.finish({"key": "a", "worker": "w1"}, "w1")
    assert not store.claim("a", "w2", 60) and not store.claimed("a") and store.pending() == 0
    assert store.renew("w1", 60) == 0
    store.release("a", "w1")
    assert RunStore(tmp_path / "runs.jsonl").get("a")["worker"] == "w1"
