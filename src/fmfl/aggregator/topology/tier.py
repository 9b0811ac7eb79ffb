"""Tiered aggregation: this gateway is one client of a parent gateway.

A site gateway (federation ``site-a``) serves its own devices and, towards the parent (federation
``top``), behaves exactly like a device: it says hello, waits for a RoundTask selecting it, trains
(= runs one local round on the parent's global model) and sends one ClientUpdate: the local
sample-weighted mean delta, with ``num_samples`` = the local total weight. The parent's FedAvg over
its gateways is then the FedAvg over every device below them (Σ_g N_g mean_g / Σ_g N_g = Σ_i n_i d_i /
Σ_i n_i), up to the float32 rounding of each gateway's mean on the wire (``dense`` codec; a lossy
``--upstream-codec`` trades that for bytes). Only the FedAvg family composes this way, so the lower
tier must run one of them; the parent may run any rule, each gateway being one client to it.

Both tiers' topics can live on one broker (different federations), or on two brokers joined by an
MQTT bridge that forwards ``fmfl/{parent}/#`` (docs/scaling.md): this gateway keeps one connection.

Crash safety: the update sent upstream is written to ``upstream-pending.bin`` before it is published
and resent until the parent's Ack arrives, across restarts; the parent deduplicates by update id.

The device side of the protocol (hello, status and will, runs, tasks, the parent's global model, Acks,
resends) is ``fmfl.edge_client.session.DeviceSession``, the one the edge client runs: this class is its
adapter, with the model held in memory and a one-update outbox in the state folder. It holds ``global/+``
for good (its subscriptions are fixed when the gateway connects), so it never asks for downlink deltas.

Signed updates: with ``signing_key`` (the ``signing.key`` this gateway got as a device of the parent
federation) the update is signed before it is written, so a parent running ``--device-registry`` accepts
it and a resend is the same signed bytes. The devices' own signatures end at this tier: the mean is a new
message, signed by the gateway that computed it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.aggregation.accumulator import WeightedSum
from fmfl.aggregation.sparse import Float32Array
from fmfl.aggregator.core.intake import reassembler_for
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.durable import atomic_write
from fmfl.edge_client.held_model import HeldModel
from fmfl.edge_client.session import DeviceSession, SessionConfig
from fmfl.errors import ConfigError, FmflError
from fmfl.protocol import (
    ClientUpdate,
    CodecSpec,
    Limits,
    ProtocolError,
    RoundTask,
    Topics,
    UpdateEncoder,
    check_id,
    new_update_id,
)

log = logging.getLogger(__name__)

PENDING_FILE = "upstream-pending.bin"
STATE_FILE = "upstream.json"
DOWNLINK_FILE = "upstream-downlink.json"  # what the parent sent us, by kind (the device's downlink.json)


@dataclass(frozen=True)
class UpstreamConfig:
    """Where the parent is (its federation on this broker) and who we are to it."""

    federation: str
    client_id: str
    codec: str = "dense"
    resend_s: float = 10.0
    signing_key: Path | None = None  # sign each upstream update (a parent with --device-registry)

    def __post_init__(self) -> None:
        try:
            check_id(self.federation, "upstream federation")
            check_id(self.client_id, "upstream client id")
            CodecSpec.parse(self.codec)
        except ProtocolError as exc:
            raise ConfigError(str(exc)) from exc


@dataclass(frozen=True)
class _Sent:
    """The one update this tier has sent upstream and the parent has not acknowledged (a ``PendingUpdate``)."""

    update: ClientUpdate
    message: bytes

    @property
    def round(self) -> int:
        return self.update.round

    @property
    def update_id(self) -> str:
        return self.update.update_id


class UpstreamOutbox:
    """The session's ``Outbox``: the parent round answered last (``upstream.json``) and the update not yet
    acknowledged (``upstream-pending.bin``), both written atomically, so a restart resends the same bytes."""

    def __init__(self, state_dir: Path, limits: Limits) -> None:
        self.state_dir = state_dir
        path = state_dir / STATE_FILE
        self.last_round = int(json.loads(path.read_text())["answered_round"]) if path.exists() else 0
        self.sent: _Sent | None = None
        pending = state_dir / PENDING_FILE
        if pending.exists():
            message = pending.read_bytes()
            try:
                self.sent = _Sent(ClientUpdate.from_bytes(message, limits), message)
            except ProtocolError as exc:
                raise FmflError(f"{pending} is corrupt ({exc}); remove it to drop that update") from exc

    def pending(self) -> list[_Sent]:
        return [] if self.sent is None else [self.sent]

    def acknowledge(self, update_id: str) -> bool:
        if self.sent is None or self.sent.update_id != update_id:
            return False
        self.sent = None
        (self.state_dir / PENDING_FILE).unlink(missing_ok=True)
        return True

    def answer(self, round_: int) -> None:
        """Parent round ``round_`` is answered (once, even if the local round fails)."""
        self.last_round = round_
        atomic_write(self.state_dir / STATE_FILE, json.dumps({"answered_round": round_}).encode())

    def commit(self, update: ClientUpdate) -> bytes:
        """Keep ``update`` until the parent acknowledges it (written before it can be); its wire bytes."""
        message = update.to_bytes()
        atomic_write(self.state_dir / PENDING_FILE, message)
        self.sent = _Sent(update, message)
        return message


class UpstreamTier:
    """The parent-facing side of a lower-tier gateway (no MQTT inside; the engine routes to it)."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        bundle_id: str,
        size: int,
        state_dir: Path,
        max_packet_bytes: int,
        capabilities: dict[str, str | int] | None = None,
    ) -> None:
        self.config = config
        self.bundle_id = bundle_id
        self.size = size
        self.limits = Limits.for_vector_size(size)
        self.topics = Topics(config.federation)
        self.state_dir = state_dir
        self._signing_key: Any = None
        if config.signing_key is not None:
            from fmfl.trust.update_signing import load_signing_key

            self._signing_key = load_signing_key(config.signing_key)
        self.outbox = UpstreamOutbox(state_dir, self.limits)
        session_config = SessionConfig(
            federation=config.federation, client_id=config.client_id, bundle_id=bundle_id,
            max_packet_bytes=max_packet_bytes, resend_after=config.resend_s,
            capabilities=dict(capabilities or {"role": "gateway"}), downlink_deltas=False,
        )  # fmt: skip
        self.session = DeviceSession(
            session_config, HeldModel(size, state_dir), self.outbox, self.limits,
            counter_path=state_dir / DOWNLINK_FILE,
            reassembler=reassembler_for(self.limits, max_pending=64),
        )  # fmt: skip

    @property
    def answered_round(self) -> int:
        return self.outbox.last_round

    @property
    def _pending(self) -> ClientUpdate | None:
        """The update the parent has not acknowledged yet (tests read it)."""
        return None if self.outbox.sent is None else self.outbox.sent.update

    # --- MQTT surface ------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        return self.session.subscriptions()

    def owns(self, topic: str) -> bool:
        return topic.startswith(self.topics.root + "/")

    def start(self) -> list[Outgoing]:
        """Announce ourselves to the parent (online status, then the hello, both retained), resend a pending
        update."""
        return self.session.connected(time.time())

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        return self.session.handle(topic, payload, time.time())

    def will(self) -> tuple[str, bytes]:
        """The MQTT will: offline on our status topic at the parent, as a device's."""
        return self.session.will()

    # --- rounds ------------------------------------------------------------------------------------

    def ready(self, now: float) -> tuple[RoundTask, Float32Array] | None:
        """The parent's task selecting us that we have not answered, with its model, if both are here."""
        return self.session.ready(now)

    def begin(self, task: RoundTask) -> None:
        """A local round now works for the parent's round ``task.round`` (answered once, even if it fails)."""
        self.outbox.answer(task.round)

    def forward(self, task: RoundTask, total: WeightedSum, metrics: dict[str, float]) -> list[Outgoing]:
        """Send the local round's weighted mean delta upstream as one ClientUpdate."""
        mean = (total.sum / total.total_weight).astype(np.float32)
        payload = UpdateEncoder(self.config.codec, self.size, seed=task.seed).encode(mean)
        update = ClientUpdate(
            federation=self.config.federation,
            bundle_id=self.bundle_id,
            round=task.round,
            model_version=task.model_version,
            client_id=self.config.client_id,
            num_samples=max(1, round(total.total_weight)),
            update_id=new_update_id(),
            payload=payload,
            metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
            run=task.run,  # the parent's run (protocol 1.2), so a newer parent run refuses it as wrong_run
        )
        if self._signing_key is not None:
            from fmfl.trust.update_signing import sign_update

            update = sign_update(update, self._signing_key)
        return self.session.upload(self.outbox.commit(update), time.time())  # committed before it can be acked

    def tick(self) -> list[Outgoing]:
        """Resend the pending update until the parent acknowledges it."""
        return self.session.tick(time.time())
