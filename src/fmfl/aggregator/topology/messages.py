"""Gateway-to-gateway messages for scale-out: workers' progress and partial rounds, the coordinator's
close requests. Devices never see these; they live under ``{prefix}/{federation}/gateway/``.

    gateway/progress/{worker}  Progress       worker -> coordinator  QoS 1: clients accepted so far
    gateway/partial/{worker}   PartialRound   worker -> coordinator  QoS 1, chunked: the round's share
    gateway/close              CloseRequest   coordinator -> workers QoS 1, retained: stop, send share
    gateway/sync               (empty)        coordinator -> workers QoS 1: re-send progress (restart)

A PartialRound carries ``Strategy.round_bytes()`` (for the FedAvg family a ``WeightedSum``: npz,
loaded without pickle) and the accepted updates' metadata, so the coordinator's metrics line covers
every worker. Framing: ``b"FMPR"``, u32 header length, UTF-8 JSON header, npz body; the whole is
split into chunks like any fmfl message (broker packet limits apply here too).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from fmfl.aggregator.durable.journal import AcceptedRow
from fmfl.errors import FmflError
from fmfl.protocol import ProtocolError, Topics, check_id

_MAGIC = b"FMPR"
_HEAD = struct.Struct("<4sI")
MAX_HEADER_BYTES = 64 * 2**20


class PartialError(FmflError, ValueError):
    """A gateway message that cannot be read (they come over MQTT, so they are checked)."""


@dataclass(frozen=True)
class GatewayTopics:
    """The gateway-internal topics of one federation."""

    topics: Topics

    @property
    def base(self) -> str:
        return f"{self.topics.root}/gateway"

    def progress(self, worker: str) -> str:
        return f"{self.base}/progress/{check_id(worker, 'worker id')}"

    def partial(self, worker: str) -> str:
        return f"{self.base}/partial/{check_id(worker, 'worker id')}"

    @property
    def close(self) -> str:
        return f"{self.base}/close"

    @property
    def sync(self) -> str:
        return f"{self.base}/sync"

    def parse(self, topic: str) -> tuple[str, str | None] | None:
        """``(kind, worker)`` for a gateway topic, None for any other topic."""
        head = self.base + "/"
        if not topic.startswith(head):
            return None
        levels = topic[len(head) :].split("/")
        if levels in (["close"], ["sync"]):
            return levels[0], None
        if len(levels) == 2 and levels[0] in ("progress", "partial"):
            try:
                return levels[0], check_id(levels[1], "worker id")
            except ProtocolError:
                return None
        return None


@dataclass(frozen=True)
class Progress:
    """Clients (with their update ids) a worker accepted in ``round``; ``full`` lists all of them."""

    round: int
    worker: str
    clients: dict[str, str]
    full: bool = False

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Progress:
        raw = _json(data)
        try:
            return cls(int(raw["round"]), str(raw["worker"]), _str_map(raw["clients"]), bool(raw["full"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PartialError(f"bad progress message: {exc}") from exc


@dataclass(frozen=True)
class CloseRequest:
    """Round ``round`` is closing: stop accepting its updates and send a share without ``exclude``.

    ``exclude`` maps a worker to clients another gateway already holds (a device's resend that the
    shared subscription delivered to a second worker); that worker rebuilds its share without them
    from its write-ahead log. ``seq`` changes with every request, so a repeated one is answered again.
    """

    round: int
    seq: int
    exclude: dict[str, list[str]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CloseRequest:
        raw = _json(data)
        try:
            exclude = {str(w): [str(c) for c in cs] for w, cs in dict(raw.get("exclude", {})).items()}
            return cls(int(raw["round"]), int(raw["seq"]), exclude)
        except (KeyError, TypeError, ValueError) as exc:
            raise PartialError(f"bad close request: {exc}") from exc


@dataclass(frozen=True)
class PartialRound:
    """One worker's share of round ``round`` in answer to close request ``seq``."""

    round: int
    seq: int
    worker: str
    clients: dict[str, str]  # client id -> update id, exactly the clients in ``payload``
    payload: bytes  # Strategy.round_bytes(), or b"" when the worker accepted nothing
    rows: list[AcceptedRow]
    counters: dict[str, int]

    def to_bytes(self) -> bytes:
        header = {
            "round": self.round,
            "seq": self.seq,
            "worker": self.worker,
            "clients": self.clients,
            "rows": [asdict(r) for r in self.rows],
            "counters": self.counters,
        }
        head = json.dumps(header).encode()
        return _HEAD.pack(_MAGIC, len(head)) + head + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> PartialRound:
        if len(data) < _HEAD.size:
            raise PartialError("partial round shorter than its header")
        magic, n = _HEAD.unpack_from(data)
        if magic != _MAGIC or n > MAX_HEADER_BYTES or _HEAD.size + n > len(data):
            raise PartialError("not a partial round")
        raw = _json(data[_HEAD.size : _HEAD.size + n])
        try:
            rows = [AcceptedRow(**{**r, "metrics": dict(r["metrics"])}) for r in raw["rows"]]
            return cls(
                int(raw["round"]),
                int(raw["seq"]),
                str(raw["worker"]),
                _str_map(raw["clients"]),
                bytes(data[_HEAD.size + n :]),
                rows,
                {str(k): int(v) for k, v in dict(raw["counters"]).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PartialError(f"bad partial round: {exc}") from exc


def _json(data: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PartialError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PartialError("not a JSON object")
    return raw


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("expected a map of strings")
    return {str(k): str(v) for k, v in value.items()}
