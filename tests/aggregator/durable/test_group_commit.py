"""Group commit: updates that arrive together share one durable commit of the write-ahead log.

The oracle is the gateway without grouping: the same messages handled one by one must get the same
verdicts and give the same global version, bit for bit, with one commit per accepted update instead of
one per batch. The crash tests kill a real process between the appends and the fsync, and between the
fsync and the journal (``fmfl.failpoints``), and check what the files hold and that a resumed gateway
counts every update once.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import LIMITS, SIZE, T0, Harness, frames, make_update
from support.sparse_updates import random_update

from fmfl.aggregation import RejectedUpdate
from fmfl.aggregator import UpdateLog
from fmfl.failpoints import ENV
from fmfl.protocol import Ack, Reassembler

TESTS = Path(__file__).resolve().parents[2]  # the child process imports tests/support
IDS = ["a", "b", "c", "d", "e", "f"]


def _rows(db: Path, table: str = "updates") -> list[str]:
    """Update ids as another process would read them: committed rows only."""
    raw = sqlite3.connect(db)
    try:
        return [row[0] for row in raw.execute(f"SELECT update_id FROM {table} ORDER BY rowid")]
    finally:
        raw.close()


def test_a_group_is_invisible_to_other_readers_until_its_one_commit(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    db = tmp_path / "wal.db"
    with UpdateLog(db) as log:
        for i in range(5):
            u = random_update(rng, 100, 10)
            stored = log.append(round=1, client_id=f"c{i}", update_id=f"u{i}", weight=1.0, indices=u.indices,
                                values=u.values, size=100, commit=False)  # fmt: skip
            assert stored
        assert log.pending == 5
        assert log.commits == 0
        assert _rows(db) == []  # not durable: nothing another reader (or a restart) would see
        assert log.count(1) == 5
        assert log.contains("u4")
        assert log.commit() == 5
        assert (log.pending, log.commits) == (0, 1)
        assert _rows(db) == [f"u{i}" for i in range(5)]
        assert log.commit() == 0
        assert log.commits == 1
        u = random_update(rng, 100, 10)
        log.append(round=1, client_id="c9", update_id="u9", weight=1.0, indices=u.indices, values=u.values, size=100)
        assert log.commits == 2
        assert _rows(db)[-1] == "u9"


def test_a_duplicate_client_inside_a_group_is_refused_and_the_rest_still_commits(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ups = [random_update(rng, 100, 10) for _ in range(3)]
    with UpdateLog(tmp_path / "wal.db") as log:
        def append(cid: str, uid: str, i: int) -> bool:
            return log.append(round=1, client_id=cid, update_id=uid, weight=1.0, indices=ups[i].indices,
                              values=ups[i].values, size=100, commit=False)  # fmt: skip

        assert append("c1", "u1", 0)
        with pytest.raises(RejectedUpdate, match="already has an update logged in round 1"):
            append("c1", "u1-other", 1)
        assert append("c2", "u2", 2)
        assert append("c2", "u2", 2) is False  # a redelivery inside the same group
        assert log.commit() == 2
    assert _rows(tmp_path / "wal.db") == ["u1", "u2"]


def _batch(h: Harness, updates: dict[str, list[bytes]], extra: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    messages = [(h.topics.update(cid), chunk) for cid, chunks in updates.items() for chunk in chunks]
    return messages + extra


def _verdicts(h: Harness, out: list) -> dict[str, list[tuple[bool, str]]]:  # type: ignore[type-arg]
    acks = [Ack.from_bytes(Reassembler(2**20).add(o.payload), LIMITS) for o in out if "/ack/" in o.topic]
    by: dict[str, list[tuple[bool, str]]] = {}
    for a in acks:
        by.setdefault(a.client_id, []).append((a.accepted, a.reason))
    return by


def test_a_batch_commits_once_and_answers_exactly_like_one_by_one(tmp_path: Path) -> None:
    # Prepare: two gateways in the same state; six devices invited (over-selection), quorum K = 4.
    cfg = {"rounds": 1, "clients_per_round": 4, "over_select": 1.5, "min_clients": 3}
    one, batch = Harness(tmp_path / "one", **cfg), Harness(tmp_path / "batch", **cfg)
    for h in (one, batch):
        h.register(*IDS)
        h.tick()
    task = one.task()
    assert batch.task() == task
    assert sorted(task.selected) == IDS
    chunks = {}
    for i, cid in enumerate(IDS):
        rng = np.random.default_rng([7, i])
        update, _ = make_update(task, cid, (rng.standard_normal(SIZE) * 0.01).astype(np.float32),
                                        num_samples=i + 1)  # fmt: skip
        chunks[cid] = frames(update)
    # A redelivery of "a" and a malformed message from "b" arrive in the same batch.
    extra = [(one.topics.update("a"), chunks["a"][0]), (one.topics.update("b"), b"\x00garbage")]
    messages = _batch(one, chunks, extra)
    commits_before = (one.engine.wal.commits, batch.engine.wal.commits)
    # Execute
    out_one = [o for topic, payload in messages for o in one.engine.handle(topic, payload, T0)]
    out_batch = batch.engine.handle_batch(messages, T0)
    # Assert: the same verdicts, the same version, bit for bit; one commit for the batch's four updates.
    assert _verdicts(batch, out_batch) == _verdicts(one, out_one)
    assert _verdicts(batch, out_batch)["e"] == [(False, "no_open_round")]  # the quorum closed the last round
    assert one.engine.wal.commits - commits_before[0] == 4
    assert batch.engine.wal.commits - commits_before[1] == 1
    assert one.engine.version == batch.engine.version == 1
    w_one, w_batch = one.engine.store.load_weights(1)[1], batch.engine.store.load_weights(1)[1]
    assert np.array_equal(w_one, w_batch)
    assert not np.array_equal(w_batch, one.initial)
    assert [r.client_id for r in batch.engine.journal.accepted(1)] == IDS[:4]
    line = json.loads((tmp_path / "batch" / "state" / "metrics.jsonl").read_text())
    assert line["participants"] == 4
    assert line["metrics"] == json.loads(
        (tmp_path / "one" / "state" / "metrics.jsonl").read_text())["metrics"]


CHILD = """
import pickle, sys
sys.path.insert(0, {here!r})
import numpy as np
from support.gateway_harness import SIZE, T0, Harness, frames, make_update

