"""The write-ahead log: dedupe, replay, and survival of a real SIGKILL mid-write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.sparse_updates import Sparse, random_update

from fmfl.aggregation import FedAvg, RejectedUpdate, RoundStateError, make_strategy
from fmfl.aggregator import LogError, UpdateLog

SIZE = 500


def _append(log: UpdateLog, rnd: int, cid: str, uid: str, u: Sparse, w: float = 2.0) -> bool:
    return log.append(
        round=rnd, client_id=cid, update_id=uid, weight=w, indices=u.indices, values=u.values, size=u.size
    )


def test_sqlite_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with UpdateLog(tmp_path / "wal.db") as log:
        assert log._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_records_round_trip_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ups = [random_update(rng, SIZE, 50) for _ in range(3)]
    with UpdateLog(tmp_path / "wal.db") as log:
        for i, u in enumerate(ups):
            assert _append(log, 1, f"c{i}", f"u{i}", u, w=1.5 + i)
        _append(log, 2, "c0", "other-round", ups[0])
    with UpdateLog(tmp_path / "wal.db") as log:  # reopened, as after a restart
        recs = list(log.records(1))
        assert [r.update_id for r in recs] == ["u0", "u1", "u2"]
        for r, u, i in zip(recs, ups, range(3), strict=True):
            assert np.array_equal(r.indices, u.indices)
            assert r.indices.dtype == np.int64
            assert np.array_equal(r.values, u.values)
            assert r.values.dtype == np.float32
            assert (r.weight, r.client_id, r.size, r.round) == (1.5 + i, f"c{i}", SIZE, 1)
        assert log.count(1) == 3
        assert log.count(2) == 1
        assert log.contains("u1")
        assert not log.contains("nope")


def test_redelivered_update_id_is_not_stored_twice(tmp_path: Path) -> None:
    u = random_update(np.random.default_rng(1), SIZE, 10)
    with UpdateLog(tmp_path / "wal.db") as log:
        assert _append(log, 1, "c", "u", u) is True
        assert _append(log, 1, "c", "u", u) is False  # MQTT QoS 1 redelivery
        assert log.count(1) == 1
        with pytest.raises(RejectedUpdate, match="already has an update logged in round 1"):
            _append(log, 1, "c", "u-new", u)
        with pytest.raises(LogError, match="was logged for round 1"):
            _append(log, 3, "c", "u", u)
        assert log.count(1) == 1
        assert log.count(3) == 0


def test_replay_rebuilds_the_round_and_never_adds_twice(tmp_path: Path) -> None:
    # Prepare: a live strategy that logs before accepting; it dies after the log got update 4 but
    # before accept did.
    rng = np.random.default_rng(2)
    g = rng.standard_normal(SIZE).astype(np.float32)
    ups = [random_update(rng, SIZE, 40) for _ in range(5)]
    live = FedAvg()
    live.begin_round(g)
    log = UpdateLog(tmp_path / "wal.db")
    for i, u in enumerate(ups):
        live.check(u, 3.0 + i, f"c{i}")
        _append(log, 7, f"c{i}", f"u{i}", u, w=3.0 + i)
        if i < 4:
            live.accept(u, 3.0 + i, f"c{i}")
    log.close()
    # Execute: restart, replay twice.
    fresh = FedAvg()
    fresh.begin_round(g)
    with UpdateLog(tmp_path / "wal.db") as log2:
        first = log2.replay(7, fresh)
        second = log2.replay(7, fresh)
    # Assert
    assert first.fed == [f"u{i}" for i in range(5)]
    assert not first.skipped
    assert not first.rejected
    assert second.fed == []
    assert second.skipped == first.fed
    live.accept(ups[4], 7.0, "c4")
    assert fresh.round_bytes() == live.round_bytes()
    assert np.array_equal(fresh.aggregate(), live.aggregate())


def test_replay_reports_updates_the_strategy_now_refuses(tmp_path: Path) -> None:
    u = random_update(np.random.default_rng(3), SIZE, 10)
    strategy = make_strategy("median", max_buffered_clients=1)
    strategy.begin_round(np.zeros(SIZE, np.float32))
    with UpdateLog(tmp_path / "wal.db") as log:
        _append(log, 1, "a", "ua", u)
        _append(log, 1, "b", "ub", u)
        report = log.replay(1, strategy)
    assert report.fed == ["ua"]
    assert report.rejected == [("ub", "capacity")]


def test_replay_needs_an_open_round(tmp_path: Path) -> None:
    with UpdateLog(tmp_path / "wal.db") as log, pytest.raises(RoundStateError, match="begin_round"):
        log.replay(1, FedAvg())


def test_prune_drops_finished_rounds(tmp_path: Path) -> None:
    u = random_update(np.random.default_rng(4), SIZE, 5)
    with UpdateLog(tmp_path / "wal.db") as log:
        for r in range(1, 4):
            _append(log, r, "c", f"u{r}", u)
        assert log.prune(before_round=3) == 2
        assert [log.count(r) for r in (1, 2, 3)] == [0, 0, 1]
        assert log.prune(before_round=4) == 1  # every row: the whole-table path
        assert log.count(3) == 0
        assert log.prune(before_round=5) == 0  # an empty log
        _append(log, 5, "c", "u5", u)  # and it takes updates again
        assert log.contains("u5")
        assert not log.contains("u3")


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LogError, match="cannot open update log"):
        UpdateLog(path)


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fmfl.aggregator import UpdateLog

    log = UpdateLog(sys.argv[1])
    for i in range(1_000_000):
        rng = np.random.default_rng(i)
        idx = np.sort(rng.choice(50_000, size=2_000, replace=False)).astype(np.int64)
        vals = rng.standard_normal(2_000).astype(np.float32)
        log.append(round=1, client_id=f"c{i}", update_id=f"u{i}", weight=float(i + 1),
                   indices=idx, values=vals, size=50_000)
        print(f"u{i}", flush=True)  # the acknowledgement: only after append returned
    """
)


