"""``fmfl.durable.atomic_write``: the one atomic, durable file write (the privacy ledger's, the device state's,
the gateway store's, provisioning's)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from fmfl import durable
from fmfl.privacy.local import PrivacyLedger


def test_the_rename_is_made_durable_by_fsyncing_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A spy on os.fsync (a power cut cannot be staged here): the file and then its folder must be synced.
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(durable.os, "fsync", spy)
    ledger = PrivacyLedger(tmp_path / "state")
    assert ledger.record() == 1
    assert ledger.record() == 2
    assert synced == ["file", "dir", "file", "dir"]
    assert PrivacyLedger(tmp_path / "state").releases() == 2


def test_mode_is_set_before_the_data_and_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    durable.atomic_write(target, b"old", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    with pytest.raises(TypeError):
        durable.atomic_write(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]  # no temporary file left behind


def _fsync_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(durable.os, "fsync", spy)
    return synced


def test_an_exception_inside_the_stream_abandons_the_write(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    durable.atomic_write(target, b"old")

    def write_then_abandon() -> None:
        with durable.atomic_writer(target) as out:
            out.write(b"half of the new")
            raise RuntimeError("checksum mismatch")

    with pytest.raises(RuntimeError, match="checksum"):
        write_then_abandon()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_idx_files_are_written_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fmfl.datasets import read_idx, write_idx

    synced = _fsync_spy(monkeypatch)
    write_idx(tmp_path / "x.idx", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert synced == ["file", "dir"]
    assert read_idx(tmp_path / "x.idx").tolist() == [[0, 1, 2], [3, 4, 5]]


def test_data_shards_are_atomic_but_not_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A demo's shards are rebuilt from their source: one fsync per PNG would dominate writing them.
    from PIL import Image

    from fmfl.edge_client.data import write_image_folder

    synced = _fsync_spy(monkeypatch)
    images = np.arange(48, dtype=np.uint8).reshape(3, 4, 4)
    write_image_folder(tmp_path / "shard", images, np.array([0, 1, 1]), ["a", "b"])
    assert synced == []
    files = sorted(p.relative_to(tmp_path / "shard").as_posix() for p in (tmp_path / "shard").rglob("*") if p.is_file())
    assert files == ["a/000000.png", "b/000001.png", "b/000002.png"]  # no temporary file left behind
    assert np.array_equal(np.asarray(Image.open(tmp_path / "shard" / "b" / "000002.png")), images[2])
