"""Scale-out through a real Mosquitto: a coordinator and a worker process share the update stream
with a shared subscription, and the saved model is bit for bit the single-process FedAvg."""

from __future__ import annotations

import sqlite3
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


def dyadic(cid: str):  # type: ignore[no-untyped-def]
    def delta(rnd: int, size: int) -> np.ndarray:
        rng = np.random.default_rng([rnd, sum(map(ord, cid))])
        return (rng.integers(-256, 256, size) / 256).astype(np.float32)

    return delta


@pytest.mark.slow  # several processes (~10-15 s); the engine tests cover the logic fast
def test_coordinator_and_worker_split_the_stream_and_match_one_process(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    limits = Limits.for_vector_size(size)
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    worker = AggregatorProcess(tmp_path / "w1", [], subcommand="aggregator-worker", extra_args=[
        "--bundle", str(gateway_bundle), "--broker", broker, "--worker-id", "w1",
        "--state-dir", str(tmp_path / "w1" / "state"),
    ])  # fmt: skip
    coord = AggregatorProcess(
        tmp_path,
        aggregator_args(
            gateway_bundle, mosquitto.port, tmp_path / "state", rounds=2, k=8, over_select=1.0,
            codec="dense", round_timeout=60, start_timeout=20, workers="w1",
        ),
    )  # fmt: skip
    watch = Listener(mosquitto.port, [Topics("default").global_model])
    devices: list[SimDevice] = []
    try:
        assert watch.wait_for(lambda m: len(decode_all(m, limits, GlobalModel)) >= 1, 20), coord.stderr
        for i in range(8):
            cid = f"dev-{i}"
            devices.append(SimDevice(mosquitto.port, cid, bundle_id, size, dyadic(cid), num_samples=i + 1))
        for d in devices:
            d.start()
        assert coord.wait(60) == 0, coord.stderr + worker.stderr
    finally:
        worker.terminate()
        watch.close()
        for d in devices:
            d.stop()
    assert worker.wait(20) == 0, worker.stderr
    store = GlobalStore(tmp_path / "state" / "models")
    expected = initial
    for rnd in (1, 2):
        expected = fedavg(expected, [(d.sent[rnd][1], float(d.num_samples)) for d in devices])
        np.testing.assert_array_equal(store.load_weights(rnd)[1], expected)
    assert [m["participants"] for m in read_metrics(tmp_path / "state")] == [8, 8]
    with sqlite3.connect(tmp_path / "w1" / "state" / "journal.sqlite") as db:
        taken = db.execute("SELECT COUNT(*) FROM accepted").fetchone()[0]
    assert 0 < taken < 16, "the worker took no share (or all of it)"
