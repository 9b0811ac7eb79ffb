"""Binary ClientUpdate metadata (protocol 1.2): the uplink in a few dozen bytes instead of ~400 of JSON.

A frame whose flags byte has bit 0 set carries this instead of JSON (ClientUpdate only). Fields the
receiver already knows are left out: ``federation`` and ``client_id`` are the update topic's levels, and
``bundle_id`` is the bundle of the gateway's run, which the mandatory ``run`` names. Layout
(docs/protocol.md, section 5, "Compact ClientUpdate"):

    run            varint, >= 1
    round          varint
    model_version  varint
    num_samples    varint
    update_id      16 bytes; the textual id is their 32 lowercase hex digits
    flags          u8: bit 0 = signed (nonce and signature follow); other bits 0
    [nonce]        16 bytes (32 lowercase hex digits in the signing input)
    [sig]          64 bytes, Ed25519
    metric count   u8
    per metric     tag u8: 1..8 a name of WELL_KNOWN_METRICS, 0 = u8 length + ASCII name; value f64 LE

Varints are unsigned LEB128, canonical (no trailing zero groups), at most 8 bytes and below 2**53.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fmfl.protocol.errors import ProtocolError, Reason
from fmfl.protocol.fields import MAX_SAFE_INT, check_float, check_key

FLAG_BINARY_METADATA = 0x01  # frame flags bit 0
SIGNED = 0x01
UPDATE_ID_BYTES = 16
NONCE_BYTES = 16
SIGNATURE_BYTES = 64
MAX_VARINT_BYTES = 8
F64 = struct.Struct("<d")
# Tag i (1-based) stands for WELL_KNOWN_METRICS[i - 1]: fixed forever (new names use tag 0).
WELL_KNOWN_METRICS = (
    "train_loss",
    "train_seconds",
    "steps",
    "eval_loss",
    "eval_accuracy",
    "eval_samples",
    "local_dp_epsilon",
    "local_dp_releases",
)
_TAG = {name: i + 1 for i, name in enumerate(WELL_KNOWN_METRICS)}


@dataclass(frozen=True)
class CompactFields:
    """The fields a compact ClientUpdate carries (the rest come from the topic and the run)."""

    run: int
    round: int
    model_version: int
    num_samples: int
    update_id: str
    metrics: dict[str, float]
    nonce: str | None = None
    signature: bytes | None = None


def can_encode(update_id: str, nonce: str | None, metrics: dict[str, float]) -> bool:
    """True if these values fit the compact form (a 32-hex-digit update id and nonce, <= 255 metrics)."""
    return _is_hex(update_id, UPDATE_ID_BYTES) and (nonce is None or _is_hex(nonce, NONCE_BYTES)) and len(metrics) < 256


def _is_hex(text: str, nbytes: int) -> bool:
    return len(text) == 2 * nbytes and all(c in "0123456789abcdef" for c in text)


def _varint(value: int) -> bytes:
    if not 0 <= value <= MAX_SAFE_INT:
        raise ValueError(f"{value} outside [0, 2**53 - 1]")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_compact(f: CompactFields) -> bytes:
    """The binary metadata of ``f`` (``ValueError`` if it does not fit the compact form)."""
    if not can_encode(f.update_id, f.nonce, f.metrics):
        raise ValueError("the compact form needs 32-hex-digit update ids and nonces and at most 255 metrics")
    if (f.signature is None) != (f.nonce is None):
        raise ValueError("the compact form carries a nonce only with its signature, and vice versa")
    parts = [_varint(f.run), _varint(f.round), _varint(f.model_version), _varint(f.num_samples)]
    parts.append(bytes.fromhex(f.update_id))
    if f.signature is not None:
        assert f.nonce is not None
        parts += [bytes([SIGNED]), bytes.fromhex(f.nonce), f.signature]
    else:
        parts.append(b"\x00")
    parts.append(bytes([len(f.metrics)]))
    for name, value in sorted(f.metrics.items()):
        tag = _TAG.get(name)
        if tag is not None:
            parts.append(bytes([tag]))
        else:
            raw = name.encode("ascii")
            parts.append(bytes([0, len(raw)]) + raw)
        parts.append(F64.pack(value))
    return b"".join(parts)


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > self.data.nbytes:
            raise ProtocolError(Reason.TRUNCATED, f"compact metadata ends inside {what}")
        out = bytes(self.data[self.at : self.at + n])
        self.at += n
        return out

    def varint(self, what: str) -> int:
        value = 0
        for shift in range(0, 7 * MAX_VARINT_BYTES, 7):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and shift:
                    raise ProtocolError(Reason.BAD_METADATA, f"{what}: a non-canonical varint")
                if value > MAX_SAFE_INT:
                    raise ProtocolError(Reason.BAD_METADATA, f"{what}: {value} > 2**53 - 1")
                return value
        raise ProtocolError(Reason.BAD_METADATA, f"{what}: a varint longer than {MAX_VARINT_BYTES} bytes")


def decode_compact(data: memoryview) -> CompactFields:
    """The fields of binary metadata, or :class:`ProtocolError` (``truncated``, ``bad_metadata``, ...)."""
    r = _Reader(data)
    run = r.varint("run")
    if run < 1:
        raise ProtocolError(Reason.BAD_METADATA, "field 'run': 0 outside [1, 2**53 - 1]")
    round_no, version, samples = r.varint("round"), r.varint("model_version"), r.varint("num_samples")
    update_id = r.take(UPDATE_ID_BYTES, "update_id").hex()
    flags = r.take(1, "flags")[0]
    if flags & ~SIGNED:
        raise ProtocolError(Reason.BAD_METADATA, f"compact update flags {flags:#04x}: unknown bits")
    nonce = signature = None
    if flags & SIGNED:
        nonce = r.take(NONCE_BYTES, "nonce").hex()
        signature = r.take(SIGNATURE_BYTES, "sig")
    metrics: dict[str, float] = {}
    for _ in range(r.take(1, "metric count")[0]):
        tag = r.take(1, "metric tag")[0]
        if tag == 0:
            raw = r.take(r.take(1, "metric name length")[0], "metric name")
            name = check_key("metrics", raw.decode("ascii", "replace"))
        elif tag <= len(WELL_KNOWN_METRICS):
            name = WELL_KNOWN_METRICS[tag - 1]
        else:
            raise ProtocolError(Reason.BAD_METADATA, f"metric tag {tag} is not defined")
        if name in metrics:
            raise ProtocolError(Reason.BAD_METADATA, f"metric {name!r} repeats")
        metrics[name] = check_float(f"metrics.{name}", F64.unpack(r.take(8, "metric value"))[0])
    if r.at != data.nbytes:
        raise ProtocolError(Reason.TRAILING_BYTES, f"{data.nbytes - r.at} bytes after the compact metadata")
    return CompactFields(run, round_no, version, samples, update_id, metrics, nonce, signature)
