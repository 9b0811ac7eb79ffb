"""Group commit under SIGKILL: no Ack before the fsync of its update, and nothing lost or doubled after a restart.

The gateway commits the updates that arrived together with one fsync (``UpdateIngest.group``). Each trial
runs eight simulated devices whose local training times are spread, so updates arrive both together
(one commit for several) and alone, and SIGKILLs ``fmfl aggregator`` either at a named failpoint of the
commit (between the appends and the fsync; between the fsync and the journal) or at a seeded random
moment of a round. At the moment of death, the oracle of this file: every update a device holds an Ack
for (as accepted) is durable in the dead gateway's files; an Ack sent before its fsync would be caught
here, as an Acked update missing from the log. Then the devices publish all their updates twice more
while the gateway is down, it restarts with ``--resume``, and ``faults.audit`` checks the
finished run (no acknowledged update lost, none counted twice, global versions bit-exact).
"""

from __future__ import annotations

import random
import sqlite3
import time
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
    wait_for,
    wait_for_global_model,
)
from support.gateway_harness import SimDevice, bundle_info

DEVICES = tuple("abcdefgh")
ROUNDS = 2
# (failpoint, hit): the first commit of the run always exists, and the second (round 2 at the latest).
COMMIT_POINTS = [
    ("aggregator.before_wal_commit", 1),  # the group appended and folded in, not fsynced: no Ack may exist
    ("aggregator.before_wal_commit", 2),
    ("aggregator.after_wal_commit", 1),  # fsynced, not journaled, no Ack sent
    ("aggregator.after_wal_commit", 2),
]
RANDOM_KILLS = 32  # seeded SIGKILLs at random moments of a round (3-5 s each)
KILL_WINDOW_S = 0.45


def durable_update_ids(state: Path) -> set[str]:
    """Update ids the dead gateway's files hold: the write-ahead log (open round) and the journal (closed
    rounds; its rows are written after the log's commit). Opening the files runs SQLite's recovery."""
    ids: set[str] = set()
    for name, table in (("updates.sqlite", "updates"), ("journal.sqlite", "accepted")):
        db = sqlite3.connect(state / name)
        try:
            ids |= {row[0] for row in db.execute(f"SELECT update_id FROM {table}")}
        finally:
            db.close()
    return ids


def assert_acks_were_durable(devices: list[SimDevice], state: Path) -> int:
    """Every update Acked as accepted is in the dead gateway's files; returns how many were Acked."""
    time.sleep(0.3)  # Acks published before the kill may still be on their way through the broker
    acked = set(acked_by_sim_devices(devices))
    missing = acked - durable_update_ids(state)
    assert not missing, f"Acked but not durable when the gateway died: {sorted(missing)}"
    return len(acked)


def run_trial(
    bundle: Path, broker: Any, tmp: Path, ledger: Ledger, scenario: str, *, failpoints: str = "",
    kill_after_s: float | None = None, seed: int = 0,
) -> Trial:
    """One gateway kill and restart; kills by ``failpoints`` or ``kill_after_s`` after the first update went out."""
    bundle_id, initial = bundle_info(bundle)
    trial = Trial(scenario)
    devices = fleet(broker.port, bundle_id, initial.shape[0], DEVICES, resend_s=0.5, train_s=0.05)
    # Half answer together (one commit for several), the others alone; each round lasts at least 0.3 s
    # after its first update, so a kill within KILL_WINDOW_S of the first update finds the run going.
    train_s = [0.02] * 4 + [0.1, 0.1, 0.3, 0.3]
    random.Random(seed).shuffle(train_s)
    for d, t in zip(devices, train_s, strict=True):
        d.train_s = t
    agg = start_aggregator(bundle, broker.port, tmp, rounds=ROUNDS, k=len(DEVICES), failpoints=failpoints)
    try:
        wait_for_global_model(broker.port, initial.shape[0], agg)
        for d in devices:
            d.start()
        if kill_after_s is not None:
            wait_for(lambda: any(d.sent for d in devices), 30, "a first update")
            time.sleep(kill_after_s)
            agg.kill()
        code = wait_exit(agg.proc, 30, "the gateway to be killed")
        assert code == AGG_SIGKILLED, f"exit {code}, expected a SIGKILL ({failpoints or kill_after_s})\n{agg.stderr}"
        trial.kills += 1
        assert_acks_were_durable(devices, tmp / "state")
        for d in devices:  # duplicates while the gateway is down
            for rnd in list(d.sent):
                d.republish(rnd)
                d.republish(rnd)
        agg = start_aggregator(bundle, broker.port, tmp, rounds=ROUNDS, k=len(DEVICES), resume=True)
        assert agg.wait(60) == 0, agg.stderr
        await_acks(devices)
    finally:
        if agg.proc.poll() is None:
            agg.kill()
        stop_all(devices)
    ledger.add(trial)
    audit(tmp / "state", initial, sent_by_sim_devices(devices), acked_by_sim_devices(devices), trial)
    assert trial.counted == ROUNDS * len(DEVICES)
    assert trial.acked == ROUNDS * len(DEVICES)
    return trial


@pytest.mark.parametrize(("failpoint", "hit"), COMMIT_POINTS, ids=[f"{f}@{n}" for f, n in COMMIT_POINTS])
def test_gateway_killed_inside_a_group_commit_acks_nothing_undurable(
    failpoint: str, hit: int, fault_bundle: Path, broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    run_trial(fault_bundle, broker, tmp_path, ledger, "gateway SIGKILL inside a group commit",
              failpoints=f"{failpoint}@{hit}", seed=hit)  # fmt: skip


@pytest.mark.parametrize("seed", range(RANDOM_KILLS))
def test_gateway_killed_at_a_random_moment_loses_nothing(
    seed: int, fault_bundle: Path, broker: Any, ledger: Ledger, tmp_path: Path
) -> None:
    delay = random.Random(1000 + seed).uniform(0.0, KILL_WINDOW_S)
    run_trial(fault_bundle, broker, tmp_path, ledger, "gateway SIGKILL at a random moment",
              kill_after_s=delay, seed=seed)  # fmt: skip
