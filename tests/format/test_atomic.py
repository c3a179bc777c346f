"""Atomic file and directory writes (modhub.format.atomic): the old one stays unless the new one is whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modhub.format import atomic
from modhub.format.atomic import atomic_directory, atomic_write, replace_directory, write_bytes, write_text


class Boom(Exception):
    pass


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_a_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "modhub.json"
    target.write_text("old")
    assert write_text(target, "new") == target
    assert target.read_text() == "new"
    assert _leftovers(tmp_path, {"modhub.json"}) == []


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "token"
    target.write_bytes(b"old")
    with pytest.raises(Boom), atomic_write(target) as fh:
        fh.write(b"half of the new")
        raise Boom
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"token"}) == []


def test_a_failing_rename_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "record.json"
    target.write_bytes(b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"record.json"}) == []


def test_the_bytes_are_on_disk_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_bytes(tmp_path / "f", b"data")
    # The file is synced before the rename, the directory after it.
    assert events == ["fsync", "replace", "fsync"]


def test_mode_0600_holds_from_creation_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with atomic_write(tmp_path / "token", mode=0o600) as fh:
            # While the secret is being written, its temp file is private already.
            assert stat.S_IMODE(os.fstat(fh.fileno()).st_mode) == 0o600
            fh.write(b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600


def test_without_a_mode_a_file_gets_what_open_would_give(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "a", b"x")
        with open(tmp_path / "b", "wb"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == stat.S_IMODE((tmp_path / "b").stat().st_mode)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_directory_replaces_an_existing_one(tmp_path: Path) -> None:
    target = tmp_path / "module"
    (target / "assets").mkdir(parents=True)
    (target / "assets" / "old.txt").write_text("old")
    with atomic_directory(target) as staging:
        assert staging.parent == tmp_path and staging != target
        (staging / "new.txt").write_text("new")
    assert _tree(target) == {"new.txt": b"new"}
    assert _leftovers(tmp_path, {"module"}) == []


def test_a_directory_appears_where_there_was_none(tmp_path: Path) -> None:
    with atomic_directory(tmp_path / "module") as staging:
        (staging / "f").write_text("x")
    assert _tree(tmp_path / "module") == {"f": b"x"}
    assert _leftovers(tmp_path, {"module"}) == []


def test_a_failure_while_building_leaves_the_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "module"
    target.mkdir()
    (target / "f").write_text("old")
    with pytest.raises(Boom), atomic_directory(target) as staging:
        (staging / "f").write_text("half")
        raise Boom
    assert _tree(target) == {"f": b"old"}
    assert _leftovers(tmp_path, {"module"}) == []


def test_a_failing_rename_in_puts_the_old_directory_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "module"
    target.mkdir()
    (target / "f").write_text("old")
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "f").write_text("new")
    real_rename = os.rename

    def rename(src: Path, dst: Path) -> None:
        if Path(src) == staging:
            raise OSError("cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError, match="cross-device"):
        replace_directory(staging, target)
    assert _tree(target) == {"f": b"old"}
    assert _leftovers(tmp_path, {"module", "staging"}) == []
