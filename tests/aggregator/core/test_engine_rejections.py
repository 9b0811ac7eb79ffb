"""Every way the engine refuses an update: the reason counted, the Ack (when an update id is known, even
if the rest of the metadata is broken) with a detail saying what was expected and what came, and nothing
changed: no client held, nothing logged, and a good update is still accepted after."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import SIZE, T0, TOPICS, Harness, frames, make_update

from fmfl.protocol import ClientHello, ClientUpdate, RoundTask, UpdateEncoder, split_message
from fmfl.protocol.framing import MessageType, frame


def good(task: RoundTask, cid: str = "a", **kw: object) -> ClientUpdate:
    delta = np.linspace(-0.1, 0.1, SIZE).astype(np.float32)
    return make_update(task, cid, delta, **kw)[0]  # type: ignore[arg-type]


def nan_payload() -> bytes:
    """A dense fp32 payload with one NaN value: the encoder refuses NaN, so it is patched in."""
    payload = bytearray(UpdateEncoder("dense", SIZE).encode(np.zeros(SIZE, dtype=np.float32)))
    payload[-4:] = struct.pack("<f", float("nan"))
    return bytes(payload)


def with_metadata(update: ClientUpdate, **changes: object) -> list[bytes]:
    """The update's chunks with metadata keys changed (None: removed), bypassing the dataclass checks."""
    meta = {**update._metadata(), **changes}
    return split_message(frame(MessageType.UPDATE, {k: v for k, v in meta.items() if v is not None}, update.payload))


def corrupt_crc(chunk: bytes) -> bytes:
    return chunk[:-4] + struct.pack("<I", zlib.crc32(chunk[:-4]) ^ 1)


@dataclass(frozen=True)
class Case:
    """A bad input: what to send on whose update topic, the reason, and whether an Ack answers."""

    name: str
    build: Callable[[RoundTask], tuple[str, list[bytes]]]
    reason: str
    acked: bool = True
    detail: str = ""  # a part of the Ack's detail


def _chunks(update: ClientUpdate) -> list[bytes]:
    return frames(update)


CASES = [
    Case("not a chunk", lambda t: ("a", [b"hello world, not fmfl " * 8]), "bad_magic", acked=False),
    Case("short garbage", lambda t: ("a", [b"\x00\x01"]), "truncated", acked=False),
    Case("bad chunk CRC", lambda t: ("a", [corrupt_crc(frames(good(t))[0])]), "checksum", acked=False),
    Case(
        "chunk holding no message",
        lambda t: ("a", split_message(b"NOPE" + bytes(40))),
        "bad_magic",
        acked=False,
    ),
    Case(
        "oversized message",
        lambda t: ("a", frames(good(t, payload=b"\x01" * (20 * SIZE + 300_000)))),
        "too_large",
        acked=False,
    ),
    Case("a hello, not an update", lambda t: ("a", frames(ClientHello("a"))), "wrong_type", acked=False),
    Case("someone else's id", lambda t: ("a", _chunks(good(t, "b"))), "client_mismatch",
         detail="'b' on the topic of 'a'"),
    Case("other federation", lambda t: ("a", _chunks(good(t, federation="other"))), "wrong_federation",
         detail="federation 'other', expected 'default'"),
    Case("other bundle", lambda t: ("a", _chunks(good(t, bundle_id="not-our-bundle"))), "wrong_bundle",
         detail="bundle 'not-our-bundle', expected"),
    Case("another run", lambda t: ("a", _chunks(good(t, run=(t.run or 0) + 1))), "wrong_run",
         detail="this gateway runs"),
    Case("future round", lambda t: ("a", _chunks(good(t, round=t.round + 1))), "wrong_round",
         detail="round 2, the open round is 1"),
    Case("past round", lambda t: ("a", _chunks(good(t, round=t.round - 1))), "stale_round",
         detail="round 0 is over; the open round is 1"),
    Case("other version", lambda t: ("a", _chunks(good(t, model_version=7))), "wrong_version",
         detail="model_version 7, round 1 trains version 0"),
    Case("registered, not selected", lambda t: ("z", _chunks(good(t, "z"))), "not_selected",
         detail="round 1 did not select 'z'"),
    Case("never seen", lambda t: ("ghost", _chunks(good(t, "ghost"))), "unknown_client", detail="never said hello"),
    Case("NaN in the payload", lambda t: ("a", _chunks(good(t, payload=nan_payload()))), "non_finite",
         detail="payload:"),
    Case("truncated payload", lambda t: ("a", _chunks(good(t, payload=good(t).payload[:-3]))), "truncated",
         detail="payload:"),
    Case(
        "payload for another size",
        lambda t: ("a", _chunks(good(t, payload=UpdateEncoder("dense", 7).encode(np.ones(7, np.float32))))),
        "size_mismatch", detail="payload:",
    ),
    Case("zero samples", lambda t: ("a", _chunks(good(t, num_samples=0))), "weight", detail="weight must be positive"),
    Case("norm above --max-norm", lambda t: ("a", _chunks(good(t, payload=big_payload()))), "norm",
         detail="exceeds the bound 1"),
    # Broken metadata that still names an update id: Acked, or the device would resend it forever.
    Case("fractional num_samples", lambda t: ("a", with_metadata(good(t), num_samples=1.5)), "bad_metadata",
         detail="'num_samples': expected an integer, got float"),
    Case("a missing key", lambda t: ("a", with_metadata(good(t), model_version=None)), "bad_metadata",
         detail="'model_version': missing"),
    Case("no update id", lambda t: ("a", with_metadata(good(t), update_id=None)), "bad_metadata", acked=False),
    Case("an invalid update id", lambda t: ("a", with_metadata(good(t), update_id="a/b")), "invalid_id", acked=False),
]  # fmt: skip