tmp = __import__("pathlib").Path(sys.argv[1])
h = Harness(tmp, rounds=1, clients_per_round=4, min_clients=3)
h.register("a", "b", "c", "d")
h.tick()
task = h.task()
messages = []
for i, cid in enumerate("abcd"):
    update, _ = make_update(task, cid, (np.random.default_rng(i).standard_normal(SIZE) * 0.01).astype(np.float32))
    messages += [(h.topics.update(cid), chunk) for chunk in frames(update)]
(tmp / "messages.pkl").write_bytes(pickle.dumps(messages))
print("BATCH", flush=True)
out = h.engine.handle_batch(messages[:3], T0)  # a, b, c arrive together
print("RETURNED", len(out), flush=True)
"""


def _crash_in_a_group(tmp_path: Path, failpoint: str) -> tuple[list[tuple[str, bytes]], str]:
    """A real gateway engine in a child process, SIGKILLed at ``failpoint`` inside a batch of a, b, c."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD.format(here=str(TESTS))))
    env = {**os.environ, ENV: failpoint}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr)
    messages = pickle.loads((tmp_path / "messages.pkl").read_bytes())
    return messages, proc.stdout


@pytest.mark.integration  # a real process SIGKILLed at a failpoint
def test_killed_between_the_appends_and_the_fsync_nothing_is_durable_or_acked(tmp_path: Path) -> None:
    messages, stdout = _crash_in_a_group(tmp_path, "aggregator.before_wal_commit")
    # The batch was appended and folded in, and the process died before its one fsync: no Ack was handed
    # out, no row is durable, none journaled.
    assert stdout.split() == ["BATCH"]
    state = tmp_path / "state"
    assert _rows(state / "updates.sqlite") == []
    assert _rows(state / "journal.sqlite", "accepted") == []
    # Resumed: the broker redelivers the three (never PUBACKed) and the fourth arrives: counted once each.
    h = Harness(tmp_path, rounds=1, clients_per_round=4, min_clients=3, resume=True)
    assert h.engine.strategy.clients == set()
    out = h.engine.handle_batch(messages, T0)
    assert _verdicts(h, out) == {c: [(True, "")] for c in "abcd"}
    assert h.engine.version == 1
    assert json.loads((state / "metrics.jsonl").read_text())["participants"] == 4


@pytest.mark.integration  # a real process SIGKILLed at a failpoint
def test_killed_after_the_fsync_the_group_is_replayed_and_resends_count_once(tmp_path: Path) -> None:
    messages, stdout = _crash_in_a_group(tmp_path, "aggregator.after_wal_commit")
    assert stdout.split() == ["BATCH"]  # durable, but the process died before any Ack
    state = tmp_path / "state"
    assert len(_rows(state / "updates.sqlite")) == 3  # one commit held all three
    assert _rows(state / "journal.sqlite", "accepted") == []  # the journal follows the commit
    h = Harness(tmp_path, rounds=1, clients_per_round=4, min_clients=3, resume=True)
    assert sorted(h.engine.strategy.clients) == ["a", "b", "c"]  # replayed from the log
    assert len(_rows(state / "journal.sqlite", "accepted")) == 3  # and journaled on the way
    out = h.engine.handle_batch(messages, T0)  # the three resent (duplicates), and d
    assert _verdicts(h, out) == {c: [(True, "")] for c in "abcd"}
    assert h.engine.version == 1
    assert json.loads((state / "metrics.jsonl").read_text())["participants"] == 4
