"""The round journal: everything besides updates and model versions that a restart needs.

Kept in its own SQLite file (``journal.sqlite``) next to the write-ahead log of updates:
- ``run``: the run's identity (bundle, federation, strategy, codec) and the next round number;
- ``rounds``: each round's task as sent (selection, deadline), its status and its counters;
- ``accepted``: one row per accepted update (bytes, sample count, client metrics), so a resumed
  round still reports its metrics, and so a device that resends an update accepted in an earlier
  round (its Ack was lost) gets a positive Ack again instead of a "stale round" refusal;
- ``clients``: the registry: a 1.1 device's hello is not retained (a 1.2 device's is), and a broker that
  restarts without persistence forgets retained ones.

Durability: ``synchronous=NORMAL`` in WAL mode survives a killed process (the OS keeps the written
pages) but not a power cut. That is enough here because nothing in it gates an acknowledgement:
the update log (``wal.py``, fsynced) is the record of what was acknowledged. A row written after an
update's log append and lost to a power cut costs that update's metrics in the round's report only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from fmfl.aggregator.core.clients import ClientRecord
from fmfl.aggregator.durable.wal import add_nonce_column
from fmfl.compat import StrEnum
from fmfl.errors import FmflError

# Rounds whose tasks and accepted-update ids stay in the journal: async late updates and resends
# of updates whose Ack was lost are recognised this far back (the coordinator and its workers alike).
JOURNAL_KEEP_ROUNDS = 64

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS rounds (
        round    INTEGER PRIMARY KEY,
        task     BLOB    NOT NULL,
        opened   REAL    NOT NULL,
        status   TEXT    NOT NULL,
        counters TEXT    NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE IF NOT EXISTS accepted (
        update_id    TEXT    PRIMARY KEY,
        round        INTEGER NOT NULL,
        client_id    TEXT    NOT NULL,
        update_round INTEGER NOT NULL,
        bytes        INTEGER NOT NULL,
        num_samples  INTEGER NOT NULL,
        metrics      TEXT    NOT NULL,
        nonce        TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS clients (
        client_id TEXT PRIMARY KEY, record TEXT NOT NULL
    )""",
)


class JournalError(FmflError):
    """The round journal cannot be opened or holds something inconsistent."""


class JournalStatus(StrEnum):
    """Where a journaled round stands (the ``status`` column; the values are stored, keep them)."""

    OPEN = "open"  # the task went out; updates are being accepted (a restart resumes it)
    CLOSED = "closed"  # aggregated (or forwarded to the parent tier) and logged
    FAILED = "failed"  # below its quorum at the deadline


@dataclass(frozen=True)
class JournalRound:
    """A round as journaled: the task bytes sent, when it opened, its status and counters."""

    round: int
    task: bytes
    opened: float
    status: JournalStatus
    counters: dict[str, int]


@dataclass(frozen=True)
class AcceptedRow:
    update_id: str
    round: int
    client_id: str
    update_round: int
    bytes: int
    num_samples: int
    metrics: dict[str, float]
    nonce: str | None = None  # a signed update's nonce (replay check across rounds and restarts)


