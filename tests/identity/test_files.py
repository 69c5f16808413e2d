"""Files written whole: replaced atomically, created once, always mode 0600, no temporary left behind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from identity.files import write_atomic, write_new


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_replaces_the_whole_file_private(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_atomic_leaves_no_temporary_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    target.mkdir()
    (target / "inside").write_bytes(b"x")
    with pytest.raises(OSError):
        write_atomic(target, b"a file cannot replace a full folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_write_new_creates_once(tmp_path: Path) -> None:
    key = tmp_path / "key"
    write_new(key, b"first")
    with pytest.raises(FileExistsError):
        write_new(key, b"second")
    assert key.read_bytes() == b"first" and mode(key) == 0o600
