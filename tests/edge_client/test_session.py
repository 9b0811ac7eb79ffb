"""The device side of protocol 1.2 (``DeviceSession``) without a broker: what it publishes on connect, which
tasks it trains and on which model, runs, dense and delta models, Acks (docs/protocol.md section 8), resends.

Messages go in as the wire bytes a gateway publishes (framed, chunked); what comes out is decoded again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fmfl.edge_client.held_model import HeldModel
from fmfl.edge_client.session import DeviceSession, SessionConfig
from fmfl.protocol import (
    Ack,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    GlobalModel,
    Limits,
    Reassembler,
    RoundTask,
    UpdateEncoder,
    decode_update,
    new_update_id,
    split_message,
)
from fmfl.protocol.downlink import apply_sent, weights_sha256
from fmfl.protocol.outgoing import Outgoing

SIZE = 64
LIMITS = Limits.for_vector_size(SIZE)
CID = "dev-1"
RUN = 1767225600000
T0 = 1_000_000.0
RESEND = 30.0


@dataclass(frozen=True)
class Entry:
    round: int
    update_id: str
    message: bytes


@dataclass
class MemoryOutbox:
    entries: dict[str, Entry] = field(default_factory=dict)
    last_round: int = -1

    def pending(self) -> list[Entry]:
        return list(self.entries.values())

    def acknowledge(self, update_id: str) -> bool:
        return self.entries.pop(update_id, None) is not None

    def commit(self, update: ClientUpdate) -> bytes:
        message = update.to_bytes()
        self.entries[update.update_id] = Entry(update.round, update.update_id, message)
        self.last_round = update.round
        return message


def make_session(
    tmp_path: Path, *, deltas: bool = True, on_ack: Callable[[Ack], None] | None = None
) -> tuple[DeviceSession, HeldModel, MemoryOutbox]:
    held, outbox = HeldModel(SIZE, tmp_path), MemoryOutbox()
    cfg = SessionConfig(federation="f", client_id=CID, bundle_id="b", max_packet_bytes=4096, resend_after=RESEND,
                        capabilities={"cores": 2}, downlink_deltas=deltas)  # fmt: skip
    return DeviceSession(cfg, held, outbox, LIMITS, on_ack=on_ack), held, outbox


def feed(session: DeviceSession, topic: str, message: bytes, now: float = T0, run: int | None = None) -> list[Outgoing]:
    out: list[Outgoing] = []
    for chunk in split_message(message, 1024, run=run):  # small packets: several chunks for a model
        out += session.handle(topic, chunk, now)
    return out


def task(round_: int, version: int, *, run: int | None = RUN, selected: tuple[str, ...] = (CID,),
         deadline: float = T0 + 60, bundle: str = "b") -> bytes:  # fmt: skip
    return RoundTask(federation="f", bundle_id=bundle, round=round_, model_version=version, selected=selected,
                     batch_size=8, lr=0.1, codec="dense", deadline=deadline, seed=1, local_steps=1,
                     run=run).to_bytes()  # fmt: skip


def dense(version: int, weights: np.ndarray, run: int | None = RUN, deltas: bool = True) -> bytes:
    payload = UpdateEncoder("dense", SIZE).encode(weights)
    return GlobalModel("b", version, None, payload, run=run, weights_sha256=weights_sha256(weights),
                       deltas=deltas or None).to_bytes()  # fmt: skip


def delta(version: int, base: np.ndarray, step: np.ndarray, *, digest: str | None = None) -> tuple[bytes, np.ndarray]:
    payload = UpdateEncoder("topk:0.5+int8", SIZE).encode(step)
    result = apply_sent(base, decode_update(payload, SIZE, LIMITS))
    model = GlobalModel("b", version, version - 1, payload, run=RUN, weights_sha256=digest or weights_sha256(result))
    return model.to_bytes(), result


def decoded(out: list[Outgoing]) -> list[tuple[str, object, bool]]:
    """Each publish as (topic kind, message, retained), reassembled."""
    reassembler, messages = Reassembler(2**24, 64), []
    for o in out:
        data = reassembler.add(o.payload, source=o.topic) if o.payload[:4] != b"FMFL" else o.payload
        if data is None:
            continue
        kind = o.topic.split("/")[2]
        cls = {"status": ClientStatus, "hello": ClientHello, "update": ClientUpdate}[kind]
        messages.append((kind, cls.from_bytes(data, LIMITS), o.retain))
    return messages


def an_update(round_: int, version: int) -> ClientUpdate:
    return ClientUpdate(federation="f", bundle_id="b", round=round_, model_version=version, client_id=CID,
                        num_samples=5, update_id=new_update_id(), run=RUN,
                        payload=UpdateEncoder("dense", SIZE).encode(np.ones(SIZE, np.float32)))  # fmt: skip


W1 = np.linspace(-1, 1, SIZE, dtype=np.float32)


# --- connect ------------------------------------------------------------------------------------------------


def test_connect_publishes_status_then_a_retained_hello_then_the_outbox(tmp_path: Path) -> None:
    session, _, outbox = make_session(tmp_path)
    update = an_update(3, 2)
    outbox.commit(update)
    topic, will = session.will()
    assert topic == "fmfl/f/status/dev-1"
    assert ClientStatus.from_bytes(Reassembler(2**20).add(will), LIMITS).online is False
    assert session.goodbye() == Outgoing(topic, will, retain=True)
    sent = decoded(session.connected(T0))
    assert [(kind, retain) for kind, _, retain in sent] == [("status", True), ("hello", True), ("update", False)]
    status, hello, resent = (m for _, m, _ in sent)
    assert isinstance(status, ClientStatus)
    assert status.online
    assert isinstance(hello, ClientHello)
    assert (hello.bundle_id, hello.model_version) == ("b", None)
    assert hello.capabilities == {"cores": 2}
    assert isinstance(resent, ClientUpdate)
    assert resent.update_id == update.update_id


def test_subscriptions_follow_the_downlink_mode(tmp_path: Path) -> None:
    session, _, _ = make_session(tmp_path)
    assert session.subscriptions() == ["fmfl/f/delta/+", "fmfl/f/task", "fmfl/f/ack/dev-1"]
    assert session.wants_dense  # nothing held: a whole model first
    fixed, _, _ = make_session(tmp_path / "fixed", deltas=False)
    assert fixed.subscriptions() == ["fmfl/f/task", "fmfl/f/global/+", "fmfl/f/ack/dev-1"]
    feed(fixed, "fmfl/f/global/0", dense(1, W1), run=RUN)
    assert fixed.wants_dense  # held for good: its owner cannot change subscriptions


# --- tasks ----------------------------------------------------------------------------------------------------


def test_a_selected_task_waits_for_its_model_then_trains_once(tmp_path: Path) -> None:
    session, held, outbox = make_session(tmp_path)
    feed(session, "fmfl/f/task", task(1, 1))
    assert session.ready(T0) is None  # the task's model has not arrived
    feed(session, "fmfl/f/global/0", dense(1, W1), run=RUN)
    ready = session.ready(T0)
    assert ready is not None
    got, weights = ready
    assert (got.round, got.model_version) == (1, 1)
    np.testing.assert_array_equal(weights, W1)
    assert session.take(T0) is not None
    assert session.take(T0) is None
    feed(session, "fmfl/f/task", task(1, 1))  # the same task again (a redelivery) after the round committed
    outbox.commit(an_update(1, 1))
    assert session.ready(T0) is None
    assert held.global_model()[0] == 1


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (task(1, 1, selected=("other",)), "not selected"),
        (task(1, 1, bundle="other-bundle"), "another bundle"),
        (task(1, 1, deadline=T0 - 1), "deadline passed"),
        (task(0, 1), "round already answered"),
    ],
)
def test_tasks_the_device_must_not_train(tmp_path: Path, message: bytes, why: str) -> None:
    session, _, outbox = make_session(tmp_path)
    outbox.last_round = 0
    feed(session, "fmfl/f/global/0", dense(1, W1), run=RUN)
    feed(session, "fmfl/f/task", message)
    assert session.ready(T0) is None, why


def test_a_task_whose_deadline_passes_while_waiting_is_dropped(tmp_path: Path) -> None:
    session, _, _ = make_session(tmp_path)
    feed(session, "fmfl/f/task", task(1, 1, deadline=T0 + 5))
    feed(session, "fmfl/f/global/0", dense(1, W1), run=RUN)
    assert session.ready(T0 + 6) is None
    assert session.ready(T0) is None  # dropped, not just late


# --- runs -----------------------------------------------------------------------------------------------------


def test_a_newer_run_replaces_the_old_one_and_old_leftovers_are_ignored(tmp_path: Path) -> None:
    session, held, _ = make_session(tmp_path)
    feed(session, "fmfl/f/task", task(4, 3, run=RUN))  # waits for v3 of RUN
    feed(session, "fmfl/f/task", task(1, 0, run=RUN + 1))  # a new run: the old task will never be aggregated
    assert session.followed_run == RUN + 1
    feed(session, "fmfl/f/global/0", dense(3, W1, run=RUN), run=RUN)  # the old run's model: dropped unread
    assert held.global_model()[0] == -1
    feed(session, "fmfl/f/task", task(5, 3, run=RUN))  # and its task
    assert session.ready(T0) is None
    feed(session, "fmfl/f/global/0", dense(0, W1 * 2, run=RUN + 1), run=RUN + 1)
    ready = session.ready(T0)
    assert ready is not None
    assert ready[0].run == RUN + 1
    np.testing.assert_array_equal(ready[1], W1 * 2)


def test_the_same_version_number_of_another_run_does_not_serve_a_task(tmp_path: Path) -> None:
    """A gateway whose broker lost its retained state restarts a run at version 0 (2a): until the new run's
    own model arrives, the old run's weights with the same number must not be trained on (they used to be)."""
    session, held, _ = make_session(tmp_path)
    feed(session, "fmfl/f/global/0", dense(2, W1, run=RUN), run=RUN)
    feed(session, "fmfl/f/task", task(3, 2, run=RUN + 1))
    assert held.global_model()[0] == 2
    assert session.ready(T0) is None
    assert session.wants_dense  # it asks for the new run's model
    feed(session, "fmfl/f/global/0", dense(2, W1 * 3, run=RUN + 1), run=RUN + 1)
    ready = session.ready(T0)
    assert ready is not None
    np.testing.assert_array_equal(ready[1], W1 * 3)


