"""Tiered aggregation without a broker: two site gateways under a parent equal flat FedAvg; the
update sent upstream survives a restart until the parent acknowledges it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import LIMITS, SIZE, T0, Bus, Harness, fedavg, frames, make_update

from fmfl.aggregation.accumulator import WeightedSum
from fmfl.aggregator.topology.parent import ParentTier
from fmfl.aggregator.topology.tier import PENDING_FILE, UpstreamConfig, UpstreamTier
from fmfl.errors import FmflError
from fmfl.protocol import Ack, ClientUpdate, GlobalModel, Reassembler, RoundTask, UpdateEncoder, decode_update


def delta(cid: str, rnd: int) -> np.ndarray:
    rng = np.random.default_rng([rnd, sum(map(ord, cid))])
    return (rng.standard_normal(SIZE) * 0.01).astype(np.float32)


def local_task(bus: Bus, site: Harness) -> RoundTask:
    return RoundTask.from_bytes(Reassembler(2**20).add(bus.retained[site.topics.task]), LIMITS)


def test_two_sites_under_a_parent_equal_flat_fedavg(tmp_path: Path) -> None:
    top = Harness(tmp_path / "top", federation="top", rounds=2, clients_per_round=2, min_clients=2, codec="dense")
    bus = Bus(share_group=None)
    bus.add("top", top.engine)
    bus.publish("top", top.out)
    sites: dict[str, Harness] = {}
    samples = {"a-0": 3, "a-1": 5, "b-0": 7, "b-1": 11}
    for s in ("a", "b"):
        sites[s] = Harness(
            tmp_path / s, federation=f"site-{s}", rounds=1, clients_per_round=2, min_clients=2,
            codec="topk:0.5+int8", upstream=UpstreamConfig("top", f"gw-{s}"),
        )  # fmt: skip
        bus.add(s, sites[s].engine)
        bus.publish(s, sites[s].out)  # its global model, and hello + status to the parent
        sites[s].register(f"{s}-0", f"{s}-1")
    assert sorted(top.engine.registry.eligible()) == ["gw-a", "gw-b"]
    expected = top.initial
    for rnd in (1, 2):
        bus.publish("top", top.engine.tick(T0))  # opens round rnd; the sites open local rounds
        sent = []
        for s, site in sites.items():
            task = local_task(bus, site)
            assert (task.round, task.model_version) == (rnd, rnd - 1)
            for cid in (f"{s}-0", f"{s}-1"):
                update, decoded = make_update(task, cid, delta(cid, rnd), num_samples=samples[cid])
                acks = bus.update(s, site.topics.update(cid), frames(update))
                assert len(acks) == 1
                sent.append((decoded, float(samples[cid])))
        assert top.engine.version == rnd
        expected = fedavg(expected, sent)
        np.testing.assert_allclose(top.engine.store.load_weights(rnd)[1], expected, rtol=1e-5, atol=1e-6)
        for site in sites.values():
            assert isinstance(site.engine.source, ParentTier)
            assert site.engine.source.upstream._pending is None  # the parent acknowledged every forward


def test_the_upstream_update_is_the_weighted_mean_and_survives_a_restart(tmp_path: Path) -> None:
    cfg = UpstreamConfig("top", "gw-a")
    tier = UpstreamTier(cfg, bundle_id="b1", size=SIZE, state_dir=tmp_path, max_packet_bytes=128 * 1024)
    task = RoundTask("top", "b1", 4, 3, ("gw-a",), 8, 0.1, "dense", 2e9, 1, local_epochs=1)
    total = WeightedSum(SIZE)
    idx = np.arange(SIZE, dtype=np.int64)
    total.add(idx, np.full(SIZE, 1.0, np.float32), 3.0)
    total.add(idx, np.full(SIZE, 2.0, np.float32), 1.0)
    (sent,) = tier.forward(task, total, {"eval_accuracy": 0.5})
    update = ClientUpdate.from_bytes(Reassembler(2**20).add(sent.payload), LIMITS)
    assert (update.round, update.model_version, update.num_samples, update.client_id) == (4, 3, 4, "gw-a")
    np.testing.assert_array_equal(decode_update(update.payload, SIZE, LIMITS).to_dense(), np.full(SIZE, 1.25))
    assert (tmp_path / PENDING_FILE).exists()
    # Restarted before the Ack: the same update goes out again, and the answered round is remembered.
    again = UpstreamTier(cfg, bundle_id="b1", size=SIZE, state_dir=tmp_path, max_packet_bytes=128 * 1024)
    resent = [o for o in again.start() if "/update/" in o.topic]
    assert [o.payload for o in resent] == [sent.payload]
    ack = Ack("gw-a", 4, update.update_id, True)
    again.handle(again.topics.ack("gw-a"), frames(ack)[0])
    assert not (tmp_path / PENDING_FILE).exists()
    assert again.tick() == []


def test_a_lower_tier_needs_a_fedavg_family_rule_and_another_federation(tmp_path: Path) -> None:
    with pytest.raises(FmflError, match="FedAvg-family"):
        Harness(tmp_path / "x", strategy="median", upstream=UpstreamConfig("top", "gw"))
    with pytest.raises(FmflError, match="must differ"):
        Harness(tmp_path / "y", upstream=UpstreamConfig("default", "gw"))


def test_the_upstream_side_follows_the_parents_newest_run(tmp_path: Path) -> None:
    """The tier is a device of its parent (``DeviceSession``): an older parent run's task is never answered,
    and the same version number of another run does not serve a task (the tier used to take the newest task
    of any run and any model with the task's version)."""
    tier = UpstreamTier(UpstreamConfig("top", "gw-a"), bundle_id="b1", size=SIZE, state_dir=tmp_path,
                        max_packet_bytes=128 * 1024)  # fmt: skip
    old, new = 1_000, 2_000

    def model(run: int, value: float) -> GlobalModel:
        payload = UpdateEncoder("dense", SIZE).encode(np.full(SIZE, value, np.float32))
        return GlobalModel("b1", 3, None, payload, run=run)

    def task(run: int, rnd: int) -> RoundTask:
        return RoundTask("top", "b1", rnd, 3, ("gw-a",), 8, 0.1, "dense", 2e9, 1, local_epochs=1, run=run)

    tier.handle(tier.topics.global_model_chunk(0), frames(model(old, 0.5))[0])
    tier.handle(tier.topics.task, frames(task(new, 5))[0])
    assert tier.ready(T0) is None  # v3 of the old run is not the new run's v3
    tier.handle(tier.topics.task, frames(task(old, 6))[0])  # a leftover of the old run: ignored
    assert tier.ready(T0) is None
    tier.handle(tier.topics.global_model_chunk(0), frames(model(new, 0.25))[0])
    ready = tier.ready(T0)
    assert ready is not None
    assert (ready[0].run, ready[0].round) == (new, 5)
    np.testing.assert_array_equal(ready[1], np.full(SIZE, 0.25, np.float32))
