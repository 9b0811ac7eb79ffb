"""The compact uplink (protocol 1.2): binary ClientUpdate metadata in a bare frame.

Its size for the default vision update (the 12,810-float EfficientNet-Lite0 head, ``topk:0.01+int8+ef``)
against the 512-byte budget, its round trip, and every way a receiver refuses broken binary metadata.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest

from fmfl.protocol import ClientUpdate, Limits, ProtocolError, Reassembler, UpdateEncoder, split_message
from fmfl.protocol.compact import CompactFields, encode_compact
from fmfl.protocol.framing import HEADER, MessageType, frame

SIZE = 12_810
LIMITS = Limits.for_vector_size(SIZE)
METRICS = {
    "train_loss": 0.6931471805599453, "train_seconds": 1.2345678, "steps": 12.0,
    "eval_loss": 0.71234, "eval_accuracy": 0.8125, "eval_samples": 32.0,
}  # fmt: skip
CONTEXT = {"federation": "default", "client_id": "device-0042", "bundle_id": "0123456789abcdef01234567"}


def vision_update() -> ClientUpdate:
    """A default-codec update of the vision head after 3 rounds of error feedback (a realistic residual)."""
    rng = np.random.default_rng(0)
    encoder = UpdateEncoder("topk:0.01+int8+ef", SIZE, [12_800, 10], seed=1)
    for _ in range(3):
        payload = encoder.encode((rng.standard_normal(SIZE) * 0.01).astype(np.float32))
    return ClientUpdate(
        federation="default", bundle_id=CONTEXT["bundle_id"], round=17, model_version=16,
        client_id="device-0042", num_samples=480, update_id="9f" * 16, payload=payload, metrics=METRICS,
        run=1767225600000,
    )  # fmt: skip


def test_the_default_vision_update_is_at_most_512_bytes_on_the_wire() -> None:
    update = vision_update()
    packets = split_message(update.wire_bytes(), bare=True)
    json_packets = split_message(update.to_bytes())
    signed = replace(update, nonce="ab" * 16, signature=bytes(64))
    signed_packets = split_message(signed.wire_bytes(), bare=True)
    assert len(packets) == len(json_packets) == len(signed_packets) == 1
    print(f"payload {len(update.payload)} B, compact {len(packets[0])} B, signed {len(signed_packets[0])} B, "
          f"json {len(json_packets[0])} B")  # fmt: skip
    assert len(packets[0]) <= 512
    assert len(signed_packets[0]) <= 512
    assert len(packets[0]) - len(update.payload) == 102  # 20 frame + 82 metadata (6 metrics of 9 bytes)


@pytest.mark.parametrize("signed", [False, True])
def test_a_compact_update_round_trips_with_its_topic_context(signed: bool) -> None:
    update = vision_update()
    if signed:
        update = replace(update, nonce="ab" * 16, signature=bytes(range(64)))
    data = Reassembler(1 << 20).add(split_message(update.wire_bytes(), bare=True)[0], "t")
    assert ClientUpdate.decode(data or b"", LIMITS, **CONTEXT) == update


def test_an_update_without_a_run_or_with_a_long_nonce_uses_the_json_form() -> None:
    no_run = replace(vision_update(), run=None)
    long_nonce = replace(vision_update(), nonce="ab" * 32, signature=bytes(64))
    for update in (no_run, long_nonce):
        assert not update.compact_ok
        assert update.wire_bytes() == update.to_bytes()
        with pytest.raises(ValueError, match="cannot use the compact form"):
            update.to_compact_bytes()
    # A bare frame is only for a message that fits one packet; a bigger one is chunked as always.
    assert len(split_message(vision_update().wire_bytes(), 200, bare=True)) == 4  # 423 bytes, 124 per chunk


def compact_frame(meta: bytes, payload: bytes = b"") -> bytes:
    return frame(MessageType.UPDATE, meta, payload)


BASE = encode_compact(CompactFields(5, 1, 0, 10, "00" * 16, {"train_loss": 0.5}))


@pytest.mark.parametrize(
    ("name", "meta", "reason", "words"),
    [
        ("truncated", BASE[:-3], "truncated", "metric value"),
        ("trailing", BASE + b"\x00", "trailing_bytes", "after the compact metadata"),
        ("run 0", b"\x00" + BASE[1:], "bad_metadata", "'run'"),
        ("non-canonical varint", b"\x85\x00" + BASE[1:], "bad_metadata", "non-canonical"),
        ("long varint", b"\xff" * 9 + BASE[1:], "bad_metadata", "longer than 8"),
        ("unknown flag", BASE[:20] + b"\x02" + BASE[21:], "bad_metadata", "unknown bits"),
        ("undefined tag", BASE[:22] + b"\x63" + BASE[23:], "bad_metadata", "tag 99"),
        ("repeated metric", BASE[:21] + b"\x02" + BASE[22:] + BASE[22:], "bad_metadata", "repeats"),
        ("NaN metric", BASE[:-8] + struct.pack("<d", float("nan")), "non_finite", "not finite"),
    ],
)
def test_broken_binary_metadata_is_refused(name: str, meta: bytes, reason: str, words: str) -> None:
    with pytest.raises(ProtocolError) as err:
        ClientUpdate.decode(compact_frame(meta), LIMITS, **CONTEXT)
    assert err.value.reason == reason, str(err.value)
    assert words in str(err.value), str(err.value)


def test_binary_metadata_needs_the_context_and_exists_only_for_updates() -> None:
    data = compact_frame(BASE)
    with pytest.raises(ProtocolError, match=r"ClientUpdate\.decode"):
        ClientUpdate.from_bytes(data, LIMITS)
    other = bytearray(data)
    other[6] = MessageType.ACK
    other[-4:] = struct.pack("<I", zlib.crc32(bytes(other[:-4])))
    with pytest.raises(ProtocolError, match="binary metadata on a ACK"):
        ClientUpdate.decode(bytes(other), LIMITS, **CONTEXT)
    flags = bytearray(data)
    flags[7] = 0x03
    flags[-4:] = struct.pack("<I", zlib.crc32(bytes(flags[:-4])))
    with pytest.raises(ProtocolError, match="reserved flags"):
        ClientUpdate.decode(bytes(flags), LIMITS, **CONTEXT)
    assert HEADER.size == 16
