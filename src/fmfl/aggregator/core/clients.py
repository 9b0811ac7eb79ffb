"""Which devices exist, which are online, and which a round invites.

The registry is built from ClientHello (capabilities, bundle id) and ClientStatus (online/offline,
the offline one usually being the device's retained MQTT will). Selection is uniform at random among
registered, online devices that fit, inviting ``ceil(K * over_select)`` so that stragglers and
drop-outs do not stall the round (over-selection: Bonawitz et al., "Towards Federated Learning at
Scale", SysML 2019, section 2.2). The random draw is seeded by ``(seed, round)`` so a run is
reproducible and a resumed round would draw the same set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from fmfl.aggregator.core.requirements import Requirement
from fmfl.protocol import ClientHello
from fmfl.protocol.fields import Capability


@dataclass
class ClientRecord:
    """What the gateway knows about one device."""

    client_id: str
    capabilities: dict[str, Capability] = field(default_factory=dict)
    bundle_id: str | None = None
    registered: bool = False  # a hello was received (else known from its status only)
    online: bool = False


class ClientRegistry:
    """Devices by id; ``eligible`` is the pool a round selects from."""

    def __init__(self, bundle_id: str, requirements: Iterable[Requirement] = ()) -> None:
        self.bundle_id = bundle_id
        self.requirements = tuple(requirements)
        self._clients: dict[str, ClientRecord] = {}
        # Kept beside the records: counting them on every hello made 10,000 connecting devices quadratic.
        self._online: set[str] = set()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, client_id: str) -> ClientRecord | None:
        return self._clients.get(client_id)

    def device_kind(self, client_id: str) -> str | None:
        """What the device called itself in its hello (``capabilities.device_kind``: "python", "web", ...)."""
        record = self._clients.get(client_id)
        kind = None if record is None else record.capabilities.get("device_kind")
        return kind if isinstance(kind, str) else None

    def on_hello(self, hello: ClientHello) -> ClientRecord:
        """A hello registers the device and means it is connected right now."""
        record = self._clients.setdefault(hello.client_id, ClientRecord(hello.client_id))
        record.capabilities = dict(hello.capabilities)
        record.bundle_id = hello.bundle_id
        record.registered = True
        self._set_online(record, True)
        return record

    def on_status(self, client_id: str, online: bool) -> ClientRecord:
        record = self._clients.setdefault(client_id, ClientRecord(client_id))
        self._set_online(record, online)
        return record

    def restore(self, record: ClientRecord) -> None:
        """Put back a record saved before a restart (a 1.1 device's hello is not retained by the broker)."""
        self._clients[record.client_id] = record
        self._set_online(record, record.online)

    def _set_online(self, record: ClientRecord, online: bool) -> None:
        record.online = online
        if online:
            self._online.add(record.client_id)
        else:
            self._online.discard(record.client_id)

    @property
    def online_count(self) -> int:
        return len(self._online)

    def fits(self, record: ClientRecord) -> bool:
        """Holding our bundle (or not saying) and meeting every requirement.

        A device known only from its retained online status (a 1.1 device that said hello before this gateway
        first subscribed: 1.1 hellos are not retained) is taken on trust when nothing is required; with
        ``--require`` it must have said hello, since only a hello states capabilities.
        """
        if not record.registered:
            return not self.requirements
        if record.bundle_id is not None and record.bundle_id != self.bundle_id:
            return False
        return all(req.fits(record.capabilities) for req in self.requirements)

    def eligible(self) -> list[str]:
        """Online devices that fit, sorted (so a seeded draw does not depend on arrival order)."""
        return sorted(cid for cid in self._online if self.fits(self._clients[cid]))


def select_clients(eligible: list[str], count: int, *, seed: int, round: int) -> tuple[str, ...]:
    """``min(count, len(eligible))`` distinct ids drawn uniformly, reproducibly from ``(seed, round)``."""
    if count >= len(eligible):
        return tuple(eligible)
    rng = np.random.default_rng([seed, round])
    picked = rng.choice(len(eligible), size=count, replace=False)
    return tuple(eligible[int(i)] for i in sorted(picked.tolist()))
