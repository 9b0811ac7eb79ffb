"""One update's way in on any gateway node: bytes counted, chunks reassembled, ingested, answered.

The coordinator (``engine.py``) and each worker (``topology/worker.py``) take an update the same way:
``receive`` turns an update chunk into a ``Verdict`` (``UpdateIngest`` runs the checks, the write-ahead log
and the strategy), ``answer`` turns the verdict into the round's rejection counters, the observer's figures,
a log line and the Ack. What a node does next differs and stays its own: the coordinator may close its
round, a worker reports the client to its coordinator.
"""

from __future__ import annotations

import logging

from fmfl.aggregator.core.ingest import UpdateIngest, Verdict
from fmfl.aggregator.core.observer import RoundObserver
from fmfl.aggregator.core.outbound import Outgoing, ack_packets
from fmfl.aggregator.core.round_state import OpenRound
from fmfl.failpoints import failpoint
from fmfl.protocol import Ack, Limits, ProtocolError, Reassembler, Topics

log = logging.getLogger(__name__)

#: the SIGKILL trial of a gateway dying between an update's chunks (tests/faults) waits this long at the
#: failpoint so that paho's network thread has sent the PUBACKs of the chunks buffered before it
CHUNK_SETTLE_S = 0.5


def reassembler_for(limits: Limits, *, reassembly_bytes: int | None = None, max_pending: int = 1024) -> Reassembler:
    """A reassembler with room for four whole messages of this model (64 MiB at least): the chunks of
    several devices' updates interleave on one subscription."""
    budget = reassembly_bytes or max(64 * 2**20, 4 * limits.max_message_bytes)
    return Reassembler(budget, max_pending_messages=max_pending)


class UpdateIntake:
    """``receive`` and ``answer`` for one node's update topics."""

    def __init__(self, topics: Topics, reassembler: Reassembler, observer: RoundObserver, max_packet_bytes: int):
        self.topics = topics
        self.reassembler = reassembler
        self.observer = observer
        self.max_packet_bytes = max_packet_bytes

    def receive(self, sender: str, topic: str, payload: bytes, ingest: UpdateIngest,
                accepting: OpenRound | None, current: OpenRound | None) -> Verdict | None:
        """One chunk of ``sender``'s update; ``None`` while the message is incomplete.

        ``accepting``: the round updates may join now (None while closing); ``current``: the open round,
        whose byte counter counts every chunk.
        """
        if current is not None:
            current.count("bytes_up", len(payload))
        self.observer.bytes_in(len(payload))
        try:
            data = self.reassembler.add(payload, source=topic)
        except ProtocolError as exc:
            return Verdict(False, exc.reason)
        if data is None:
            failpoint("aggregator.update_chunk_buffered", settle_s=CHUNK_SETTLE_S)
            return None
        return ingest.ingest(sender, data, accepting)

    def answer(self, sender: str, verdict: Verdict, current: OpenRound | None, run: int | None) -> list[Outgoing]:
        """Count and log the verdict; the Ack to send (none when the update cannot be identified)."""
        target = verdict.ack_target
        if verdict.counted:
            self.observer.update_accepted(len(verdict.update.payload) if verdict.update else 0, late=verdict.late)
        elif not verdict.accepted:
            if current is not None:
                current.reject(verdict.reason)
            self.observer.update_rejected(verdict.reason)
            log.warning("update %s from %s rejected: %s (%s)%s", target[0] if target else "(no update id)", sender,
                        verdict.reason, verdict.detail, "" if target else "; no Ack: the sender cannot be told")
        if target is None:
            return []
        ack = Ack(sender, target[1], target[0], verdict.accepted, verdict.reason, verdict.detail, run=run)
        return ack_packets(self.topics, ack, self.max_packet_bytes)
