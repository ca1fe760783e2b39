"""transformer.durable: atomic + durable writes, directory replacement without a gap, and the
clean-up of a killed writer's temporaries."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from transformer import durable


def test_writes_replace_atomically_and_leave_no_temporary(tmp_path) -> None:
    path = tmp_path / "f.json"
    durable.write_json(path, {"a": [1.5, float("inf")]})
    assert json.loads(path.read_text()) == {"a": [1.5, "inf"]}
    durable.write_text(path, "new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["f.json"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_a_failed_write_keeps_the_old_file_and_names_the_destination(tmp_path, code) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")

    def fail(label: str) -> None:
        if label == "fsync":
            raise OSError(code, os.strerror(code))

    durable.fault_hook = fail
    try:
        with pytest.raises(OSError) as err:
            durable.write_text(path, "new")
    finally:
        durable.fault_hook = None
    assert err.value.errno == code and err.value.filename == str(path)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


@pytest.mark.parametrize("exchange", [True, False])
def test_atomic_dir_replaces_an_existing_directory(tmp_path, monkeypatch, exchange) -> None:
    if not exchange:
        monkeypatch.setattr(durable, "_exchange", lambda a, b: False)
    target = tmp_path / "step"
    for text in ("one", "two"):
        with durable.atomic_dir(target) as tmp:
            (tmp / "x").write_text(text)
    assert (target / "x").read_text() == "two" and os.listdir(tmp_path) == ["step"]


def test_a_crash_between_the_two_renames_is_undone_on_start(tmp_path) -> None:
    old = tmp_path / ".old-step"
    old.mkdir()
    (old / "x").write_text("kept")
    assert durable.clean_stale(tmp_path) == []
    assert (tmp_path / "step" / "x").read_text() == "kept"


def test_clean_stale_removes_only_dead_writers_temporaries(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / f".tmp-{dead}-abcd-model.safetensors").write_bytes(b"torn")
    (tmp_path / f".tmp-{dead}-abcd-step-00000004").mkdir()
    (tmp_path / ".tmp-step-00000002").mkdir()  # the format of older versions
    alive = tmp_path / f".tmp-{os.getppid()}-abcd-other"  # a writer that still runs
    alive.write_bytes(b"")
    (tmp_path / "keep.txt").write_text("")
    removed = durable.clean_stale(tmp_path)
    assert len(removed) == 3
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, "keep.txt"])
