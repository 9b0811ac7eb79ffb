"""Tiered aggregation through a real Mosquitto: two site gateways, each serving two devices, are the
two clients of a parent gateway; every parent version is the FedAvg over all four devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import (
    AggregatorProcess,
    Listener,
    SimDevice,
    aggregator_args,
    bundle_info,
    decode_all,
    fedavg,
    read_metrics,
)

from fmfl.aggregator.durable.store import GlobalStore
from fmfl.protocol import GlobalModel, Limits, Topics


def pattern(cid: str):  # type: ignore[no-untyped-def]
    base = sum(map(ord, cid))
    return lambda rnd, n: (0.02 * np.sin(np.arange(n) * 0.23 + base + 3 * rnd)).astype(np.float32)


def wait_for_model(port: int, federation: str, limits: Limits, proc: AggregatorProcess) -> None:
    watch = Listener(port, [Topics(federation).global_model])
    try:
        assert watch.wait_for(lambda m: len(decode_all(m, limits, GlobalModel)) >= 1, 20), proc.stderr
    finally:
        watch.close()


@pytest.mark.slow  # several processes (~10-15 s); the engine tests cover the logic fast
def test_two_site_gateways_under_a_parent_equal_flat_fedavg(gateway_bundle: Path, mosquitto, tmp_path: Path) -> None:
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    limits = Limits.for_vector_size(size)
    parent = AggregatorProcess(
        tmp_path / "top",
        aggregator_args(
            gateway_bundle, mosquitto.port, tmp_path / "top" / "state", rounds=2, k=2, over_select=1.0,
            federation="top", codec="dense", round_timeout=60, start_timeout=30,
        ),
    )  # fmt: skip
    wait_for_model(mosquitto.port, "top", limits, parent)
    sites = {}
    for site in ("a", "b"):
        sites[site] = AggregatorProcess(
            tmp_path / site,
            aggregator_args(
                gateway_bundle, mosquitto.port, tmp_path / site / "state", rounds=1, k=2, over_select=1.0,
                federation=f"site-{site}", codec="topk:0.5+int8", round_timeout=60, start_timeout=30,
                upstream_federation="top", upstream_id=f"gw-{site}",
            ),
        )  # fmt: skip
    devices: dict[str, list[SimDevice]] = {}
    try:
        for site, proc in sites.items():
            wait_for_model(mosquitto.port, f"site-{site}", limits, proc)
        for site in sites:
            devices[site] = [
                SimDevice(mosquitto.port, f"{site}-{i}", bundle_id, size, pattern(f"{site}-{i}"),
                          federation=f"site-{site}", num_samples=3 * i + len(site) + 1).start()
                for i in range(2)
            ]  # fmt: skip
        assert parent.wait(60) == 0, parent.stderr + "".join(p.stderr for p in sites.values())
    finally:
        for proc in sites.values():
            proc.terminate()
        for ds in devices.values():
            for d in ds:
                d.stop()
    for proc in sites.values():
        assert proc.wait(20) == 0, proc.stderr
    everyone = [d for ds in devices.values() for d in ds]
    store = GlobalStore(tmp_path / "top" / "state" / "models")
    expected = initial
    for rnd in (1, 2):
        expected = fedavg(expected, [(d.sent[rnd][1], float(d.num_samples)) for d in everyone])
        # Each site's mean travels as float32: equal up to that rounding.
        np.testing.assert_allclose(store.load_weights(rnd)[1], expected, rtol=1e-5, atol=1e-6)
    top = read_metrics(tmp_path / "top" / "state")
    assert [(m["round"], m["participants"], m["status"]) for m in top] == [(1, 2, "ok"), (2, 2, "ok")]
    site_a = read_metrics(tmp_path / "a" / "state")
    assert [(m["status"], m["participants"]) for m in site_a] == [("forwarded", 2), ("forwarded", 2)]
