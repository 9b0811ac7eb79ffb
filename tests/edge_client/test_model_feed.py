"""The device's global-model intake (``ModelFeed``, docs/protocol.md 2b) on a real device (tiny ViT bundle,
real Fashion-MNIST shard, real state folder): when it wants the dense model, what it applies, and that
every refused delta leaves the held weights, version and run exactly as they were."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmfl.aggregator.core.downlink import DownlinkCompressor
from fmfl.edge_client.device import DeviceConfig, EdgeDevice
from fmfl.edge_client.model_feed import ModelFeed
from fmfl.protocol import GlobalModel, Limits, RoundTask, UpdateEncoder
from fmfl.protocol.downlink import weights_sha256

RUN = 1767225600000


@pytest.fixture(scope="module")
def device(vit_bundle: Path, fmnist_shard: Path, tmp_path_factory: pytest.TempPathFactory) -> EdgeDevice:
    return EdgeDevice(DeviceConfig(bundle=vit_bundle, data=fmnist_shard,
                                   state_dir=tmp_path_factory.mktemp("feed"), client_id="dev-1"))


class Versions:
    """A gateway's versions of one run: dense messages and deltas, made by the gateway's own re-basing."""

    def __init__(self, device: EdgeDevice, run: int = RUN) -> None:
        self.bundle_id, self.run = device.manifest.bundle_id, run
        self.size = int(device.initial.size)
        self.weights = {0: (device.initial + np.float32(0.01)).astype(np.float32)}
        self.downlink = DownlinkCompressor("topk:0.1+int8+ef", self.size)
        self.rng = np.random.default_rng(2)

    def dense(self, version: int, deltas: bool | None = True) -> GlobalModel:
        w = self.weights[version]
        return GlobalModel(self.bundle_id, version, None, UpdateEncoder("dense", self.size).encode(w), run=self.run,
                           weights_sha256=weights_sha256(w), deltas=deltas)  # fmt: skip

    def delta(self, version: int) -> GlobalModel:
        base = self.weights[version - 1]
        candidate = (base + self.rng.normal(scale=0.01, size=self.size)).astype(np.float32)
        self.weights[version] = self.downlink.rebase(base, version - 1, candidate)
        d = self.downlink.delta
        assert d is not None
        return GlobalModel(self.bundle_id, version, version - 1, d.payload, run=self.run,
                           weights_sha256=d.weights_sha256)  # fmt: skip

    def task(self, version: int, round_: int) -> RoundTask:
        return RoundTask(federation="f", bundle_id=self.bundle_id, round=round_, model_version=version,
                         selected=("dev-1",), batch_size=8, lr=0.01, codec="topk:0.05+int8+ef", deadline=2e9,
                         seed=1, local_steps=1, run=self.run)  # fmt: skip


def held(device: EdgeDevice) -> tuple[int, bytes, int | None, str]:
    """Version, weights bytes, run: as the device and its state folder hold them (and the folder's meta)."""
    version, weights = device.global_model()
    on_disk = np.load(device.state.root / "global.npy").tobytes()
    assert on_disk == weights.tobytes()
    return version, on_disk, device.state.model_run, (device.state.root / "meta.json").read_text()


def test_a_device_takes_dense_then_deltas_refuses_bad_ones_unchanged_and_follows_a_restarted_run(
    device: EdgeDevice,
) -> None:
    limits = Limits.for_vector_size(int(device.initial.size))
    feed = ModelFeed(device, limits)
    gw = Versions(device)
    # A new device wants the whole model; a dense model of a run that sends deltas ends that.
    assert feed.wants_dense
    feed.on_task(gw.task(0, 1))
    feed.on_model(gw.dense(0))
    assert held(device)[:3] == (0, gw.weights[0].tobytes(), RUN)
    assert not feed.wants_dense

    # Keeping up: each delta is applied, bit for bit the gateway's version.
    for version in (1, 2):
        feed.on_model(gw.delta(version))
        feed.on_task(gw.task(version, version + 1))
        assert held(device)[:2] == (version, gw.weights[version].tobytes())
        assert not feed.wants_dense

    # Refused, each leaving version, weights, run and the state folder's meta exactly as they were:
    before = held(device)
    good = gw.delta(3)
    bad_hash = GlobalModel(good.bundle_id, 3, 2, good.payload, run=RUN, weights_sha256=weights_sha256(gw.weights[2]))
    truncated = GlobalModel(good.bundle_id, 3, 2, good.payload[:-3], run=RUN, weights_sha256=good.weights_sha256)
    wrong_base = GlobalModel(good.bundle_id, 3, 1, good.payload, run=RUN, weights_sha256=good.weights_sha256)
    for refused in (bad_hash, truncated, wrong_base):
        feed.wants_dense = False
        feed.on_model(refused)
        assert held(device) == before
        assert feed.wants_dense
    counts = json.loads((device.state.root / "downlink.json").read_text())["models"]
    assert counts == {"dense": 1, "delta": 2, "refused_delta": 2}  # the wrong base is not even tried
    # ... and the dense model of version 3 is then taken.
    feed.on_model(gw.dense(3))
    assert held(device)[:2] == (3, gw.weights[3].tobytes())
    assert not feed.wants_dense

    # A restart: the state says the held model's run sends deltas, so the device connects without global/+.
    again = ModelFeed(device, limits)
    assert not again.wants_dense
    # A 1.1 gateway's (run-less) dense model of an older version does not replace it.
    again.on_model(GlobalModel(gw.bundle_id, 2, None, gw.dense(2).payload))
    assert held(device)[:2] == (3, gw.weights[3].tobytes())
    # A gateway that lost the broker's retained state starts a newer run at version 0: its task wants the
    # dense model, which replaces version 3 of the old run whatever the numbers.
    restarted = Versions(device, run=RUN + 1)
    again.new_run()
    again.on_task(restarted.task(0, 1))
    assert again.wants_dense
    again.on_model(restarted.dense(0))
    assert held(device)[:3] == (0, restarted.weights[0].tobytes(), RUN + 1)
    assert not again.wants_dense


def test_a_gateway_without_deltas_keeps_the_device_on_dense_models(
    vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    device = EdgeDevice(DeviceConfig(bundle=vit_bundle, data=fmnist_shard, state_dir=tmp_path, client_id="dev-2"))
    feed = ModelFeed(device, Limits.for_vector_size(int(device.initial.size)))
    gw = Versions(device)
    gw.weights[1] = (gw.weights[0] + np.float32(0.5)).astype(np.float32)
    for version in (0, 1):
        feed.on_task(gw.task(version, version + 1))
        feed.on_model(gw.dense(version, deltas=None))
        assert held(device)[:2] == (version, gw.weights[version].tobytes())
        assert feed.wants_dense  # no delta and no `deltas: true`: global/+ stays, as before deltas
    assert ModelFeed(device, Limits.for_vector_size(int(device.initial.size))).wants_dense  # at a reconnect too