# --- global models --------------------------------------------------------------------------------------------


def test_deltas_apply_on_the_held_version_and_a_bad_one_changes_nothing(tmp_path: Path) -> None:
    session, held, _ = make_session(tmp_path)
    feed(session, "fmfl/f/global/0", dense(1, W1), run=RUN)
    assert not session.wants_dense  # current, and the run sends deltas
    step = np.random.default_rng(0).normal(scale=0.1, size=SIZE).astype(np.float32)
    message, expected = delta(2, W1, step)
    feed(session, "fmfl/f/delta/0", message, run=RUN)
    version, weights = held.global_model()
    assert version == 2
    np.testing.assert_array_equal(weights, expected)
    bad, _ = delta(3, expected, step, digest="0" * 64)  # a result that does not hash to weights_sha256
    feed(session, "fmfl/f/delta/0", bad, run=RUN)
    assert held.global_model()[0] == 2
    np.testing.assert_array_equal(held.global_model()[1], expected)
    assert session.wants_dense  # refused: the dense model instead
    assert session.feed.counter.models == {"dense": 1, "delta": 1, "refused_delta": 1}


def test_a_delta_from_a_version_not_held_asks_for_the_dense_model(tmp_path: Path) -> None:
    session, held, _ = make_session(tmp_path)
    feed(session, "fmfl/f/global/0", dense(1, W1), run=RUN)
    message, _ = delta(3, W1, np.ones(SIZE, np.float32))  # from v2, which this device never had
    feed(session, "fmfl/f/delta/0", message, run=RUN)
    assert held.global_model()[0] == 1
    assert session.wants_dense


