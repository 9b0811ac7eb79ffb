"""SIGKILL real ``fmfl client`` processes mid-training, after committing an update and mid-upload (an
update spread over several MQTT packets), restart them, and audit the run of a real ``fmfl aggregator``.

What must hold: a device killed before its outbox commit trains the round again (nothing was sent);
one killed after it resends the very same update (same id, same bytes) on reconnecting, so the gateway
counts it once; a half-uploaded update is completed by the resend (the chunks are keyed by the
message's hash). Every update on the wire is captured by a listener, so the audit recomputes each
global version from the exact updates the gateway counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.faults import AGG_SIGKILLED, Ledger, Sent, Trial, audit, start_aggregator, wait_exit, wait_for
from support.gateway_harness import Listener, acks_for, bundle_info, read_metrics

from fmfl.protocol import ClientUpdate, Limits, Reassembler, Topics, decode_update

TOPICS = Topics("default")
MAX_PACKET = 500  # small packets: an update (about 1.3 KB) spans four chunks, so a kill can land between them
IDS = ("dev-0", "dev-1", "dev-2")


class Device:
    """One ``fmfl client`` process (restartable, same state folder), its output in a log file."""

    def __init__(self, cid: str, bundle: Path, data: Path, port: int, tmp: Path) -> None:
        self.cid, self.state = cid, tmp / cid
        self.cmd = [sys.executable, "-m", "fmfl.cli", "-v", "client", "--bundle", str(bundle), "--data", str(data),
                    "--state-dir", str(self.state), "--broker", f"mqtt://127.0.0.1:{port}", "--client-id", cid,
                    "--threads", "1", "--max-packet-bytes", str(MAX_PACKET)]
        self.log = tmp / f"{cid}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self, failpoints: str = "") -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "FMFL_FAILPOINTS": failpoints}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def outbox(self) -> list[Path]:
        return list((self.state / "outbox").glob("*.npz"))

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return wait_exit(self.proc, 30, f"fmfl client {self.cid}")


# The gateway settings of every real-client trial: three local steps, multi-chunk top-k updates.
ROUND_SETTINGS: dict[str, Any] = {"start_timeout": 120, "selection_window": 2, "local_steps": 3, "batch_size": 16,
                                  "codec": "topk:0.05+int8+ef"}


def real_devices(bundle: Path, shards: list[Path], port: int, tmp: Path) -> list[Device]:
    """One ``fmfl client`` (not started) per id in IDS, each on its own shard."""
    return [Device(cid, bundle, shard, port, tmp) for cid, shard in zip(IDS, shards, strict=True)]


def drain(devices: list[Device]) -> None:
    """The run is over: wait until every outbox is emptied by its Ack, then stop each device cleanly."""
    wait_for(lambda: not any(d.outbox() for d in devices), 20, "every outbox emptied by its Ack")
    for d in devices:
        assert d.stop() == 0, d.log.read_text()[-3000:]


def kill_leftovers(agg: Any, devices: list[Device]) -> None:
    """After a failed test: no gateway or device process outlives it."""
    if agg.proc.poll() is None:
        agg.kill()
    for d in devices:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def captured_acks(*watches: Listener, size: int) -> dict[str, int]:
    """update id -> round of every accepted Ack seen on the wire."""
    acks = [a for w in watches for a in acks_for(w, Limits.for_vector_size(size))]
    return {a.update_id: a.round for a in acks if a.accepted}


def captured_updates(*watches: Listener, size: int, bundle_id: str) -> tuple[dict[str, Sent], list[int]]:
    """Every update seen on the wire by id, and the sizes of the messages (in bytes); a compact (protocol 1.2)
    update takes its federation and client id from its topic and the bundle id from the run, as the gateway does."""
    limits = Limits.for_vector_size(size)
    reassembler = Reassembler(2**26, 64)
    out: dict[str, Sent] = {}
    sizes: list[int] = []
    for topic, payload, _ in (m for w in watches for m in w.snapshot()):
        if "/update/" not in topic or not payload:
            continue
        data = reassembler.add(payload, topic)
        if data is not None:
            sizes.append(len(data))
            u = ClientUpdate.decode(data, limits, federation=TOPICS.federation, client_id=topic.rsplit("/", 1)[-1],
                                    bundle_id=bundle_id)
            out[u.update_id] = Sent(u.client_id, u.round, decode_update(u.payload, size, limits), u.num_samples)
    return out, sizes


# Which failpoint each device is armed with, per trial (hits count per process).
TRIALS = {
    "round-1": {"dev-0": "client.train_step@2", "dev-1": "client.before_upload", "dev-2": "client.mid_upload@1"},
    "round-2": {"dev-0": "client.train_step@5", "dev-1": "client.before_upload@2", "dev-2": "client.mid_upload@4"},
}


@pytest.mark.slow
@pytest.mark.parametrize("trial_name", sorted(TRIALS))
def test_clients_killed_mid_training_and_mid_upload_lose_nothing(
    trial_name: str, device_bundle: Path, device_shards: list[Path], broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(device_bundle)
    size = initial.shape[0]
    trial = ledger.add(Trial("fmfl client SIGKILL mid-training / after commit / mid-upload"))
    armed = TRIALS[trial_name]
    watch = Listener(broker.port, [TOPICS.all_updates, f"{TOPICS.root}/ack/+"])
    agg = start_aggregator(device_bundle, broker.port, tmp_path, rounds=2, k=3, **ROUND_SETTINGS)
    devices = real_devices(device_bundle, device_shards, broker.port, tmp_path)
    try:
        for d in devices:
            d.start(armed[d.cid])
        deadline = time.monotonic() + 150
        while agg.proc.poll() is None and time.monotonic() < deadline:
            for d in devices:
                assert d.proc is not None
                code = d.proc.poll()
                if code is not None:
                    assert code == AGG_SIGKILLED, (d.cid, code, d.log.read_text()[-3000:])
                    assert d.kills == 0, (d.cid, code, d.log.read_text()[-3000:])
                    d.kills += 1
                    d.start()  # the same state folder, no failpoint
            time.sleep(0.1)
        assert agg.wait(10) == 0, agg.stderr
        drain(devices)
    finally:
        watch.close()
        kill_leftovers(agg, devices)
    trial.kills = sum(d.kills for d in devices)
    assert trial.kills == 3, [(d.cid, d.kills) for d in devices]
    sent, sizes = captured_updates(watch, size=size, bundle_id=bundle_id)
    acked = captured_acks(watch, size=size)
    audit(tmp_path / "state", initial, sent, acked, trial)
    assert trial.counted == 6
    assert trial.acked == 6
    # Each device sent one update per round: the killed ones resent theirs rather than train again.
    assert sorted((s.client_id, s.round) for s in sent.values()) == sorted((c, r) for c in IDS for r in (1, 2))
    assert min(sizes) > 2 * MAX_PACKET, sizes  # every update spans three chunks or more
    rnd = int(trial_name[-1])
    logs = {d.cid: d.log.read_text() for d in devices}
    assert "resending update" not in logs["dev-0"]  # killed before its commit: trained the round again
    for cid in ("dev-1", "dev-2"):  # killed after it: the committed update went out again on reconnecting
        assert f"for round {rnd}" in "".join(line for line in logs[cid].splitlines() if "resending update" in line)


@pytest.mark.slow
def test_aggregator_killed_mid_chunked_upload_gets_the_update_resent(
    device_bundle: Path, device_shards: list[Path], broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    """The gateway dies between two chunks of an update (buffered, not logged). Either path must bring the
    update in exactly once: chunks the gateway had already PUBACKed are gone from the broker, so the device,
    still connected, sends the update again in full (``--resend-after``); chunks still in the gateway's open
    group commit had no PUBACK yet (it is sent after the commit), so the broker redelivers them to the
    restarted gateway. Which one happens depends on how the chunks fell into batches."""
    bundle_id, initial = bundle_info(device_bundle)
    size = initial.shape[0]
    trial = ledger.add(Trial("aggregator SIGKILL mid chunked upload (real clients)"))
    watch = Listener(broker.port, [TOPICS.all_updates, f"{TOPICS.root}/ack/+"])
    agg = start_aggregator(device_bundle, broker.port, tmp_path, rounds=2, k=3,
                           failpoints="aggregator.update_chunk_buffered@2", **ROUND_SETTINGS)
    devices = real_devices(device_bundle, device_shards, broker.port, tmp_path)
    try:
        for d in devices:
            d.cmd += ["--resend-after", "2"]
            d.start()
        assert wait_exit(agg.proc, 120, "the armed aggregator") == AGG_SIGKILLED, agg.stderr
        trial.kills += 1
        agg = start_aggregator(device_bundle, broker.port, tmp_path, rounds=2, k=3, resume=True, **ROUND_SETTINGS)
        assert agg.wait(90) == 0, agg.stderr
        drain(devices)
    finally:
        watch.close()
        kill_leftovers(agg, devices)
    sent, _ = captured_updates(watch, size=size, bundle_id=bundle_id)
    audit(tmp_path / "state", initial, sent, captured_acks(watch, size=size), trial)
    assert trial.counted == 6
    assert trial.acked == 6


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_broker_restarted_under_real_clients_loses_nothing(
    how: str, device_bundle: Path, device_shards: list[Path], broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    """Mosquitto stopped (SIGTERM: it saves its sessions) or killed (SIGKILL: it loses up to its last
    second, ``autosave_interval 1``) as the first update arrives, and started again on its port. The
    clients' persistent sessions and resends, and the gateway's, must bring every update in once."""
    bundle_id, initial = bundle_info(device_bundle)
    size = initial.shape[0]
    trial = ledger.add(Trial(f"broker {how} + restart under real clients"))
    watch = Listener(broker.port, [TOPICS.all_updates, f"{TOPICS.root}/ack/+"])
    after: Listener | None = None
    agg = start_aggregator(device_bundle, broker.port, tmp_path, rounds=2, k=3, **ROUND_SETTINGS)
    devices = real_devices(device_bundle, device_shards, broker.port, tmp_path)
    try:
        for d in devices:
            d.cmd += ["--resend-after", "2"]
            d.start()
        wait_for(lambda: any("/update/" in m[0] for m in watch.snapshot()), 120, "the first update chunk")
        if how == "sigkill":
            assert broker.process is not None
            broker.process.kill()
            broker.process.wait()
            broker.process = None
            broker.start()
        else:
            broker.restart()
        # SIGTERM: the broker restarted from its saved sessions; SIGKILL: from its last autosave, if any.
        assert how == "sigkill" or (broker.workdir / "mosquitto.db").is_file()
        # A second wiretap, subscribed before paho's first reconnect (1 s) brings the others back.
        after = Listener(broker.port, [TOPICS.all_updates, f"{TOPICS.root}/ack/+"])
        trial.kills += 1
        assert agg.wait(120) == 0, agg.stderr
        drain(devices)
    finally:
        watch.close()
        if after is not None:
            after.close()
        kill_leftovers(agg, devices)
    assert after is not None
    sent, _ = captured_updates(watch, after, size=size, bundle_id=bundle_id)
    audit(tmp_path / "state", initial, sent, captured_acks(watch, after, size=size), trial)
    assert trial.counted == 6
    assert trial.acked == 6
    # No round waited for its 60 s deadline: the gateway published the model and task again on reconnecting.
    assert all(m["status"] == "ok" and m["duration_s"] < 60 for m in read_metrics(tmp_path / "state"))
