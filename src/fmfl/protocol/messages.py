"""The six messages between devices and gateways, as frozen dataclasses with ``to_bytes`` / ``from_bytes``.

Each is validated where it is built (locally or from bytes) and raises :class:`ProtocolError` if invalid.
Metadata travels as JSON inside the binary frame of :mod:`fmfl.protocol.framing`; update and model weights
travel as the binary payload (an encoded update, see :mod:`fmfl.protocol.codec`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

from fmfl.protocol.codec.spec import CodecSpec
from fmfl.protocol.compact import CompactFields, can_encode, encode_compact
from fmfl.protocol.errors import ProtocolError, Reason
from fmfl.protocol.fields import MAX_SAFE_INT, Capability, Fields, check_float, check_int, check_key
from fmfl.protocol.framing import MessageType, canonical_json, frame, unframe
from fmfl.protocol.ids import check_bundle_id, check_id, is_valid_id
from fmfl.protocol.limits import Limits
from fmfl.protocol.reasons import AckReason

if TYPE_CHECKING:
    from typing_extensions import Self

MAX_REASON_CHARS = 256
_COMPACT_NEEDS_CONTEXT = "a compact ClientUpdate is read with its topic's context (ClientUpdate.decode)"
# Domain separation: an update signature can never verify as a signature over anything else (a bundle
# manifest, a later signature format), whatever bytes follow.
UPDATE_SIGNATURE_DOMAIN = b"fmfl-update-sig/1\n"
SIGNATURE_BYTES = 64  # Ed25519 (RFC 8032)
_NONCE = re.compile(r"[0-9a-f]{32,128}")
_ACK_REASONS = frozenset(AckReason)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def new_update_id() -> str:
    """A fresh random update id (128 bits, hex) for deduplication."""
    return secrets.token_hex(16)


def new_nonce() -> str:
    """A fresh signing nonce (128 bits, lowercase hex)."""
    return secrets.token_hex(16)


def check_nonce(value: object) -> str:
    """``value`` if it is a valid update nonce (32..128 lowercase hex digits), else ``ProtocolError``."""
    if not isinstance(value, str) or not _NONCE.fullmatch(value):
        raise ProtocolError(Reason.BAD_METADATA, f"nonce {repr(value)[:80]} must be 32..128 lowercase hex digits")
    return value


def check_run(run: int | None) -> None:
    """A run id is an integer in ``[1, 2**53 - 1]`` (the run's start, Unix milliseconds) or absent."""
    if run is not None:
        check_int("run", run, 1)


def _run_key(run: int | None) -> dict[str, int]:
    # Written only when set, so a message without a run keeps its 1.1 metadata byte for byte.
    return {} if run is None else {"run": run}


class _Wire:
    """``to_bytes`` / ``from_bytes`` for a message class that defines ``_metadata`` and ``_from_parts``."""

    TYPE: ClassVar[MessageType]

    def _metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def _payload(self) -> bytes:
        return b""

    def to_bytes(self) -> bytes:
        """The framed message."""
        return frame(self.TYPE, self._metadata(), self._payload())

    @classmethod
    def _from_parts(cls, fields: Fields, payload: bytes) -> Self:
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, limits: Limits) -> Self:
        """Parse and validate; :class:`ProtocolError` (``wrong_type`` for another message type)."""
        message_type, metadata, payload = unframe(data, limits)
        if message_type != cls.TYPE:
            raise ProtocolError(Reason.WRONG_TYPE, f"expected {cls.TYPE.name}, got {message_type.name}")
        if payload and cls.TYPE not in (MessageType.GLOBAL_MODEL, MessageType.UPDATE):
            raise ProtocolError(Reason.TRAILING_BYTES, f"{cls.TYPE.name} carries no payload")
        if isinstance(metadata, CompactFields):
            raise ProtocolError(Reason.BAD_METADATA, _COMPACT_NEEDS_CONTEXT)
        return cls._from_parts(Fields(metadata, limits), payload)


