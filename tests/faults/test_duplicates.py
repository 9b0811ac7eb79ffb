"""Duplicate deliveries: every update published three times in its round, and again after the round
closed; each copy gets an accepted Ack, the update counts once (audit), the versions stay exact."""

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
from support.gateway_harness import Listener, bundle_info, decode_all

from fmfl.protocol import Limits, RoundTask, Topics

TOPICS = Topics("default")


def current_task(watch: Listener) -> RoundTask | None:
    tasks = decode_all(watch.snapshot(), Limits.for_vector_size(300), RoundTask)
    return tasks[-1] if tasks else None


def test_duplicate_deliveries_are_acked_and_counted_once(
    fault_bundle: Path, broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(fault_bundle)
    size = initial.shape[0]
    trial = ledger.add(Trial("duplicate deliveries"))
    devices = fleet(broker.port, bundle_id, size, ("a", "b", "c", "d"), resend_s=30)  # copies are explicit here
    for d in devices[3:]:
        d.respond = False  # d holds round 1 open while the others' copies arrive
    agg = start_aggregator(fault_bundle, broker.port, tmp_path, rounds=2, k=4)
    watch = Listener(broker.port, [TOPICS.task])
    try:
        wait_for_global_model(broker.port, size, agg)
        for d in devices:
            d.start()
        wait_for(lambda: all(1 in d.sent for d in devices[:3]), 20, "round 1 updates")
        for d in devices[:3]:
            d.republish(1)
            d.republish(1)
        wait_for(lambda: all(len(d.acks) >= 3 for d in devices[:3]), 20, "three Acks each")
        devices[3].respond = True  # the fourth update closes round 1
        task = current_task(watch)
        assert task is not None
        assert task.round == 1
        devices[3].answer(task)
        devices[3].respond = False  # and d holds round 2 open while round 1's copies arrive
        wait_for(lambda: all(2 in d.sent for d in devices[:3]), 20, "round 2 updates")
        for d in devices:
            d.republish(1)  # round 1 is closed: recognised from the journal, Acked again
        wait_for(lambda: all(len(d.acks) >= (5 if d.client_id != "d" else 2) for d in devices), 20, "Acks of copies")
        task = current_task(watch)
        assert task is not None
        assert task.round == 2
        devices[3].respond = True
        devices[3].answer(task)
        assert agg.wait(30) == 0, agg.stderr
    finally:
        watch.close()
        if agg.proc.poll() is None:
            agg.kill()
        stop_all(devices)
    audit(tmp_path / "state", initial, sent_by_sim_devices(devices), acked_by_sim_devices(devices), trial)
    assert trial.counted == 8
    for d in devices:
        first = d.sent[1][0].update_id
        copies = [a for a in d.acks if a.update_id == first]
        assert all(a.accepted for a in copies), copies
        assert len(copies) >= (4 if d.client_id != "d" else 2), (d.client_id, copies)
