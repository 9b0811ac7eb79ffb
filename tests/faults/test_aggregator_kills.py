"""SIGKILL ``fmfl aggregator`` at each phase of a round, restart it with ``--resume``, audit the run.

Each trial arms one failpoint (``FMFL_FAILPOINTS``) in the gateway process, lets four simulated devices
answer on their own (resending every 0.5 s until Acked), waits for the process to die by SIGKILL at
that exact line, has every device publish all its updates twice more while the gateway is down
(duplicate deliveries, queued by the broker for the gateway's persistent session), restarts it with
``--resume`` and no failpoint, and audits the finished run (``faults.audit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.faults import (
    AGG_SIGKILLED,
    Ledger,
    Trial,
    acked_by_sim_devices,
    audit,
    await_acks,
    fleet,
    sent_by_sim_devices,
    start_aggregator,
    stop_all,
    wait_exit,
    wait_for_global_model,
)
from support.gateway_harness import bundle_info

# (failpoint, hit): the phase boundaries of a round, in the order a round crosses them.
PHASES = [
    ("aggregator.round_opened", 1),  # round 1 journaled, its task not yet published
    ("aggregator.after_task_publish", 1),  # the task reached the broker, no update yet
    ("aggregator.after_wal_append", 2),  # an update durable in the WAL, not folded in, not Acked
    ("aggregator.before_ack", 3),  # logged and journaled, its Ack not sent
    ("aggregator.before_save_version", 1),  # aggregated in memory, nothing saved
    ("aggregator.after_save_version", 1),  # version 1 saved; no metrics line, round still open
    ("aggregator.after_metrics", 1),  # metrics line written, journal says open
    ("aggregator.after_journal", 1),  # journal closed the round, WAL not pruned
    ("aggregator.round_closed", 1),  # all bookkeeping done, version 1 not yet published
    ("aggregator.after_save_version", 2),  # the last round: version 2 saved, nothing else
    ("aggregator.after_wal_append", 6),  # round 2, second update
]


@pytest.mark.parametrize(("failpoint", "hit"), PHASES, ids=[f"{f}@{n}" for f, n in PHASES])
def test_aggregator_killed_at_a_phase_resumes_without_loss(
    failpoint: str, hit: int, fault_bundle: Path, broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(fault_bundle)
    size = initial.shape[0]
    trial = Trial("aggregator SIGKILL at each phase")
    devices = fleet(broker.port, bundle_id, size, ("a", "b", "c", "d"), resend_s=0.5, train_s=0.05)
    agg = start_aggregator(fault_bundle, broker.port, tmp_path, rounds=2, k=4, failpoints=f"{failpoint}@{hit}")
    try:
        wait_for_global_model(broker.port, size, agg)
        for d in devices:
            d.start()
        code = wait_exit(agg.proc, 30, "the armed aggregator")
        assert code == AGG_SIGKILLED, f"exit {code}, expected death at {failpoint}@{hit}\n{agg.stderr}"
        trial.kills += 1
        for d in devices:  # duplicates while the gateway is down
            for rnd in list(d.sent):
                d.republish(rnd)
                d.republish(rnd)
        agg = start_aggregator(fault_bundle, broker.port, tmp_path, rounds=2, k=4, resume=True)
        assert agg.wait(60) == 0, agg.stderr
        await_acks(devices)
    finally:
        if agg.proc.poll() is None:
            agg.kill()
        stop_all(devices)
    ledger.add(trial)
    audit(tmp_path / "state", initial, sent_by_sim_devices(devices), acked_by_sim_devices(devices), trial)
    assert trial.counted == 8  # two rounds of four
    assert trial.acked == 8  # and every device got its Ack, also for the update that closed the last round
    assert all(a.accepted for d in devices for a in d.acks), [a for d in devices for a in d.acks]