@dataclass(frozen=True)
class ClientHello(_Wire):
    """A device announces itself and what it can do, on connect.

    ``capabilities`` keys are free-form (``cores``, ``memory_bytes``, ``ort_version``,
    ``execution_providers``, ``fmfl_version``, ...); values are strings, numbers, booleans or lists of
    strings. ``model_version`` is the global version the device holds (so the gateway can send a delta),
    None if it holds none.
    """

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    client_id: str
    capabilities: dict[str, Capability] = field(default_factory=dict)
    bundle_id: str | None = None
    model_version: int | None = None

    def __post_init__(self) -> None:
        check_id(self.client_id)
        if self.bundle_id is not None:
            check_bundle_id(self.bundle_id)
        if self.model_version is not None:
            check_int("model_version", self.model_version)
        for key, value in self.capabilities.items():
            check_key("capabilities", key)
            if isinstance(value, float):
                check_float(f"capabilities.{key}", value)
            elif isinstance(value, list):
                if not all(isinstance(item, str) for item in value):
                    raise ProtocolError(Reason.BAD_METADATA, f"capability {key!r}: a list holds strings only")
            elif not isinstance(value, str | int | bool):
                raise ProtocolError(Reason.BAD_METADATA, f"capability {key!r}: {type(value).__name__}")

    def _metadata(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "capabilities": self.capabilities,
            "bundle_id": self.bundle_id,
            "model_version": self.model_version,
        }

    @classmethod
    def _from_parts(cls, fields: Fields, payload: bytes) -> Self:
        return cls(
            client_id=fields.string("client_id"),
            capabilities=fields.capabilities("capabilities"),
            bundle_id=fields.string("bundle_id") if fields.optional("bundle_id") else None,
            model_version=fields.optional_integer("model_version"),
        )


@dataclass(frozen=True)
class ClientStatus(_Wire):
    """Online (published retained on connect) or offline (the MQTT will, and on clean disconnect)."""

    TYPE: ClassVar[MessageType] = MessageType.STATUS
    client_id: str
    online: bool

    def __post_init__(self) -> None:
        check_id(self.client_id)

    def _metadata(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "online": self.online}

    @classmethod
    def _from_parts(cls, fields: Fields, payload: bytes) -> Self:
        return cls(client_id=fields.string("client_id"), online=fields.boolean("online"))


