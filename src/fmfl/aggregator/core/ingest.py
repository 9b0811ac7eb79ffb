"""One client update, from its reassembled bytes to a verdict: accepted (logged, folded in) or refused.

The checks run cheapest first and nothing is changed until all have passed:

1. parse the ClientUpdate (framing, metadata; either form, JSON or compact). A refusal here is still
   Acked when the metadata names a valid update id (``salvage_update_id``): a device whose update is
   malformed for good (``num_samples: 1.5``) must hear so, or it resends it forever;
2. the sender: ``client_id`` must be the one in the topic;
   2b. with a device registry (``verifier``, see ``fmfl.trust``): the sender is a known, active device
   and signed this update (``unknown_device``, ``revoked_device``, ``unsigned``, ``bad_signature``);
   before the dedupe, so a forged resend of a real update id is not acknowledged;
3. a resend of an update already accepted (in the write-ahead log, or journaled in an earlier
   round): Ack it again as accepted, count nothing; another update carrying a nonce already
   accepted from this client is a replay (``replayed_nonce``);
4. the run (protocol 1.2: an update naming another run is ``wrong_run``), federation, bundle, round and
   version, selection; a late update of an earlier round is refused
   as ``stale_round`` or, in async mode, folded into this round with FedBuff's staleness weight;
5. decode the payload (bounded by the manifest's vector size), validate it (``strategy.check``);
6. append it to the write-ahead log, then ``strategy.accept``;
7. commit the log (fsync), then journal the update's metrics.

Only after step 7 does the engine publish the Ack and the adapter acknowledge the MQTT packet. Every
refusal carries a ``detail``: what the gateway expected and what it got, in words, for the Ack.

Group commit: inside ``with ingest.group():`` step 7 waits for the end of the block (or ``flush``), so
the updates judged in it share one commit and one fsync. The journal rows follow the commit because
the journal (not fsynced) would otherwise name an update the log lost in a power cut, and a resend of
it would be acknowledged as a duplicate without being counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from fmfl.aggregation.staleness import staleness_weight
from fmfl.aggregation.strategy import Strategy
from fmfl.aggregation.validation import RejectedUpdate
from fmfl.aggregator.core.round_config import RoundConfig
from fmfl.aggregator.core.round_state import OpenRound
from fmfl.aggregator.durable.journal import AcceptedRow, RoundJournal
from fmfl.aggregator.durable.wal import UpdateLog
from fmfl.failpoints import failpoint
from fmfl.protocol import ClientUpdate, Limits, ProtocolError, RoundTask, decode_update
from fmfl.protocol.messages import MAX_REASON_CHARS, salvage_update_id
from fmfl.protocol.reasons import NOT_ACKED, AckReason

log = logging.getLogger(__name__)

# Verifier refusals that say nothing about the update (fmfl.trust.update_signing.REGISTRY_UNREADABLE).
GATEWAY_FAULTS = NOT_ACKED
R = AckReason  # every refusal below names one

#: checks an update's signature (``fmfl.trust.UpdateVerifier.check``): ``None`` when it may be counted, else why not
SignatureCheck = Callable[[ClientUpdate], str | None]


@dataclass(frozen=True)
class Verdict:
    """What happened to one update. ``update`` is None when it could not even be parsed."""

    accepted: bool
    reason: AckReason | Literal[""] = ""  # "" when accepted
    update: ClientUpdate | None = None
    duplicate: bool = False  # a resend of an update already accepted: acked again, counted once
    late: bool = False  # accepted into a later round (async mode)
    detail: str = ""  # why, in words (expected vs got); "" when accepted
    salvaged: tuple[str, int] | None = None  # (update id, round) of an update that failed to parse

    @property
    def counted(self) -> bool:
        return self.accepted and not self.duplicate

    @property
    def ack_target(self) -> tuple[str, int] | None:
        """``(update id, round)`` to Ack, or None when the update cannot be identified (no Ack)."""
        if self.update is not None:
            return self.update.update_id, self.update.round
        return self.salvaged


@dataclass
class StageTimes:
    """Seconds spent per ingestion stage (for the 1,000-client benchmark's breakdown)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - start
        return now


def _refuse(reason: AckReason, update: ClientUpdate | None = None, detail: str = "") -> Verdict:
    return Verdict(False, reason, update, detail=_clip(detail))


def _clip(text: str) -> str:
    """At most MAX_REASON_CHARS UTF-8 bytes (the Ack's bound), cut at a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= MAX_REASON_CHARS:
        return text
    return raw[: MAX_REASON_CHARS - 3].decode("utf-8", "ignore") + "..."


class UpdateIngest:
    """The update pipeline of one run; the engine owns it and passes in the open round."""

    def __init__(
        self,
        *,
        config: RoundConfig,
        bundle_id: str,
        size: int,
        limits: Limits,
        strategy: Strategy,
        wal: UpdateLog,
        journal: RoundJournal,
        is_known: Callable[[str], bool] = lambda client_id: True,
        held_elsewhere: Callable[[str], tuple[str, str] | None] = lambda client_id: None,
        verifier: SignatureCheck | None = None,
    ) -> None:
        self.config = config
        self.bundle_id = bundle_id
        self.size = size
        self.limits = limits
        self.strategy = strategy
        self.wal = wal
        self.journal = journal
        self.is_known = is_known
        self.held_elsewhere = held_elsewhere
        self.verifier = verifier
        self.run: int | None = None  # this gateway's run (protocol 1.2); None: no run check
        self.times = StageTimes()
        self.grouped = False  # inside ``group()``: accepted updates wait for one shared commit
        self._unjournaled: list[AcceptedRow] = []  # accepted, their journal rows wait for the commit
        self._counters: dict[str, int] = {}  # the open round's counters, journaled with those rows

    @contextmanager
    def group(self) -> Iterator[None]:
        """Updates ingested inside the block share one write-ahead log commit (one fsync), made when it
        ends or at ``flush``; nothing may acknowledge them before. On an error the block's updates are
        committed too: the strategy already holds them, and the log must hold what the strategy holds."""
        if self.grouped:  # nested: the outer block commits
            yield
            return
        self.grouped = True
        try:
            yield
        finally:
            self.grouped = False
            self.flush()

    def flush(self) -> int:
        """Make the updates accepted so far durable (one commit), then journal them; how many it committed."""
        committed = 0
        if self.wal.pending:
            failpoint("aggregator.before_wal_commit")  # appended and folded in, not durable: no Ack may exist
            t = time.perf_counter()
            committed = self.wal.commit()
            self.times.add("commit", t)
            failpoint("aggregator.after_wal_commit")  # durable, not journaled, no Ack sent
        else:
            self.wal.commit()  # a prune or other write made inside the group
        rows, self._unjournaled = self._unjournaled, []
        t = time.perf_counter()
        self.journal.record_accepted_many(rows, self._counters)
        self.times.add("journal", t)
        return committed

    def ingest(self, sender: str, data: bytes, open_round: OpenRound | None) -> Verdict:
        """Judge the reassembled message ``data`` that arrived on ``update/{sender}``."""
        t = time.perf_counter()
        try:
            update = ClientUpdate.decode(
                data, self.limits, federation=self.config.federation, client_id=sender, bundle_id=self.bundle_id
            )
        except ProtocolError as exc:
            salvaged = salvage_update_id(data, self.limits)
            return Verdict(False, exc.reason, detail=_clip(exc.message), salvaged=salvaged)
        t = self.times.add("parse", t)
        if update.client_id != sender:
            return _refuse(R.CLIENT_MISMATCH, update, f"client_id {update.client_id!r} on the topic of {sender!r}")
        if self.verifier is not None:
            refusal = self.verifier(update)
            t = self.times.add("verify", t)
            if refusal:
                # A registry the gateway cannot read is its own fault, not the update's: no Ack (a refusal
                # would make the device drop the update from its outbox), so the device resends it later.
                sender_update = None if refusal in GATEWAY_FAULTS else update
                return _refuse(AckReason(refusal), sender_update, _VERIFIER_DETAIL.get(refusal, ""))
        # A resend whose Ack was lost: the same answer again, and nothing counted twice.
        uid = update.update_id
        if self.wal.contains(uid) or self.journal.accepted_round_of(uid) is not None:
            return Verdict(True, "", update, duplicate=True)
        if update.nonce is not None and self._nonce_owner(update.client_id, update.nonce) not in (None, uid):
            return _refuse(R.REPLAYED_NONCE, update, f"nonce {update.nonce} was already accepted with another update")
        held = self.held_elsewhere(update.client_id)  # scale-out: another worker accepted it
        if held is not None:
            if held[1] == uid:
                return Verdict(True, "", update, duplicate=True)
            return _refuse(R.DUPLICATE_CLIENT, update, f"another update of {update.client_id!r} counts this round")
        t = self.times.add("dedupe", t)
        if update.run is not None and self.run is not None and update.run != self.run:
            return _refuse(R.WRONG_RUN, update, f"run {update.run}, this gateway runs {self.run}")
        if update.federation != self.config.federation:
            expected = self.config.federation
            return _refuse(R.WRONG_FEDERATION, update, f"federation {update.federation!r}, expected {expected!r}")
        if update.bundle_id != self.bundle_id:
            return _refuse(R.WRONG_BUNDLE, update, f"bundle {update.bundle_id!r}, expected {self.bundle_id!r}")
        if open_round is None:
            return _refuse(R.NO_OPEN_ROUND, update, f"round {update.round}: no round is open")
        weight, late, refusal, detail = self._check_round(update, open_round)
        if refusal is not None:
            return _refuse(refusal, update, detail)
        try:
            sparse = decode_update(update.payload, self.size, self.limits)
        except ProtocolError as exc:
            return _refuse(exc.reason, update, f"payload: {exc.message}")
        t = self.times.add("decode", t)
        try:
            valid = self.strategy.check(sparse, weight, update.client_id)
            t = self.times.add("validate", t)
            stored = self.wal.append(
                round=open_round.round,
                client_id=update.client_id,
                update_id=update.update_id,
                weight=valid.weight,
                indices=valid.indices,
                values=valid.values,
                size=self.size,
                nonce=update.nonce,
                commit=not self.grouped,
            )
            t = self.times.add("wal", t)
            failpoint("aggregator.after_wal_append")  # logged (durable unless grouped), not folded in nor journaled
            if stored:  # False only if the same update id raced in: already folded in
                self.strategy.add(valid)  # checked above: not validated again
            t = self.times.add("accumulate", t)
        except RejectedUpdate as exc:
            return _refuse(exc.reason, update, exc.detail)
        if late:
            open_round.count("late")
        open_round.count("accepted_bytes", len(data))
        self._unjournaled.append(
            AcceptedRow(
                update_id=update.update_id,
                round=open_round.round,
                client_id=update.client_id,
                update_round=update.round,
                bytes=len(data),
                num_samples=update.num_samples,
                metrics=dict(update.metrics),
                nonce=update.nonce,
            )
        )
        self._counters = open_round.counters
        if not self.grouped:
            self.flush()
        return Verdict(True, "", update, late=late)

    def _nonce_owner(self, client_id: str, nonce: str) -> str | None:
        """The update id already accepted with this nonce: the WAL holds the open round (fsynced before
        the journal row, so it also covers a crash between the two), the journal the rounds before."""
        return self.wal.update_with_nonce(client_id, nonce) or self.journal.update_with_nonce(client_id, nonce)

    def _check_round(self, update: ClientUpdate, open_round: OpenRound) -> tuple[float, bool, AckReason | None, str]:
        """``(weight, late, refusal, detail)``: the sample-count weight, or why the round refuses it."""
        r, v = open_round.round, open_round.version
        if update.round == r:
            if update.model_version != v:
                return _no(R.WRONG_VERSION, f"model_version {update.model_version}, round {r} trains version {v}")
            if update.client_id not in open_round.selected:
                if self.is_known(update.client_id):
                    return _no(R.NOT_SELECTED, f"round {r} did not select {update.client_id!r}")
                return _no(R.UNKNOWN_CLIENT, f"{update.client_id!r} never said hello; round {r} did not select it")
            return float(update.num_samples), False, None, ""
        if update.round > r:
            return _no(R.WRONG_ROUND, f"round {update.round}, the open round is {r}")
        if not self.config.async_mode:
            return _no(R.STALE_ROUND, f"round {update.round} is over; the open round is {r}")
        return self._check_late(update, open_round)

    def _check_late(self, update: ClientUpdate, open_round: OpenRound) -> tuple[float, bool, AckReason | None, str]:
        """Async mode (FedBuff, Nguyen et al. 2022): an update for an earlier round joins this one,
        weighted ``num_samples / sqrt(1 + staleness)``, if that round really asked this client for
        it on the version it names."""
        past = self.journal.round(update.round)
        if past is None:
            return _no(R.STALE_ROUND, f"round {update.round} is too old; the open round is {open_round.round}")
        task = RoundTask.from_bytes(past.task, self.limits)
        if update.client_id not in task.selected:
            return _no(R.NOT_SELECTED, f"round {update.round} did not select {update.client_id!r}")
        if update.model_version != task.model_version:
            got, want = update.model_version, task.model_version
            return _no(R.WRONG_VERSION, f"model_version {got}, round {update.round} trained version {want}")
        staleness = open_round.version - update.model_version
        if staleness > self.config.max_staleness:
            return _no(R.TOO_STALE, f"staleness {staleness} > --max-staleness {self.config.max_staleness}")
        if update.num_samples <= 0:
            return _no(R.WEIGHT, f"num_samples {update.num_samples}, expected >= 1")
        return staleness_weight(float(update.num_samples), staleness), True, None, ""


def _no(reason: AckReason, detail: str) -> tuple[float, bool, AckReason | None, str]:
    return 0.0, False, reason, detail


_VERIFIER_DETAIL = {
    "unknown_device": "the sender is not in the gateway's device registry",
    "revoked_device": "the sender's key is revoked in the gateway's device registry",
    "unsigned": "the gateway requires signed updates (nonce and sig)",
    "bad_signature": "the signature does not verify with the sender's registered key",
}