class RoundJournal:
    """SQLite (WAL mode, synchronous=NORMAL) journal of rounds, accepted-update metadata and clients."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            add_nonce_column(self._db, "accepted")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot open round journal {self.path}: {exc}") from exc

    # --- run ---------------------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO run (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # --- rounds ------------------------------------------------------------------------------------

    def open_round(self, round: int, task: bytes, opened: float) -> None:
        """Record round ``round`` as open with the task bytes sent; the next round number moves on."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO rounds (round, task, opened, status) VALUES (?, ?, ?, 'open')",
                (round, task, opened),
            )
            self._db.execute(
                "INSERT INTO run (key, value) VALUES ('next_round', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(round + 1),),
            )

    def finish_round(self, round: int, status: JournalStatus, counters: dict[str, int]) -> None:
        self._db.execute(
            "UPDATE rounds SET status = ?, counters = ? WHERE round = ?",
            (status, json.dumps(counters), round),
        )

    def save_counters(self, round: int, counters: dict[str, int]) -> None:
        self._db.execute("UPDATE rounds SET counters = ? WHERE round = ?", (json.dumps(counters), round))

    def round(self, round: int) -> JournalRound | None:
        row = self._db.execute(
            "SELECT round, task, opened, status, counters FROM rounds WHERE round = ?", (round,)
        ).fetchone()
        return None if row is None else _round(row)

    def last_round(self) -> JournalRound | None:
        row = self._db.execute(
            "SELECT round, task, opened, status, counters FROM rounds ORDER BY round DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _round(row)

    def next_round(self) -> int:
        value = self.get("next_round")
        return 1 if value is None else int(value)

    # --- accepted updates --------------------------------------------------------------------------

    def record_accepted(self, row: AcceptedRow, counters: dict[str, int]) -> None:
        """Note an accepted (already logged) update and the round's counters, in one transaction."""
        self.record_accepted_many([row], counters)

    def record_accepted_many(self, rows: Sequence[AcceptedRow], counters: dict[str, int]) -> None:
        """Note accepted (already durably logged) updates of one round and its counters, in one transaction:
        the journal side of a group commit."""
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO accepted (update_id, round, client_id, update_round, bytes, "
                "num_samples, metrics, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.update_id, r.round, r.client_id, r.update_round, r.bytes, r.num_samples,
                     json.dumps(r.metrics), r.nonce)
                    for r in rows
                ],
            )  # fmt: skip
            for round_no in sorted({r.round for r in rows}):
                self._db.execute("UPDATE rounds SET counters = ? WHERE round = ?", (json.dumps(counters), round_no))

    def accepted_round_of(self, update_id: str) -> int | None:
        """The round that accepted ``update_id`` (None if it never was, or was pruned)."""
        row = self._db.execute("SELECT round FROM accepted WHERE update_id = ?", (update_id,)).fetchone()
        return None if row is None else int(row[0])

    def update_with_nonce(self, client_id: str, nonce: str) -> str | None:
        """The accepted update id that carried ``(client_id, nonce)`` (None if none, or pruned)."""
        row = self._db.execute(
            "SELECT update_id FROM accepted WHERE client_id = ? AND nonce = ?", (client_id, nonce)
        ).fetchone()
        return None if row is None else str(row[0])

    def accepted(self, round: int) -> list[AcceptedRow]:
        cur = self._db.execute(
            "SELECT update_id, round, client_id, update_round, bytes, num_samples, metrics, nonce FROM accepted "
            "WHERE round = ? ORDER BY rowid",
            (round,),
        )
        return [AcceptedRow(u, r, c, ur, b, n, json.loads(m), nc) for u, r, c, ur, b, n, m, nc in cur]

    def forget_accepted(self, round: int) -> None:
        """Drop a failed round's rows: its updates were never aggregated, a resend must not be acked."""
        self._db.execute("DELETE FROM accepted WHERE round = ?", (round,))

    def prune(self, *, before_round: int) -> None:
        """Forget rounds (and their accepted rows) older than ``before_round``."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM accepted WHERE round < ?", (before_round,))
            self._db.execute("DELETE FROM rounds WHERE round < ?", (before_round,))

    # --- clients -----------------------------------------------------------------------------------

    def save_client(self, record: ClientRecord) -> None:
        data = {
            "capabilities": record.capabilities,
            "bundle_id": record.bundle_id,
            "registered": record.registered,
            "online": record.online,
        }
        self._db.execute(
            "INSERT INTO clients (client_id, record) VALUES (?, ?) "
            "ON CONFLICT (client_id) DO UPDATE SET record = excluded.record",
            (record.client_id, json.dumps(data)),
        )

    def clients(self) -> list[ClientRecord]:
        out = []
        for cid, raw in self._db.execute("SELECT client_id, record FROM clients ORDER BY client_id"):
            data = json.loads(raw)
            out.append(
                ClientRecord(
                    client_id=cid,
                    capabilities=dict(data["capabilities"]),
                    bundle_id=data["bundle_id"],
                    registered=bool(data["registered"]),
                    online=bool(data["online"]),
                )
            )
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RoundJournal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _round(row: tuple[Any, ...]) -> JournalRound:
    rnd, task, opened, status, counters = row
    return JournalRound(int(rnd), bytes(task), float(opened), JournalStatus(status), dict(json.loads(counters)))