@dataclass(frozen=True)
class RoundTask(_Wire):
    """What the selected devices do this round (retained on the task topic).

    Exactly one of ``local_steps`` and ``local_epochs`` is set. ``codec`` is a :class:`CodecSpec` string.
    ``deadline`` is a Unix time in seconds; ``seed`` (< 2**53) seeds random-k and sampling.
    """

    TYPE: ClassVar[MessageType] = MessageType.TASK
    federation: str
    bundle_id: str
    round: int
    model_version: int
    selected: tuple[str, ...]
    batch_size: int
    lr: float
    codec: str
    deadline: float
    seed: int
    local_steps: int | None = None
    local_epochs: int | None = None
    run: int | None = None  # the federation run (protocol 1.2); None from a 1.1 gateway

    def __post_init__(self) -> None:
        check_id(self.federation, "federation")
        check_run(self.run)
        check_bundle_id(self.bundle_id)
        check_int("round", self.round)
        check_int("model_version", self.model_version)
        object.__setattr__(self, "selected", tuple(check_id(c) for c in self.selected))
        if len(set(self.selected)) != len(self.selected):
            raise ProtocolError(Reason.BAD_METADATA, "selected clients repeat")
        check_int("batch_size", self.batch_size, 1)
        if check_float("lr", self.lr) <= 0:
            raise ProtocolError(Reason.BAD_METADATA, f"lr must be positive, got {self.lr}")
        CodecSpec.parse(self.codec)
        if check_float("deadline", self.deadline) < 0:
            raise ProtocolError(Reason.BAD_METADATA, "deadline must be a Unix time >= 0")
        check_int("seed", self.seed)
        if (self.local_steps is None) == (self.local_epochs is None):
            raise ProtocolError(Reason.BAD_METADATA, "set exactly one of local_steps and local_epochs")
        if self.local_steps is not None:
            check_int("local_steps", self.local_steps, 1)
        if self.local_epochs is not None:
            check_int("local_epochs", self.local_epochs, 1)

    @property
    def codec_spec(self) -> CodecSpec:
        return CodecSpec.parse(self.codec)

    def _metadata(self) -> dict[str, Any]:
        return {
            "federation": self.federation,
            "bundle_id": self.bundle_id,
            "round": self.round,
            "model_version": self.model_version,
            "selected": list(self.selected),
            "batch_size": self.batch_size,
            "lr": self.lr,
            "codec": self.codec,
            "deadline": self.deadline,
            "seed": self.seed,
            "local_steps": self.local_steps,
            "local_epochs": self.local_epochs,
            **_run_key(self.run),
        }

    @classmethod
    def _from_parts(cls, fields: Fields, payload: bytes) -> Self:
        return cls(
            federation=fields.string("federation"),
            bundle_id=fields.string("bundle_id"),
            round=fields.integer("round"),
            model_version=fields.integer("model_version"),
            selected=tuple(fields.string_list("selected")),
            batch_size=fields.integer("batch_size", 1),
            lr=fields.number("lr"),
            codec=fields.string("codec"),
            deadline=fields.number("deadline"),
            seed=fields.integer("seed"),
            local_steps=fields.optional_integer("local_steps", 1),
            local_epochs=fields.optional_integer("local_epochs", 1),
            run=fields.optional_integer("run", 1),
        )


@dataclass(frozen=True)
class GlobalModel(_Wire):
    """The global trainable weights of ``model_version``: an encoded update.

    With ``base_version`` set, the payload is the delta from that version (apply it only if you hold exactly
    that version, as ``w = float32(w + delta)``); with ``base_version`` None it is the dense weights.
    ``weights_sha256`` (1.2, optional): the SHA-256 of the weights of ``model_version`` (float32 little-endian),
    so a device checks that what it reconstructed is bit for bit the gateway's (``fmfl.protocol.downlink``).
    """

    TYPE: ClassVar[MessageType] = MessageType.GLOBAL_MODEL
    bundle_id: str
    model_version: int
    base_version: int | None
    payload: bytes = field(repr=False)
    run: int | None = None  # protocol 1.2
    weights_sha256: str | None = None  # protocol 1.2 (downlink deltas)
    deltas: bool | None = None  # protocol 1.2: True on a dense model whose run publishes later versions as deltas

    def __post_init__(self) -> None:
        check_bundle_id(self.bundle_id)
        check_run(self.run)
        if self.weights_sha256 is not None and not _SHA256_HEX.fullmatch(self.weights_sha256):
            raise ProtocolError(
                Reason.BAD_METADATA, f"weights_sha256 {self.weights_sha256[:80]!r} must be 64 lowercase hex digits"
            )
        check_int("model_version", self.model_version)
        if (
            self.base_version is not None
            and check_int("base_version", self.base_version) >= self.model_version
        ):
            raise ProtocolError(Reason.BAD_METADATA, "base_version must be older than model_version")

    def _metadata(self) -> dict[str, Any]:
        return {
            "bundle_id": self.bundle_id,
            "model_version": self.model_version,
            "base_version": self.base_version,
            **_run_key(self.run),
            **({} if self.weights_sha256 is None else {"weights_sha256": self.weights_sha256}),
            **({} if self.deltas is None else {"deltas": self.deltas}),
        }

    def _payload(self) -> bytes:
        return self.payload

    @classmethod
    def _from_parts(cls, fields: Fields, payload: bytes) -> Self:
        return cls(
            bundle_id=fields.string("bundle_id"),
            model_version=fields.integer("model_version"),
            base_version=fields.optional_integer("base_version"),
            payload=payload,
            run=fields.optional_integer("run", 1),
            weights_sha256=fields.string("weights_sha256") if fields.optional("weights_sha256") else None,
            deltas=fields.boolean("deltas") if fields.optional("deltas") else None,
        )


