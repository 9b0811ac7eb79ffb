"""``fmfl.durable.atomic_write``: the one atomic, durable file write (the privacy ledger's, the device state's,
the gateway store's, provisioning's)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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
    assert ledger.record() == 1 and ledger.record() == 2
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
