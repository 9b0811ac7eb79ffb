"""Messages: round trips through bytes, framing checks, and every metadata rejection."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest

from fmfl.protocol import (
    DEFAULT_CODEC,
    Ack,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    GlobalModel,
    Limits,
    ProtocolError,
    RoundTask,
    UpdateEncoder,
    decode_message,
    new_update_id,
)
from fmfl.protocol.framing import MessageType, frame

LIMITS = Limits.for_vector_size(1000)


def _payload() -> bytes:
    delta = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    return UpdateEncoder(DEFAULT_CODEC, 1000).encode(delta)


def _task(**changes: Any) -> RoundTask:
    fields: dict[str, Any] = {
        "federation": "fed-1",
        "bundle_id": "minilm-head@3f2a",
        "round": 4,
        "model_version": 3,
        "selected": ("dev-1", "dev-2"),
        "batch_size": 16,
        "lr": 0.01,
        "codec": "topk:0.01+int8+ef",
        "deadline": 1_790_000_000.5,
        "seed": 42,
        "local_steps": 20,
    }
    fields.update(changes)
    return RoundTask(**fields)


def _update(**changes: Any) -> ClientUpdate:
    fields: dict[str, Any] = {
        "federation": "fed-1",
        "bundle_id": "minilm-head@3f2a",
        "round": 4,
        "model_version": 3,
        "client_id": "dev-1",
        "num_samples": 120,
        "update_id": "0f" * 16,
        "payload": _payload(),
        "metrics": {"loss": 0.25, "accuracy": 0.9},
    }
    fields.update(changes)
    return ClientUpdate(**fields)


MESSAGES = [
    ClientHello(
        "dev-1",
        {
            "cores": 4,
            "memory_bytes": 2**31,
            "ort_version": "1.19.2",
            "execution_providers": ["CPU"],
            "gpu": False,
        },
        bundle_id="minilm-head@3f2a",
        model_version=3,
    ),
    ClientHello("dev-2"),
    ClientStatus("dev-1", online=True),
    ClientStatus("dev-1", online=False),
    _task(),
    _task(local_steps=None, local_epochs=2, selected=()),
    GlobalModel("minilm-head@3f2a", model_version=4, base_version=3, payload=_payload()),
    GlobalModel("minilm-head@3f2a", model_version=0, base_version=None, payload=b""),
    _update(),
    Ack("dev-1", round=4, update_id="0f" * 16, accepted=True),
    Ack("dev-1", round=4, update_id="0f" * 16, accepted=False, reason="stale_round", detail="round 3 is over"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_round_trip(message: Any) -> None:
    data = message.to_bytes()
    assert type(message).from_bytes(data, LIMITS) == message
    assert decode_message(data, LIMITS) == message


def test_frame_layout_is_magic_version_type_lengths_json_payload_crc() -> None:
    ack = Ack("dev-1", round=4, update_id="abc", accepted=True)
    data = ack.to_bytes()
    magic, major, minor, kind, flags, meta_length, payload_length = struct.unpack_from("<4sBBBBII", data)
    assert (magic, major, minor, kind, flags, payload_length) == (b"FMFL", 1, 2, 6, 0, 0)  # protocol 1.2
    assert json.loads(data[16 : 16 + meta_length]) == {
        "accepted": True, "client_id": "dev-1", "reason": "", "round": 4, "update_id": "abc",
    }  # fmt: skip
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_a_newer_minor_version_with_unknown_keys_is_accepted() -> None:
    metadata = {"client_id": "dev-1", "online": True, "battery": 0.5}
    data = bytearray(frame(MessageType.STATUS, metadata))
    data[5] = 7  # minor version 7
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    assert ClientStatus.from_bytes(bytes(data), LIMITS) == ClientStatus("dev-1", online=True)


def test_new_update_ids_are_unique_valid_ids() -> None:
    ids = {new_update_id() for _ in range(100)}
    assert len(ids) == 100
    _update(update_id=ids.pop())


def _reframe(data: bytes, **header: int) -> bytes:
    fields = dict(zip(("magic", "major", "minor", "kind", "flags", "meta", "payload"),
                      struct.unpack_from("<4sBBBBII", data), strict=True))  # fmt: skip
    fields.update(header)
    body = struct.pack("<4sBBBBII", *fields.values()) + data[16:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def _raw(metadata: Any, kind: MessageType = MessageType.STATUS, payload: bytes = b"") -> bytes:
    meta = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    body = struct.pack("<4sBBBBII", b"FMFL", 1, 0, kind, 0, len(meta), len(payload)) + meta + payload
    return body + struct.pack("<I", zlib.crc32(body))


GOOD = ClientStatus("dev-1", online=True).to_bytes()
_STATUS = {"client_id": "dev-1", "online": True}

FRAME_CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "truncated"),
    ("shorter than the header", GOOD[:19], "truncated"),
    ("bad magic", b"XXXX" + GOOD[4:], "bad_magic"),
    ("major version 2", _reframe(GOOD, major=2), "version"),
    ("cut short", GOOD[:-1], "truncated"),
    ("extra byte", GOOD + b"\x00", "trailing_bytes"),
    ("flipped bit", GOOD[:20] + bytes([GOOD[20] ^ 1]) + GOOD[21:], "checksum"),
    ("bad crc", GOOD[:-4] + b"\x00\x00\x00\x00", "checksum"),
    ("reserved flags", _reframe(GOOD, flags=1), "bad_metadata"),
    ("unknown type", _reframe(GOOD, kind=99), "unknown_type"),
    ("metadata longer than the limit", _reframe(GOOD, meta=LIMITS.max_metadata_bytes + 1), "too_large"),
    ("declared payload past the end", _reframe(GOOD, payload=10), "truncated"),
    ("metadata not JSON", _raw(b"{not json"), "bad_metadata"),
    ("metadata not UTF-8", _raw(b'{"client_id": "\xff"}'), "bad_metadata"),
    ("metadata a list", _raw([1, 2]), "bad_metadata"),
    ("NaN in metadata", _raw(b'{"client_id": "d", "online": NaN}'), "bad_metadata"),
    ("overflowing number", _raw(b'{"client_id": "d", "online": true, "x": 1e999}'), "bad_metadata"),
    ("huge integer", _raw(b'{"client_id": "d", "online": true, "x": 1' + b"0" * 5000 + b"}"), "bad_metadata"),
    ("deep nesting", _raw(b"[" * 100_000 + b"]" * 100_000), "bad_metadata"),
    ("duplicate key", _raw(b'{"client_id": "d", "online": true, "online": false}'), "bad_metadata"),
    ("missing field", _raw({"client_id": "dev-1"}), "bad_metadata"),
    ("wrong field type", _raw({"client_id": "dev-1", "online": 1}), "bad_metadata"),
    ("bad client id", _raw({"client_id": "dev/1", "online": True}), "invalid_id"),
    ("wildcard client id", _raw({"client_id": "+", "online": True}), "invalid_id"),
    ("client id too long", _raw({"client_id": "d" * 65, "online": True}), "invalid_id"),
    ("payload on a status", _raw(_STATUS, payload=b"x"), "trailing_bytes"),
]


@pytest.mark.parametrize(("name", "data", "reason"), FRAME_CASES, ids=[c[0] for c in FRAME_CASES])
def test_bad_frames_raise_protocol_error_with_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        ClientStatus.from_bytes(data, LIMITS)
    assert caught.value.reason == reason, caught.value
    with pytest.raises(ProtocolError) as caught:
        decode_message(data, LIMITS)
    assert caught.value.reason == reason


def test_message_larger_than_the_limit_is_too_large() -> None:
    small = Limits(max_vector_size=10, max_message_bytes=100)
    with pytest.raises(ProtocolError) as caught:
        decode_message(_update().to_bytes(), small)
    assert caught.value.reason == "too_large"


def test_asking_for_the_wrong_type_is_wrong_type() -> None:
    with pytest.raises(ProtocolError) as caught:
        Ack.from_bytes(GOOD, LIMITS)
    assert caught.value.reason == "wrong_type"


def _meta(message: Any, **changes: Any) -> bytes:
    metadata = message._metadata()
    metadata.update(changes)
    return _raw(metadata, message.TYPE, getattr(message, "payload", b""))


TASK, UPDATE, HELLO = _task(), _update(), MESSAGES[0]
META_CASES: list[tuple[str, bytes, str]] = [
    ("negative round", _meta(TASK, round=-1), "bad_metadata"),
    ("round past 2**53", _meta(TASK, round=2**53), "bad_metadata"),
    ("bool as int", _meta(TASK, round=True), "bad_metadata"),
    ("lr zero", _meta(TASK, lr=0), "bad_metadata"),
    ("lr string", _meta(TASK, lr="0.1"), "bad_metadata"),
    ("negative deadline", _meta(TASK, deadline=-1.0), "bad_metadata"),
    ("both steps and epochs", _meta(TASK, local_epochs=1), "bad_metadata"),
    ("neither steps nor epochs", _meta(TASK, local_steps=None), "bad_metadata"),
    ("zero batch", _meta(TASK, batch_size=0), "bad_metadata"),
    ("bad codec", _meta(TASK, codec="topk:2.0"), "bad_codec_spec"),
    ("selected not a list", _meta(TASK, selected="dev-1"), "bad_metadata"),
    ("selected repeats", _meta(TASK, selected=["a", "a"]), "bad_metadata"),
    ("selected bad id", _meta(TASK, selected=["a#"]), "invalid_id"),
    ("too many selected", _meta(TASK, selected=[f"d{i}" for i in range(LIMITS.max_items + 1)]), "too_large"),
    ("bad federation", _meta(TASK, federation="a/b"), "invalid_id"),
    ("bad bundle id", _meta(TASK, bundle_id=" space"), "invalid_id"),
    ("long string", _meta(TASK, codec="x" * (LIMITS.max_string_bytes + 1)), "too_large"),
    ("negative samples", _meta(UPDATE, num_samples=-5), "bad_metadata"),
    ("metric not a number", _meta(UPDATE, metrics={"loss": "low"}), "bad_metadata"),
    # A JSON integer no float holds (309+ digits): refused as not finite, not an OverflowError out of the decoder
    ("metric integer past float range", _meta(UPDATE, metrics={"loss": 10**400}), "non_finite"),
    ("lr integer past float range", _meta(TASK, lr=10**400), "non_finite"),
    ("metric key bad", _meta(UPDATE, metrics={"a b": 1.0}), "bad_metadata"),
    ("metrics a list", _meta(UPDATE, metrics=[1.0]), "bad_metadata"),
    ("bad update id", _meta(UPDATE, update_id=""), "invalid_id"),
    ("capability object", _meta(HELLO, capabilities={"gpu": {"x": 1}}), "bad_metadata"),
    ("capability list of ints", _meta(HELLO, capabilities={"eps": [1]}), "bad_metadata"),
    ("capabilities too many", _meta(HELLO, capabilities={f"k{i}": 1 for i in range(LIMITS.max_items + 1)}),
     "too_large"),
    ("base version not older", _meta(MESSAGES[6], base_version=4), "bad_metadata"),
    ("ack accepted not bool", _meta(MESSAGES[9], accepted="yes"), "bad_metadata"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "reason"), META_CASES, ids=[c[0] for c in META_CASES])
def test_bad_metadata_raises_protocol_error_with_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_message(data, LIMITS)
    assert caught.value.reason == reason, caught.value


def test_messages_are_validated_when_built_locally() -> None:
    with pytest.raises(ProtocolError) as caught:
        _task(lr=float("nan"))
    assert caught.value.reason == "non_finite"
    with pytest.raises(ProtocolError) as caught:
        _update(metrics={"loss": float("inf")})
    assert caught.value.reason == "non_finite"
    with pytest.raises(ProtocolError) as caught:
        Ack("dev-1", round=1, update_id="u", accepted=False, reason="x" * 300)
    assert caught.value.reason == "too_large"
    with pytest.raises(ProtocolError) as caught:
        ClientHello("dev-1", {"obj": {"a": 1}})  # type: ignore[dict-item]
    assert caught.value.reason == "bad_metadata"


def test_round_task_exposes_its_codec_spec() -> None:
    assert _task().codec_spec == DEFAULT_CODEC