@dataclass(frozen=True)
class ClientUpdate(_Wire):
    """A device's encoded update for one round, with its sample count, metrics and a dedup id."""

    TYPE: ClassVar[MessageType] = MessageType.UPDATE
    federation: str
    bundle_id: str
    round: int
    model_version: int
    client_id: str
    num_samples: int
    update_id: str
    payload: bytes = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)
    nonce: str | None = None  # fresh per signed update (protocol 1.1); see signing_input
    signature: bytes | None = field(default=None, repr=False)  # Ed25519 over signing_input()
    run: int | None = None  # the task's run, echoed (protocol 1.2); not signed (the gateway checks it)

    def __post_init__(self) -> None:
        check_id(self.federation, "federation")
        check_run(self.run)
        check_bundle_id(self.bundle_id)
        check_int("round", self.round)
        check_int("model_version", self.model_version)
        check_id(self.client_id)
        check_int("num_samples", self.num_samples)
        check_id(self.update_id, "update id")
        for key, value in self.metrics.items():
            check_key("metrics", key)
            check_float(f"metrics.{key}", value)
        if self.nonce is not None:
            check_nonce(self.nonce)
        if self.signature is not None:
            if self.nonce is None:
                raise ProtocolError(Reason.BAD_METADATA, "a signed update carries a nonce")
            if len(self.signature) != SIGNATURE_BYTES:
                raise ProtocolError(
                    Reason.BAD_METADATA, f"signature of {len(self.signature)} bytes, expected {SIGNATURE_BYTES}"
                )

    def signing_input(self) -> bytes:
        """The bytes an Ed25519 update signature covers (docs/protocol.md, "Signed updates").

        The domain prefix, then canonical JSON (sorted keys, no spaces, ASCII) of every field but the
        signature, with the payload as its SHA-256 and each metric as the 16 hex digits of its IEEE 754
        binary64 big-endian bits: the input holds only ASCII ids, integers below 2**53 and hex strings,
        so a device in any language writes the same bytes (float-to-text differs between languages).
        Signing fields rather than the frame keeps the signature independent of chunking and the CRC.
        """
        if self.nonce is None:
            raise ProtocolError(Reason.BAD_METADATA, "an update is signed together with its nonce: set nonce")
        return UPDATE_SIGNATURE_DOMAIN + canonical_json(
            {
                "federation": self.federation,
                "bundle_id": self.bundle_id,
                "round": self.round,
                "model_version": self.model_version,
                "client_id": self.client_id,
                "num_samples": self.num_samples,
                "update_id": self.update_id,
                "nonce": self.nonce,
                "metrics": {k: struct.pack(">d", float(v)).hex() for k, v in self.metrics.items()},
                "payload_sha256": hashlib.sha256(self.payload).hexdigest(),
            }
        )

    def _metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "federation": self.federation,
            "bundle_id": self.bundle_id,
            "round": self.round,
            "model_version": self.model_version,
            "client_id": self.client_id,
            "num_samples": self.num_samples,
            "update_id": self.update_id,
            "metrics": self.metrics,
        }
        # Written only when set, so an unsigned update keeps its 1.0 metadata byte for byte.
        if self.nonce is not None:
            meta["nonce"] = self.nonce
        if self.signature is not None:
            meta["sig"] = base64.b64encode(self.signature).decode("ascii")
        meta.update(_run_key(self.run))
        return meta

    def _payload(self) -> bytes:
        return self.payload

    @property
    def compact_ok(self) -> bool:
        """True if this update can go out in the compact form (protocol 1.2): it names a run, its
        update id and nonce are 32 hex digits, and a nonce comes only with a signature."""
        return (
            self.run is not None
            and (self.nonce is None) == (self.signature is None)
            and can_encode(self.update_id, self.nonce, self.metrics)
        )

    def wire_bytes(self) -> bytes:
        """What a 1.2 device sends: the compact form when the update can use it (it names the run of a
        1.2 gateway's task), else the JSON form (a 1.1 gateway, whose task names no run)."""
        return self.to_compact_bytes() if self.compact_ok else self.to_bytes()

    def to_compact_bytes(self) -> bytes:
        """The framed message with binary metadata (``ValueError`` unless ``compact_ok``).

        Only for a gateway that announced protocol 1.2 (its task names a ``run``): federation, client id
        and bundle id are left out, the receiver takes them from the topic and its run.
        """
        if not self.compact_ok:
            raise ValueError("this update cannot use the compact form (no run, or ids that are not 32 hex digits)")
        assert self.run is not None
        meta = encode_compact(
            CompactFields(
                self.run, self.round, self.model_version, self.num_samples, self.update_id,
                dict(self.metrics), self.nonce, self.signature,
            )
        )  # fmt: skip
        return frame(MessageType.UPDATE, meta, self.payload)

    @classmethod
    def decode(
        cls, data: bytes | bytearray | memoryview, limits: Limits, *, federation: str, client_id: str, bundle_id: str
    ) -> ClientUpdate:
        """Either form of a ClientUpdate that arrived on ``update/{client_id}`` of ``federation``; a compact
        one takes federation, client id and bundle id from these (the gateway's own run's bundle)."""
        message_type, metadata, payload = unframe(data, limits)
        if message_type != MessageType.UPDATE:
            raise ProtocolError(Reason.WRONG_TYPE, f"expected UPDATE, got {message_type.name}")
        if not isinstance(metadata, CompactFields):
            return cls._from_parts(Fields(metadata, limits), payload)
        m = metadata
        return cls(
            federation=federation, bundle_id=bundle_id, round=m.round, model_version=m.model_version,
            client_id=client_id, num_samples=m.num_samples, update_id=m.update_id, payload=payload,
            metrics=m.metrics, nonce=m.nonce, signature=m.signature, run=m.run,
        )  # fmt: skip

    @classmethod
    def _from_parts(cls, fields: Fields, payload: bytes) -> Self:
        return cls(
            federation=fields.string("federation"),
            bundle_id=fields.string("bundle_id"),
            round=fields.integer("round"),
            model_version=fields.integer("model_version"),
            client_id=fields.string("client_id"),
            num_samples=fields.integer("num_samples"),
            update_id=fields.string("update_id"),
            payload=payload,
            metrics=fields.number_map("metrics"),
            nonce=fields.string("nonce") if fields.optional("nonce") else None,
            signature=_signature(fields.string("sig")) if fields.optional("sig") else None,
            run=fields.optional_integer("run", 1),
        )


