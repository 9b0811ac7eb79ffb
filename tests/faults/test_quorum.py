"""Devices drop out mid-round: below the quorum the round fails cleanly and the next one runs; above it
the round closes at its deadline with the updates that came, and the next round asks only who is left.

A dropped device goes the way a crashed one does: its offline status (what its MQTT will would say)
is published and its connection closed. Updates Acked in a round that then failed its quorum are
dropped with the round by design (docs/aggregator.md); the audit checks they are in no model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.faults import (
    Ledger,
    Trial,
    acked_by_sim_devices,
    audit,
    fleet,
    sent_by_sim_devices,
    start_aggregator,
    stop_all,
    wait_for,
    wait_for_global_model,
)
from support.gateway_harness import SimDevice, bundle_info, frames, read_metrics

from fmfl.protocol import ClientStatus


def drop(device: SimDevice) -> None:
    """The device vanishes: the broker would publish its will; here it is published, then the link closes."""
    info = device.client.publish(
        device.topics.status(device.client_id), frames(ClientStatus(device.client_id, False))[0], qos=1, retain=True
    )
    info.wait_for_publish(5)
    stop_all([device])


def test_drop_below_quorum_fails_the_round_cleanly_and_the_next_round_runs(
    fault_bundle: Path, broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(fault_bundle)
    size = initial.shape[0]
    trial = ledger.add(Trial("clients drop below / above quorum"))
    devices = fleet(broker.port, bundle_id, size, ("a", "b", "c", "d"), resend_s=0.5)
    for d in devices[2:]:
        d.respond = False  # c and d drop as soon as round 1's task is out
    agg = start_aggregator(fault_bundle, broker.port, tmp_path, rounds=1, k=4, m=3, round_timeout=3)
    back: list[SimDevice] = []
    try:
        wait_for_global_model(broker.port, size, agg)
        for d in devices:
            d.start()
        wait_for(lambda: all(1 in d.sent for d in devices[:2]), 20, "a and b answering round 1")
        for d in devices[2:]:
            drop(d)
        trial.kills += 2
        wait_for(lambda: any(m["status"] == "failed" for m in read_metrics(tmp_path / "state")), 20, "round 1 failing")
        # c and d come back (new sessions, same ids); the round 1 task they find retained is stale now.
        back = fleet(broker.port, bundle_id, size, ("a", "b", "c", "d"), resend_s=0.5)[2:]
        for d in back:
            d.start()
        assert agg.wait(30) == 0, agg.stderr
    finally:
        if agg.proc.poll() is None:
            agg.kill()
        stop_all(devices[:2] + back)
    everyone = devices + back
    audit(tmp_path / "state", initial, sent_by_sim_devices(everyone), acked_by_sim_devices(everyone), trial)
    lines = read_metrics(tmp_path / "state")
    assert [(m["round"], m["status"], m["participants"]) for m in lines[:1]] == [(1, "failed", 2)]
    assert "2 accepted < --min-clients 3" in lines[0]["detail"]
    # Round 2 opens as soon as a quorum is back online (three or four devices, as the race goes).
    assert [(m["round"], m["status"]) for m in lines[1:]] == [(2, "ok")]
    assert lines[1]["participants"] == lines[1]["selected"] >= 3
    assert trial.dropped_with_failed_round == 2
    assert trial.counted == lines[1]["participants"]


def test_drop_above_quorum_closes_at_the_deadline_with_who_answered(
    fault_bundle: Path, broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(fault_bundle)
    size = initial.shape[0]
    trial = ledger.add(Trial("clients drop below / above quorum"))
    devices = fleet(broker.port, bundle_id, size, ("a", "b", "c", "d"), resend_s=0.5)
    devices[3].respond = False
    timeout = 5.0  # round 1 must wait it out; round 2 must close well before it
    agg = start_aggregator(fault_bundle, broker.port, tmp_path, rounds=2, k=4, m=3, round_timeout=timeout)
    try:
        wait_for_global_model(broker.port, size, agg)
        for d in devices:
            d.start()
        wait_for(lambda: all(1 in d.sent for d in devices[:3]), 20, "a, b and c answering round 1")
        drop(devices[3])
        trial.kills += 1
        assert agg.wait(30) == 0, agg.stderr
    finally:
        if agg.proc.poll() is None:
            agg.kill()
        stop_all(devices[:3])
    audit(tmp_path / "state", initial, sent_by_sim_devices(devices), acked_by_sim_devices(devices), trial)
    lines = read_metrics(tmp_path / "state")
    assert [(m["round"], m["status"], m["participants"], m["selected"]) for m in lines] == [
        (1, "ok", 3, 4),  # closed at the deadline: 3 >= --min-clients
        (2, "ok", 3, 3),  # only the three online were asked, and the round closed when all had answered
    ]
    assert lines[0]["duration_s"] >= timeout - 0.5
    assert lines[1]["duration_s"] < timeout - 0.5
