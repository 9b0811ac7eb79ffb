"""Bad input through a real broker, sent with paho and with Debian's ``mosquitto_pub``: each is refused,
counted by reason (Prometheus and metrics.jsonl), answered with an Ack naming the reason when the
update id is known, and the global model is exactly the FedAvg of the good updates."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from support.gateway_harness import (
    AggregatorProcess,
    Listener,
    SimDevice,
    acks_for,
    aggregator_args,
    bundle_info,
    decode_all,
    fedavg,
    frames,
    make_update,
    read_metrics,
    wait_until,
)

from fmfl.aggregator.durable.store import GlobalStore
from fmfl.mqtt.mosquitto import free_port
from fmfl.protocol import Ack, GlobalModel, Limits, RoundTask, Topics, UpdateEncoder

TOPICS = Topics("default")


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def prometheus(port: int) -> dict[str, float]:
    text = scrape(port)
    out = {}
    for m in re.finditer(r'^fmfl_updates_rejected_total\{reason="([^"]+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def clients_online(port: int) -> float:
    m = re.search(r"^fmfl_clients_online (\S+)$", scrape(port), re.M)
    return float(m.group(1)) if m else 0.0


def mosquitto_pub(port: int, topic: str, *, file: Path | None = None, message: str | None = None) -> None:
    binary = shutil.which("mosquitto_pub")
    if binary is None:
        pytest.fail("mosquitto_pub is not installed (apt-get install mosquitto-clients)")
    args = [binary, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic]
    if file is not None:
        args += ["-f", str(file)]
    elif message is not None:
        args += ["-m", message]
    else:
        args += ["-n"]
    subprocess.run(args, check=True, timeout=10)


def test_bad_inputs_from_paho_and_mosquitto_pub_are_refused_and_change_nothing(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    limits = Limits.for_vector_size(size)
    state = tmp_path / "state"
    metrics_port = free_port()
    agg = AggregatorProcess(
        tmp_path,
        aggregator_args(
            gateway_bundle, mosquitto.port, state, rounds=1, k=2, over_select=1.0,
            round_timeout=60, start_timeout=20, metrics_port=metrics_port, max_norm=5.0,
        ),
    )  # fmt: skip
    watch = Listener(mosquitto.port, [TOPICS.global_model, TOPICS.task, TOPICS.root + "/ack/+"])
    devices: list[SimDevice] = []
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker")
    try:
        assert watch.wait_for(lambda m: len(decode_all(m, limits, GlobalModel)) >= 1, 20), agg.stderr
        zero = lambda r, n: np.zeros(n, np.float32)  # noqa: E731 - they never answer on their own
        for cid in ("a", "b"):
            devices.append(SimDevice(mosquitto.port, cid, bundle_id, size, zero, respond=False).start())
        assert watch.wait_for(lambda m: any(t == TOPICS.task for t, _, _ in m), 20), agg.stderr
        task = decode_all([x for x in watch.snapshot() if x[0] == TOPICS.task], limits, RoundTask)[-1]
        assert set(task.selected) == {"a", "b"}
        devices.append(SimDevice(mosquitto.port, "z", bundle_id, size, zero, respond=False).start())
        # z's hello and the attacker's updates come from different MQTT clients, which the broker may deliver
        # in either order: wait until the gateway has registered z, or z's update reads as a stranger's.
        wait_until(lambda: clients_online(metrics_port) == 3, 20, "the gateway to register z")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()

        def send(cid: str, chunks: list[bytes], topic_id: str | None = None) -> None:
            for c in chunks:
                pub.publish(TOPICS.update(topic_id or cid), c, qos=1).wait_for_publish(5)

        delta = np.linspace(-0.05, 0.05, size).astype(np.float32)

        def upd(cid: str, **kw: object) -> object:
            return make_update(task, cid, delta, **kw)[0]  # type: ignore[arg-type]

        expected: dict[str, int] = {}

        # --- with mosquitto_pub ---------------------------------------------------------------
        mosquitto_pub(mosquitto.port, TOPICS.update("a"), message="definitely not an fmfl chunk " * 4)
        expected["bad_magic"] = 1
        nan = bytearray(UpdateEncoder("dense", size).encode(np.zeros(size, np.float32)))
        nan[-4:] = struct.pack("<f", float("nan"))
        (tmp_path / "nan.bin").write_bytes(frames(upd("a", payload=bytes(nan)))[0])
        mosquitto_pub(mosquitto.port, TOPICS.update("a"), file=tmp_path / "nan.bin")
        expected["non_finite"] = 1
        (tmp_path / "future.bin").write_bytes(frames(upd("a", round=task.round + 5))[0])
        mosquitto_pub(mosquitto.port, TOPICS.update("a"), file=tmp_path / "future.bin")
        expected["wrong_round"] = 1
        chunk = frames(upd("a"))[0]
        (tmp_path / "crc.bin").write_bytes(chunk[:-4] + struct.pack("<I", zlib.crc32(chunk[:-4]) ^ 1))
        mosquitto_pub(mosquitto.port, TOPICS.update("a"), file=tmp_path / "crc.bin")
        expected["checksum"] = 1
        mosquitto_pub(mosquitto.port, TOPICS.update("a"))  # an empty message: ignored, not counted

        # --- with paho -----------------------------------------------------------------------
        send("a", frames(upd("a", payload=b"\x07" * (12 * size + 300_000))))
        expected["too_large"] = 1
        send("a", frames(upd("a", bundle_id="some-other-bundle")))
        expected["wrong_bundle"] = 1
        send("z", frames(upd("z")))
        expected["not_selected"] = 1
        send("ghost", frames(upd("ghost")))
        expected["unknown_client"] = 1
        send("a", frames(upd("a", round=0)))
        expected["stale_round"] = 1
        send("a", frames(upd("b")))  # b's update on a's topic
        expected["client_mismatch"] = 1
        send("a", frames(upd("a", payload=UpdateEncoder("dense", size).encode(np.full(size, 9, np.float32)))))
        expected["norm"] = 1
        send("a", frames(upd("a", num_samples=0)))
        expected["weight"] = 1

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and prometheus(metrics_port) != expected:
            time.sleep(0.05)
        assert prometheus(metrics_port) == expected
        no_update_id = {"bad_magic", "checksum", "too_large"}
        # The gateway counts a rejection before its Ack travels through the broker: wait for the last Acks too.
        want = set(expected) - no_update_id
        while time.monotonic() < deadline and {a.reason for a in acks_for(watch, limits)} != want:
            time.sleep(0.05)
        acked = {a.reason for a in acks_for(watch, limits)}
        assert acked == set(expected) - no_update_id
        assert all(not a.accepted for a in acks_for(watch, limits))

        # The good updates, one of them sent three times: counted once, acked each time.
        good_a, sent_a = make_update(task, "a", delta, num_samples=3)
        good_b, sent_b = make_update(task, "b", -delta, num_samples=1)
        for _ in range(3):
            send("a", frames(good_a))
        assert watch.wait_for(
            lambda m: sum(a.update_id == good_a.update_id for a in decode_all(m, limits, Ack)) == 3, 10
        )
        send("b", frames(good_b))
        assert agg.wait(30) == 0, agg.stderr
    finally:
        pub.loop_stop()
        watch.close()
        for d in devices:
            d.stop()
    np.testing.assert_allclose(
        GlobalStore(state / "models").load_weights(1)[1],
        fedavg(initial, [(sent_a, 3.0), (sent_b, 1.0)]),
        rtol=1e-6,
        atol=1e-7,
    )
    (line,) = read_metrics(state)
    assert line["participants"] == 2
    assert line["rejected_by_reason"] == expected