def _signature(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(Reason.BAD_METADATA, "field 'sig': not base64") from None


@dataclass(frozen=True)
class Ack(_Wire):
    """The gateway's answer to one ClientUpdate: accepted, or rejected with a reason code and a detail.

    ``reason`` is a machine-readable code (docs/protocol.md section 8 lists each and what a device does
    next); ``detail`` (protocol 1.2) says in words what the gateway expected and what it got.
    """

    TYPE: ClassVar[MessageType] = MessageType.ACK
    client_id: str
    round: int
    update_id: str
    accepted: bool
    reason: str = ""
    detail: str = ""  # protocol 1.2; "" when accepted
    run: int | None = None  # protocol 1.2: the gateway's run

    def __post_init__(self) -> None:
        check_id(self.client_id)
        check_int("round", self.round)
        check_id(self.update_id, "update id")
        check_run(self.run)
        if len(self.reason) > MAX_REASON_CHARS:
            raise ProtocolError(Reason.TOO_LARGE, f"ack reason longer than {MAX_REASON_CHARS} characters")
        if len(self.detail.encode("utf-8")) > MAX_REASON_CHARS:
            raise ProtocolError(Reason.TOO_LARGE, f"ack detail longer than {MAX_REASON_CHARS} bytes")

    def _metadata(self) -> dict[str, Any]:
        # Checked when encoding only: a gateway speaks the one vocabulary, while a device must still read an
        # Ack from a newer gateway whose reason it does not know (any negative Ack is final).
        if self.reason and self.reason not in _ACK_REASONS:
            raise ProtocolError(Reason.BAD_METADATA, f"ack reason {self.reason!r} is not an AckReason (section 8)")
        meta: dict[str, Any] = {
            "client_id": self.client_id,
            "round": self.round,
            "update_id": self.update_id,
            "accepted": self.accepted,
            "reason": self.reason,
            **_run_key(self.run),
        }
        if self.detail:
            meta["detail"] = self.detail
        return meta

    @classmethod
    def _from_parts(cls, fields: Fields, payload: bytes) -> Self:
        return cls(
            client_id=fields.string("client_id"),
            round=fields.integer("round"),
            update_id=fields.string("update_id"),
            accepted=fields.boolean("accepted"),
            reason=fields.string("reason"),
            detail=fields.string("detail") if fields.optional("detail") else "",
            run=fields.optional_integer("run", 1),
        )


Message = ClientHello | ClientStatus | RoundTask | GlobalModel | ClientUpdate | Ack
_CLASSES: dict[MessageType, type[_Wire]] = {
    cls.TYPE: cls for cls in (ClientHello, ClientStatus, RoundTask, GlobalModel, ClientUpdate, Ack)
}


def salvage_update_id(data: bytes | bytearray | memoryview, limits: Limits) -> tuple[str, int] | None:
    """``(update_id, round)`` of a ClientUpdate whose metadata did not pass the checks, if it names them.

    A gateway Acks such an update (negatively) so the device stops resending it; only an intact frame
    (CRC good) with a valid ``update_id`` qualifies, the round defaulting to 0 when it is unreadable.
    """
    try:
        message_type, metadata, _ = unframe(data, limits)
    except ProtocolError:
        return None
    if message_type != MessageType.UPDATE:
        return None
    if isinstance(metadata, CompactFields):
        return metadata.update_id, metadata.round
    update_id, round_no = metadata.get("update_id"), metadata.get("round")
    if not isinstance(update_id, str) or not is_valid_id(update_id):
        return None
    if not isinstance(round_no, int) or isinstance(round_no, bool) or not 0 <= round_no <= MAX_SAFE_INT:
        round_no = 0
    return update_id, round_no


def decode_message(data: bytes | bytearray | memoryview, limits: Limits) -> Message:
    """Any framed message, as its dataclass, or :class:`ProtocolError`."""
    message_type, metadata, payload = unframe(data, limits)
    cls = _CLASSES[message_type]
    if payload and message_type not in (MessageType.GLOBAL_MODEL, MessageType.UPDATE):
        raise ProtocolError(Reason.TRAILING_BYTES, f"{message_type.name} carries no payload")
    if isinstance(metadata, CompactFields):
        raise ProtocolError(Reason.BAD_METADATA, _COMPACT_NEEDS_CONTEXT)
    return cast(Message, cls._from_parts(Fields(metadata, limits), payload))


__all__ = [
    "MAX_SAFE_INT",
    "Ack",
    "ClientHello",
    "ClientStatus",
    "ClientUpdate",
    "GlobalModel",
    "Message",
    "RoundTask",
    "decode_message",
    "new_nonce",
    "new_update_id",
]