def test_sigkill_mid_write_loses_no_acknowledged_update(tmp_path: Path) -> None:
    # Prepare: a real writer process appending as fast as it can.
    db = tmp_path / "wal.db"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = [proc.stdout.readline().strip() for _ in range(40)]
    # Execute: kill it mid-stream, without any chance to clean up.
    os.kill(proc.pid, signal.SIGKILL)
    acked += [line.strip() for line in proc.stdout if line.strip()]
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # Assert: every acknowledged update is there exactly once, intact; the log is readable.
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = dict(raw.execute("SELECT update_id, COUNT(*) FROM updates GROUP BY update_id").fetchall())
    raw.close()
    assert all(counts.get(uid) == 1 for uid in acked), "an acknowledged update is missing or doubled"
    assert len(counts) <= len(acked) + 1  # at most the one committed but not yet printed
    with UpdateLog(db) as log:
        strategy = FedAvg()
        strategy.begin_round(np.zeros(50_000, np.float32))
        report = log.replay(1, strategy)
        assert not report.rejected
        assert set(acked) <= set(report.fed)
        for rec in log.records(1):
            i = int(rec.update_id[1:])
            rng = np.random.default_rng(i)
            assert np.array_equal(rec.indices, np.sort(rng.choice(50_000, size=2_000, replace=False)))
            assert np.array_equal(rec.values, rng.standard_normal(2_000).astype(np.float32))
            assert rec.weight == float(i + 1)
        # After the crash the same client retransmits: recognised, not stored again.
        rec0 = next(log.records(1))
        assert (
            _append(log, 1, rec0.client_id, rec0.update_id, Sparse(rec0.indices, rec0.values, 50_000))
            is False
        )


def test_indices_are_stored_in_4_bytes_when_they_fit_and_8_byte_rows_still_read(tmp_path: Path) -> None:
    # Prepare: a small model (4-byte indices), a huge one (indices past 2**31), and a row as the log wrote
    # it before (8-byte indices), as a state dir from an earlier version holds it.
    rng = np.random.default_rng(9)
    small = random_update(rng, SIZE, 40)
    huge = Sparse(np.array([0, 2**31 + 5, 2**33 - 1], dtype=np.int64), np.ones(3, dtype=np.float32), 2**33)
    old = random_update(rng, SIZE, 7)
    # Execute
    with UpdateLog(tmp_path / "wal.db") as log:
        _append(log, 1, "small", "u-small", small)
        _append(log, 1, "huge", "u-huge", huge)
        log._db.execute(
            "INSERT INTO updates (update_id, round, client_id, weight, size, indices, vals) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("u-old", 1, "old", 2.0, SIZE, old.indices.astype("<i8").tobytes(), old.values.astype("<f4").tobytes()),
        )
    # Assert: the bytes on disk, and every row read back exactly as int64 indices.
    raw = sqlite3.connect(tmp_path / "wal.db")
    widths = dict(raw.execute("SELECT update_id, length(indices) / (length(vals) / 4) FROM updates").fetchall())
    raw.close()
    assert widths == {"u-small": 4, "u-huge": 8, "u-old": 8}
    with UpdateLog(tmp_path / "wal.db") as log:
        recs = {r.update_id: r for r in log.records(1)}
    for uid, u in (("u-small", small), ("u-huge", huge), ("u-old", old)):
        assert recs[uid].indices.dtype == np.int64, uid
        assert np.array_equal(recs[uid].indices, u.indices), uid
        assert np.array_equal(recs[uid].values, u.values), uid


def test_a_new_log_has_64_kib_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    import sqlite3

    from fmfl.aggregator.durable.wal import PAGE_BYTES

    u = random_update(np.random.default_rng(5), SIZE, 5)
    with UpdateLog(tmp_path / "new.db") as log:
        _append(log, 1, "c", "u1", u)
        assert log._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_BYTES == 65_536
    old = sqlite3.connect(tmp_path / "old.db")  # a state dir from before: SQLite's default 4 KiB pages
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE t (x)")
    old.close()
    with UpdateLog(tmp_path / "old.db") as log:
        _append(log, 1, "c", "u1", u)
        assert log._db.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert log.contains("u1")