def big_payload() -> bytes:
    return UpdateEncoder("dense", SIZE).encode(np.full(SIZE, 10.0, dtype=np.float32))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_update_is_refused_counted_acked_and_changes_nothing(tmp_path: Path, case: Case) -> None:
    h, task = _setup_selected(tmp_path)
    sender, chunks = case.build(task)
    acks = h.send(sender, chunks)
    assert h.engine.open_round is not None
    assert h.engine.open_round.rejected_by_reason() == {case.reason: 1}
    if case.acked:
        assert [(a.accepted, a.reason, a.client_id, a.run) for a in acks] == [(False, case.reason, sender, task.run)]
        assert case.detail in acks[0].detail, acks[0].detail
    else:
        assert acks == []
    assert h.engine.strategy.clients == frozenset()
    assert h.engine.wal.count(task.round) == 0
    # ... and the gateway keeps serving: good updates still close the round.
    for cid in ("a", "b"):
        assert [a.accepted for a in h.send(cid, frames(good(task, cid)))] == [True]
    assert h.engine.version == 1


def _limits() -> object:
    from fmfl.aggregation import UpdateLimits

    return UpdateLimits(max_norm=1.0)


def _setup_selected(tmp_path: Path) -> tuple[Harness, RoundTask]:
    """Clients a and b selected (K = 2, no over-selection), z registered but not selected."""
    h = Harness(
        tmp_path, rounds=1, clients_per_round=2, min_clients=2, strategy_options={"limits": _limits()}
    )
    h.register("a", "b")
    h.tick()
    h.register("z")
    task = h.task()
    assert set(task.selected) == {"a", "b"}
    return h, task


def test_a_second_update_from_the_same_client_is_a_duplicate_client(tmp_path: Path) -> None:
    h, task = _setup_selected(tmp_path)
    first = good(task, "a")
    assert [a.accepted for a in h.send("a", frames(first))] == [True]
    acks = h.send("a", frames(good(task, "a")))  # another update id, same client, same round
    assert [(a.accepted, a.reason) for a in acks] == [(False, "duplicate-client")]
    assert h.engine.wal.count(task.round) == 1
    assert h.engine.strategy.clients == {"a"}


def test_a_resend_is_acked_again_and_counted_once(tmp_path: Path) -> None:
    h = Harness(
        tmp_path, rounds=2, clients_per_round=2, min_clients=2, strategy_options={"limits": _limits()}
    )
    h.register("a", "b")
    h.tick()
    task = h.task()
    update = good(task, "a")
    for _ in range(3):  # QoS 1 redelivery or a device whose Ack was lost
        assert [(a.accepted, a.update_id) for a in h.send("a", frames(update))] == [(True, update.update_id)]
    assert h.engine.wal.count(task.round) == 1
    assert h.engine.open_round.rejected_by_reason() == {}
    h.send("b", frames(good(task, "b")))
    assert h.engine.version == 1
    # After the round closed (WAL pruned), the journal still recognises it: accepted, not "stale".
    assert [(a.accepted, a.round) for a in h.send("a", frames(update))] == [(True, 1)]
    assert h.engine.strategy.clients == frozenset()  # the new round holds nothing from it


def test_capacity_of_a_robust_rule_is_a_rejection(tmp_path: Path) -> None:
    h = Harness(
        tmp_path, rounds=1, clients_per_round=2, min_clients=1, strategy="median",
        strategy_options={"max_buffered_clients": 1}, round_timeout=10.0,
    )  # fmt: skip
    h.register("a", "b")
    h.tick()
    task = h.task()
    assert [a.accepted for a in h.send("a", frames(good(task, "a")))] == [True]
    assert [(a.accepted, a.reason) for a in h.send("b", frames(good(task, "b")))] == [(False, "capacity")]
    h.tick(T0 + 11)
    assert h.engine.version == 1


def test_async_refuses_updates_older_than_max_staleness(tmp_path: Path) -> None:
    h = Harness(
        tmp_path, rounds=3, clients_per_round=2, min_clients=2, async_mode=True, max_staleness=0,
        over_select=1.5,
    )  # fmt: skip
    h.register("a", "b", "c")
    h.tick()
    task1 = h.task()
    for cid in task1.selected[:2]:
        h.send(cid, frames(good(task1, cid)))
    late = task1.selected[2]
    assert [(a.accepted, a.reason) for a in h.send(late, frames(good(task1, late)))] == [(False, "too_stale")]


def test_malformed_hello_and_status_are_dropped_and_counted(tmp_path: Path) -> None:
    h, _ = _setup_selected(tmp_path)
    h.engine.handle(TOPICS.hello("q"), b"garbage", T0)
    h.engine.handle(TOPICS.hello("q"), frames(ClientHello("other"))[0], T0)
    h.engine.handle(TOPICS.status("q"), frames(ClientHello("q"))[0], T0)
    h.engine.handle(TOPICS.root + "/update/-bad", b"x", T0)
    h.engine.handle(TOPICS.status("q"), b"", T0)  # a cleared retained status: ignored
    assert h.engine.bad_messages == {"truncated": 1, "client_mismatch": 1, "wrong_type": 1, "topic": 1}
    assert h.engine.registry.get("q") is None
    assert h.engine.registry.get("other") is None
