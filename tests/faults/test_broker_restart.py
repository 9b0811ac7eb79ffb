"""Stop and restart Mosquitto (persistence on, same port) mid-round, twice per run.

The gateway holds a persistent session (``clean_session=False``): its subscriptions and the QoS 1
updates queued for it must survive the restart in the broker's persistence file. paho reconnects the
gateway and the devices by itself; devices resend what was not Acked. The run must finish and pass
the audit (``faults.audit``): nothing Acked lost, nothing counted twice, every version exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.faults import (
    Ledger,
    Trial,
    acked_by_sim_devices,
    audit,
    await_acks,
    fleet,
    sent_by_sim_devices,
    start_aggregator,
    stop_all,
    wait_for,
    wait_for_global_model,
)
from support.gateway_harness import bundle_info


@pytest.mark.parametrize("acks_before_restart", [0, 2], ids=["before-any-ack", "after-2-acks"])
def test_broker_restarted_mid_round_loses_no_update(
    acks_before_restart: int, fault_bundle: Path, broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(fault_bundle)
    size = initial.shape[0]
    trial = ledger.add(Trial("broker stop/restart mid-round"))
    # Devices take 0.4 s to "train", so a restart right after a task catches updates in flight.
    devices = fleet(broker.port, bundle_id, size, ("a", "b", "c", "d"), resend_s=0.5, train_s=0.4)
    agg = start_aggregator(fault_bundle, broker.port, tmp_path, rounds=3, k=4)

    def acks() -> int:
        return sum(len(d.acks) for d in devices)

    try:
        wait_for_global_model(broker.port, size, agg)
        for d in devices:
            d.start()
        for rnd in (1, 2):  # one restart in round 1, one in round 2
            wait_for(lambda r=rnd: all(r in d.sent for d in devices), 30, f"round {rnd}'s updates")
            wait_for(lambda r=rnd: acks() >= 4 * (r - 1) + acks_before_restart, 30, f"{acks_before_restart} acks")
            broker.restart()  # SIGTERM: Mosquitto writes its persistence file, then starts on the same port
            assert (broker.workdir / "mosquitto.db").is_file()
            trial.kills += 1
        assert agg.wait(90) == 0, agg.stderr
        await_acks(devices)
    finally:
        if agg.proc.poll() is None:
            agg.kill()
        stop_all(devices)
    audit(tmp_path / "state", initial, sent_by_sim_devices(devices), acked_by_sim_devices(devices), trial)
    assert trial.counted == 12
    assert trial.acked == 12
    assert "disconnected from the broker" in agg.stderr  # the restarts really cut the gateway off
