"""What the gateway publishes, as data (``Outgoing``): the engine returns these and the MQTT adapter sends them.

Every payload is one chunk of one framed message (``split_message``), as the protocol requires of
every fmfl topic, even for messages that fit one packet.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from fmfl.aggregation.sparse import Float32Array
from fmfl.aggregator.core.clients import select_clients
from fmfl.aggregator.core.downlink import GlobalDelta
from fmfl.errors import FmflError
from fmfl.protocol import Ack, GlobalModel, RoundTask, Topics, UpdateEncoder, split_message

# Re-exported: the gateway's callers import it from here; the device session shares it (a lower tier is a device).
from fmfl.protocol.outgoing import Outgoing as Outgoing

log = logging.getLogger(__name__)


def global_model_packets(
    topics: Topics,
    bundle_id: str,
    version: int,
    weights: Float32Array,
    max_packet_bytes: int,
    run: int | None = None,
    weights_sha256: str | None = None,
    deltas: bool = False,
) -> list[Outgoing]:
    """The dense global weights of ``version`` as retained chunks on ``global/{i}``, tagged with ``run``;
    ``deltas``: the gateway publishes later versions as deltas too (docs/protocol.md 2b)."""
    encoder = UpdateEncoder("dense", int(weights.shape[0]))
    payload = encoder.encode(np.ascontiguousarray(weights, dtype=np.float32))
    message = GlobalModel(bundle_id=bundle_id, model_version=version, base_version=None, payload=payload, run=run,
                          weights_sha256=weights_sha256, deltas=deltas or None)
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


def fit_selection(task: RoundTask, eligible: list[str], *, seed: int, max_packet_bytes: int) -> RoundTask:
    """``task``, or, when its selection list makes it too large for one packet, the same task selecting as
    many clients as fit, drawn as ``select_clients`` draws (uniformly, reproducibly from the seed and round).

    The task topic holds one retained message, so the task must fit one packet. A gateway whose fleet grew
    past what ``--max-packet-bytes`` can name used to stop mid-run; it now runs smaller rounds and says so.
    """
    if _fits(task, max_packet_bytes):
        return task
    fits, too_many = 0, len(task.selected)  # the largest count known to fit, the smallest known not to
    while too_many - fits > 1:
        count = (fits + too_many) // 2
        if _fits(_selecting(task, eligible, count, seed), max_packet_bytes):
            fits = count
        else:
            too_many = count
    if fits == 0:
        raise TaskTooLarge(
            f"the round task does not fit one packet of {max_packet_bytes} bytes even with one selected client"
        )
    log.warning(
        "round %d: a task naming all %d selected clients does not fit one packet of %d bytes; selected %d "
        "instead (raise --max-packet-bytes or lower --clients-per-round)",
        task.round, len(task.selected), max_packet_bytes, fits,
    )
    return _selecting(task, eligible, fits, seed)


def _selecting(task: RoundTask, eligible: list[str], count: int, seed: int) -> RoundTask:
    return replace(task, selected=select_clients(eligible, count, seed=seed, round=task.round))


def _fits(task: RoundTask, max_packet_bytes: int) -> bool:
    return len(split_message(task.to_bytes(), max_packet_bytes, run=task.run)) == 1


def task_packets(topics: Topics, task: RoundTask, max_packet_bytes: int) -> list[Outgoing]:
    """The retained RoundTask, one packet (``fit_selection`` made sure it fits): the task topic holds one
    retained message. A task that does not fit is ``TaskTooLarge``, raised before anything is journaled."""
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
