"""Atomic writes: a target holds its old or its new content, never a part; temporaries never linger."""

from __future__ import annotations

import errno
import os
import stat

import pytest
import torch

from monai_multifair import atomic_io
from monai_multifair.atomic_io import (
    FileRecord,
    atomic_open,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_files,
    atomic_write_text,
    file_record,
    remove_stale_temporaries,
    verify_file,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _disk_full(monkeypatch):
    """Make the data flush fail as a full disk does (``write`` succeeds into the page cache)."""

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_io.os, "fsync", fsync)


def test_text_and_bytes_replace_the_target(tmp_path):
    target = tmp_path / "metrics.json"
    assert atomic_write_text(target, "old\n") == target
    atomic_write_text(target, "new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


def test_new_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_disk_full_keeps_the_old_content_and_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("previous report")
    _disk_full(monkeypatch)
    with pytest.raises(OSError, match=r"No space left on device: '.*report\.html'") as info:
        atomic_write_text(target, "a new report that does not fit")
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "previous report"
    assert _leftovers(tmp_path) == []


def test_interrupt_while_serialising_a_checkpoint_leaves_no_partial_file(tmp_path):
    class Interrupting:
        def __reduce__(self):
            raise KeyboardInterrupt

    target = tmp_path / "checkpoint.pt"
    atomic_torch_save({"step": 1}, target)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"weights": torch.zeros(1000), "bad": Interrupting()}, target)
    assert torch.load(target)["step"] == 1
    assert _leftovers(tmp_path) == []


def test_torch_save_record_is_the_record_of_the_file(tmp_path):
    target = tmp_path / "best.pt"
    record = atomic_torch_save({"w": torch.arange(10_000)}, target)
    assert record == file_record(target)
    assert record.size == target.stat().st_size
    assert verify_file(target, record) is None
    assert FileRecord.from_dict(record.to_dict()) == record


def test_verify_file_detects_truncation_and_damage(tmp_path):
    target = tmp_path / "checkpoint.pt"
    record = atomic_torch_save({"w": torch.arange(1000)}, target)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    assert verify_file(target, record) == (
        f"{str(target)!r} has {len(data) // 2} bytes, its record says {record.size} (truncated or replaced)"
    )
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    assert (
        verify_file(target, record)
        == f"{str(target)!r} does not match its SHA-256 record (damaged or replaced)"
    )
    target.unlink()
    assert verify_file(target, record) == f"{str(target)!r} is missing"


@pytest.mark.parametrize(
    ("data", "message"),
    [({"size": -1, "sha256": "0" * 64}, "`size` >= 0"), ({"size": 3, "sha256": "abc"}, "64 hex digits")],
)
def test_file_record_from_dict_checks_its_values(data, message):
    with pytest.raises(ValueError, match=message):
        FileRecord.from_dict(data)


def test_several_files_are_all_or_nothing(tmp_path, monkeypatch):
    html, md = tmp_path / "report.html", tmp_path / "report.md"
    html.write_text("old html")
    calls = []
    real_fsync = os.fsync

    def fsync(fd):  # every file is staged (and fsynced) before any rename: fail the second file
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(atomic_io.os, "fsync", fsync)
    with pytest.raises(OSError, match=r"No space left on device: '.*report\.md'"):
        atomic_write_files({html: "new html", md: "new md"})
    assert html.read_text() == "old html" and not md.exists()
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    assert atomic_write_files({html: "new html", md: b"new md"}) == [html, md]
    assert html.read_text() == "new html" and md.read_text() == "new md"


def test_read_only_folder_is_a_permission_error_naming_the_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=r"'.*ro/out\.json'"):
            atomic_write_text(folder / "out.json", "{}")
    finally:
        folder.chmod(0o700)


def test_atomic_open_commits_only_a_finished_block(tmp_path):
    target = tmp_path / "data.bin"
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("writer failed")
    assert not target.exists() and _leftovers(tmp_path) == []


def test_remove_stale_temporaries_only_removes_ours(tmp_path):
    ours = tmp_path / ".checkpoint.pt.0123456789ab.tmp"
    other = tmp_path / ".notes.tmp"
    ours.write_bytes(b"left by a SIGKILL")
    other.write_text("not ours")
    assert remove_stale_temporaries(tmp_path, "checkpoint.pt") == [ours]
    assert other.exists()
