"""Crash safety of ``fmfl aggregator`` as a process: SIGKILL mid-round then ``--resume`` loses no
acknowledged update and counts none twice; SIGTERM stops cleanly with exit status 0."""

from __future__ import annotations

import random
import time
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
    wait_until,
)

from fmfl.aggregator.durable.store import GlobalStore
from fmfl.protocol import GlobalModel, Limits, RoundTask, Topics

TOPICS = Topics("default")


def pattern(cid: str):  # type: ignore[no-untyped-def]
    base = sum(map(ord, cid))
    return lambda rnd, n: (0.01 * np.cos(np.arange(n) * 0.11 + base + 7 * rnd)).astype(np.float32)


def current_task(watch: Listener, limits: Limits) -> RoundTask | None:
    tasks = decode_all([m for m in watch.snapshot() if m[0] == TOPICS.task], limits, RoundTask)
    return tasks[-1] if tasks else None


def start_aggregator(bundle: Path, port: int, tmp: Path, *, resume: bool = False, rounds: int = 2):  # type: ignore[no-untyped-def]
    args = aggregator_args(
        bundle, port, tmp / "state", rounds=rounds, k=4, over_select=1.0,
        round_timeout=120, start_timeout=20, resume=resume, codec="topk:0.5+int8",
    )  # fmt: skip
    return AggregatorProcess(tmp, args)


def check_oracle(state: Path, initial: np.ndarray, devices: list[SimDevice], rounds: int) -> None:
    store = GlobalStore(state / "models")
    expected = initial
    for rnd in range(1, rounds + 1):
        expected = fedavg(expected, [(d.sent[rnd][1], float(d.num_samples)) for d in devices])
        np.testing.assert_allclose(store.load_weights(rnd)[1], expected, rtol=1e-6, atol=1e-7)
    assert [m["participants"] for m in read_metrics(state) if m["status"] == "ok"] == [4] * rounds


def test_sigkill_mid_round_then_resume_loses_nothing_and_counts_nothing_twice(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    limits = Limits.for_vector_size(size)
    agg = start_aggregator(gateway_bundle, mosquitto.port, tmp_path)
    watch = Listener(mosquitto.port, [TOPICS.global_model, TOPICS.task])
    devices: list[SimDevice] = []
    try:
        assert watch.wait_for(lambda m: len(decode_all(m, limits, GlobalModel)) >= 1, 20), agg.stderr
        for i, cid in enumerate(("a", "b", "c", "d")):
            d = SimDevice(
                mosquitto.port, cid, bundle_id, size, pattern(cid), num_samples=i + 1, respond=False
            )
            devices.append(d.start())
        a, b, c, d = devices
        wait_until(lambda: current_task(watch, limits) is not None, 20, "round 1's task")
        task = current_task(watch, limits)
        assert task is not None
        assert task.round == 1
        for dev in (a, b):
            dev.respond = True
            dev.answer(task)
        wait_until(lambda: len(a.acks) == 1 and len(b.acks) == 1, 10, "acks for a and b")
        agg.kill()  # SIGKILL: a and b are acknowledged, so they must survive
        # While the gateway is down: b resends (as if its Ack was lost) and c answers; the broker
        # keeps both for the gateway's persistent session.
        b.republish(1)
        c.respond = True
        c.answer(task)
        agg = start_aggregator(gateway_bundle, mosquitto.port, tmp_path, resume=True)
        wait_until(lambda: len(c.acks) >= 1 and len(b.acks) >= 2, 20, "acks after resume")
        assert all(x.accepted for x in b.acks)
        assert {x.update_id for x in b.acks} == {b.sent[1][0].update_id}
        d.respond = True
        d.answer(task)  # the 4th update closes round 1; round 2 then runs on its own
        assert agg.wait(60) == 0, agg.stderr
    finally:
        watch.close()
        for dev in devices:
            dev.stop()
    check_oracle(tmp_path / "state", initial, devices, rounds=2)
    assert read_metrics(tmp_path / "state")[0]["round"] == 1


def test_sigterm_stops_cleanly_and_resume_finishes_the_run(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    limits = Limits.for_vector_size(size)
    agg = start_aggregator(gateway_bundle, mosquitto.port, tmp_path, rounds=1)
    watch = Listener(mosquitto.port, [TOPICS.global_model, TOPICS.task])
    devices: list[SimDevice] = []
    try:
        assert watch.wait_for(lambda m: len(decode_all(m, limits, GlobalModel)) >= 1, 20), agg.stderr
        for cid in ("a", "b", "c", "d"):
            devices.append(
                SimDevice(mosquitto.port, cid, bundle_id, size, pattern(cid), respond=False).start()
            )
        wait_until(lambda: current_task(watch, limits) is not None, 20, "round 1's task")
        task = current_task(watch, limits)
        assert task is not None
        devices[0].respond = True
        devices[0].answer(task)
        wait_until(lambda: len(devices[0].acks) == 1, 10, "an ack")
        agg.terminate()
        assert agg.wait(20) == 0
        assert "run again with --resume" in agg.stdout
        agg = start_aggregator(gateway_bundle, mosquitto.port, tmp_path, resume=True, rounds=1)
        time.sleep(0.5)
        for dev in devices[1:]:
            dev.respond = True
            dev.answer(task)
        assert agg.wait(30) == 0, agg.stderr
    finally:
        watch.close()
        for dev in devices:
            dev.stop()
    check_oracle(tmp_path / "state", initial, devices, rounds=1)


@pytest.mark.slow
def test_repeated_sigkill_at_random_points_never_loses_or_doubles_an_update(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    """Devices answer on their own; the gateway is SIGKILLed at random moments, up to 8 times, across 6
    rounds, and restarted with --resume each time. Every version must still be the exact FedAvg."""
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    rng = random.Random(1234)
    devices = [
        SimDevice(
            mosquitto.port, cid, bundle_id, size, pattern(cid), num_samples=n, resend_s=0.5, train_s=0.4
        )
        for cid, n in (("a", 1), ("b", 2), ("c", 3), ("d", 4))
    ]
    rounds = 6
    agg = start_aggregator(gateway_bundle, mosquitto.port, tmp_path, rounds=rounds)
    kills = 0
    try:
        time.sleep(1.0)
        for dev in devices:
            dev.start()
        for _ in range(8):
            time.sleep(rng.uniform(0.3, 1.5))  # python start-up alone takes about 0.5 s here
            if agg.proc.poll() is not None:
                break
            agg.kill()
            kills += 1
            agg = start_aggregator(gateway_bundle, mosquitto.port, tmp_path, rounds=rounds, resume=True)
        assert agg.wait(90) == 0, agg.stderr
    finally:
        for dev in devices:
            dev.stop()
    assert kills >= 3
    check_oracle(tmp_path / "state", initial, devices, rounds=rounds)