def test_malformed_messages_are_ignored_and_change_nothing(tmp_path: Path) -> None:
    session, held, _ = make_session(tmp_path)
    feed(session, "fmfl/f/global/0", dense(1, W1), run=RUN)
    chunk = bytearray(split_message(dense(2, W1 * 5), 1024)[0])
    chunk[-1] ^= 0xFF
    assert session.handle("fmfl/f/global/0", bytes(chunk), T0) == []
    assert session.handle("fmfl/f/task", b"not a frame", T0) == []
    assert session.handle("fmfl/f/task", b"", T0) == []  # a cleared retained task
    wrong_size = UpdateEncoder("dense", SIZE + 1).encode(np.ones(SIZE + 1, np.float32))
    feed(session, "fmfl/f/global/0", GlobalModel("b", 2, None, wrong_size, run=RUN).to_bytes(), run=RUN)
    other_bundle = GlobalModel("b2", 3, None, UpdateEncoder("dense", SIZE).encode(W1 * 5), run=RUN)
    feed(session, "fmfl/f/global/0", other_bundle.to_bytes(), run=RUN)
    version, weights = held.global_model()
    assert version == 1
    np.testing.assert_array_equal(weights, W1)


# --- Acks and resends -----------------------------------------------------------------------------------------


def ack(update: ClientUpdate, accepted: bool = True, reason: str = "", client: str = CID) -> bytes:
    return Ack(client, update.round, update.update_id, accepted, reason=reason, run=RUN).to_bytes()


