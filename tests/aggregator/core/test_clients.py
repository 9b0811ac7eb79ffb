"""The client registry: who is online and eligible, through hellos, status messages and a restart."""

from __future__ import annotations

import random

from fmfl.aggregator.core.clients import ClientRecord, ClientRegistry
from fmfl.aggregator.core.requirements import Requirement
from fmfl.protocol import ClientHello


def _recount(registry: ClientRegistry, ids: list[str]) -> tuple[int, list[str]]:
    """The registry's answers recomputed from its records one by one (what it keeps incrementally)."""
    records = [r for r in (registry.get(c) for c in ids) if r is not None]
    online = [r for r in records if r.online]
    return len(online), sorted(r.client_id for r in online if registry.fits(r))


def test_online_count_and_eligible_follow_every_hello_status_and_restore() -> None:
    rng = random.Random(7)
    ids = [f"d{i}" for i in range(40)]
    registry = ClientRegistry("b1")
    for _ in range(2_000):
        cid, action = rng.choice(ids), rng.random()
        if action < 0.4:
            registry.on_hello(ClientHello(cid, {"cores": 2}, bundle_id=rng.choice(["b1", "b1", "other"])))
        elif action < 0.9:
            registry.on_status(cid, rng.random() < 0.5)
        else:
            registry.restore(ClientRecord(cid, {}, "b1", registered=True, online=rng.random() < 0.5))
        assert (registry.online_count, registry.eligible()) == _recount(registry, ids)
    assert registry.online_count > 0  # the walk above did visit online devices


def test_a_device_known_only_from_its_status_is_eligible_unless_something_is_required() -> None:
    plain, strict = ClientRegistry("b1"), ClientRegistry("b1", [Requirement.parse("memory_mb>=512")])
    for registry in (plain, strict):
        registry.on_status("a", True)
    assert plain.eligible() == ["a"]
    assert strict.eligible() == []
    assert strict.online_count == 1
