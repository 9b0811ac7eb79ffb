"""What the gateway publishes, as data: the engine returns these and the MQTT adapter sends them.

Every payload is one chunk of one framed message (``split_message``), as the protocol requires of
every fmfl topic, even for messages that fit one packet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmfl.aggregator.downlink import GlobalDelta
from fmfl.aggregator.sparse import Float32Array
from fmfl.errors import FmflError
from fmfl.protocol import Ack, GlobalModel, RoundTask, Topics, UpdateEncoder, split_message


@dataclass(frozen=True)
class Outgoing:
    """One MQTT publish (QoS 1)."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1


def global_model_packets(
    topics: Topics,
    bundle_id: str,
    version: int,
    weights: Float32Array,
    max_packet_bytes: int,
    run: int | None = None,
    weights_sha256: str | None = None,
) -> list[Outgoing]:
    """The dense global weights of ``version`` as retained chunks on ``global/{i}``, tagged with ``run``."""
    encoder = UpdateEncoder("dense", int(weights.shape[0]))
    payload = encoder.encode(np.ascontiguousarray(weights, dtype=np.float32))
    message = GlobalModel(bundle_id=bundle_id, model_version=version, base_version=None, payload=payload, run=run,
                          weights_sha256=weights_sha256)
    chunks = split_message(message.to_bytes(), max_packet_bytes, run=run)
    return [Outgoing(topics.global_model_chunk(i), c, retain=True) for i, c in enumerate(chunks)]


def global_delta_packets(
    topics: Topics, bundle_id: str, delta: GlobalDelta, max_packet_bytes: int, run: int | None = None
) -> list[Outgoing]:
    """A downlink delta (docs/protocol.md 2b) as retained chunks on ``delta/{i}``, tagged with ``run``."""
    message = GlobalModel(
        bundle_id=bundle_id, model_version=delta.model_version, base_version=delta.base_version,
        payload=delta.payload, run=run, weights_sha256=delta.weights_sha256,
    )  # fmt: skip
    chunks = split_message(message.to_bytes(), max_packet_bytes, run=run)
    return [Outgoing(topics.global_delta_chunk(i), c, retain=True) for i, c in enumerate(chunks)]


def clear_stale_chunks(topics: Topics, first: int, stop: int, *, delta: bool = False) -> list[Outgoing]:
    """Empty retained payloads (MQTT's "delete the retained message") for chunk topics ``[first, stop)``
    of ``global/{i}`` (or, with ``delta``, of ``delta/{i}``).

    Needed when a model goes out in fewer chunks than before (``--max-packet-bytes`` raised, or an
    earlier run's larger model): a device must not collect a stale chunk. Stale chunks carry another
    message id, so even a device that did would discard them; this keeps the broker tidy. A version
    without a delta clears every delta topic: a device must not pay for a delta it can never apply.
    """
    topic = topics.global_delta_chunk if delta else topics.global_model_chunk
    return [Outgoing(topic(i), b"", retain=True) for i in range(first, stop)]


def clear_task(topics: Topics) -> Outgoing:
    """Delete the retained task (an earlier run's, before this run's first task replaces it)."""
    return Outgoing(topics.task, b"", retain=True)


class TaskTooLarge(FmflError):
    """The round task (its selection list) does not fit one packet: an operator setting, not a bug."""


def task_packets(topics: Topics, task: RoundTask, max_packet_bytes: int) -> list[Outgoing]:
    """The retained RoundTask. One chunk in practice; a huge selection list could need more, and
    the task topic holds one retained message, so the task must fit one packet. Checked before the round
    is journaled, so the gateway stops with this message and resumes cleanly with a larger packet."""
    chunks = split_message(task.to_bytes(), max_packet_bytes, run=task.run)
    if len(chunks) != 1:
        raise TaskTooLarge(
            f"the round task ({len(task.selected)} selected clients) does not fit one packet of "
            f"{max_packet_bytes} bytes; raise --max-packet-bytes or lower --clients-per-round"
        )
    return [Outgoing(topics.task, chunks[0], retain=True)]


def ack_packets(topics: Topics, ack: Ack, max_packet_bytes: int) -> list[Outgoing]:
    chunks = split_message(ack.to_bytes(), max_packet_bytes, run=ack.run)
    return [Outgoing(topics.ack(ack.client_id), c) for c in chunks]