def test_unacknowledged_updates_go_out_again_after_the_interval_until_acked(tmp_path: Path) -> None:
    session, _, outbox = make_session(tmp_path)
    update = an_update(1, 0)
    first = session.upload(outbox.commit(update), T0)
    assert session.tick(T0 + RESEND - 0.01) == []
    again = session.tick(T0 + RESEND)
    assert [o.payload for o in again] == [o.payload for o in first]
    assert session.tick(T0 + RESEND + 1) == []  # the interval counts from the last send
    assert feed(session, "fmfl/f/ack/dev-1", ack(update, client="dev-2")) == []  # another device's
    assert outbox.pending()
    assert feed(session, "fmfl/f/ack/dev-1", ack(update)) == []
    assert outbox.pending() == []
    assert session.tick(T0 + 10 * RESEND) == []


def test_a_negative_ack_is_final_and_unknown_client_sends_the_hello_again(tmp_path: Path) -> None:
    seen: list[Ack] = []
    session, _, outbox = make_session(tmp_path, on_ack=seen.append)
    stale, unknown = an_update(1, 0), an_update(2, 0)
    session.upload(outbox.commit(stale), T0)
    session.upload(outbox.commit(unknown), T0)
    assert feed(session, "fmfl/f/ack/dev-1", ack(stale, False, "stale_round")) == []
    answer = decoded(feed(session, "fmfl/f/ack/dev-1", ack(unknown, False, "unknown_client")))
    assert [(kind, retain) for kind, _, retain in answer] == [("hello", True)]
    assert outbox.pending() == []
    assert session.tick(T0 + 10 * RESEND) == []
    assert feed(session, "fmfl/f/ack/dev-1", ack(unknown, False, "unknown_client")) == []  # settled already
    assert [(a.update_id, a.reason) for a in seen] == [  # every Ack is observed, the second copy too
        (stale.update_id, "stale_round"), (unknown.update_id, "unknown_client"), (unknown.update_id, "unknown_client")
    ]  # fmt: skip
