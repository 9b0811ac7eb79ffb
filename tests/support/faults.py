"""Support for the fault-injection scenarios: the trial ledger, the fleet of simulated devices, and the audit.

The audit is the oracle every scenario ends with. From the gateway's own records (``metrics.jsonl``, the
journal's accepted rows, the stored global versions) and from what the devices sent and were acknowledged:

* no acknowledged update lost: every update id Acked as accepted, of a round that closed, is among that
  round's accepted rows (and so in its model);
* none counted twice: an update id appears in one round only, once, and each client at most once per round;
* the model: starting from version 0, each closed round is recomputed by an undisturbed FedAvg fed the
  same accepted updates in the journal's order, and must equal the stored version bit for bit. The order
  matters for bit-exactness: float64 addition is not associative, so the same updates summed in another
  order may differ in the last bit (the float64 dense mean of ``gateway_harness.fedavg`` is checked
  too, to 1e-6, as an order-free sanity check).

Updates Acked in a round that then failed its quorum are, by the protocol's design, dropped with the
round (docs/aggregator.md, "round close rule"); the audit checks they are in no model and reports them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.aggregation import make_strategy
from fmfl.aggregator.durable.journal import RoundJournal
from fmfl.aggregator.durable.store import GlobalStore
from fmfl.protocol import GlobalModel, Limits, SparseUpdate, Topics
from support.gateway_harness import (
    AggregatorProcess,
    Listener,
    SimDevice,
    aggregator_args,
    decode_all,
    fedavg,
    read_metrics,
)

AGG_SIGKILLED = -signal.SIGKILL


@dataclass
class Trial:
    """One run of one scenario: what was acknowledged, and what the audit found missing or doubled."""

    scenario: str
    kills: int = 0
    acked: int = 0
    counted: int = 0
    dropped_with_failed_round: int = 0
    versions: int = 0  # versions checked bit for bit
    order_free_equal: int = 0  # of those, how many also equal the order-free float64 mean exactly
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)


class Ledger:
    """Every trial of the session, written to ``faults-summary.json`` and shown in the terminal summary."""

    def __init__(self) -> None:
        self.trials: list[Trial] = []

    def add(self, trial: Trial) -> Trial:
        self.trials.append(trial)
        return trial

    def summary(self) -> dict[str, Any]:
        by: dict[str, dict[str, int]] = {}
        for t in self.trials:
            s = by.setdefault(t.scenario, {"trials": 0, "kills": 0, "acked": 0, "lost": 0, "doubled": 0})
            s["trials"] += 1
            s["kills"] += t.kills
            s["acked"] += t.acked
            s["lost"] += len(t.lost)
            s["doubled"] += len(t.doubled)
        return {
            "trials": len(self.trials),
            "kills": sum(t.kills for t in self.trials),
            "acked": sum(t.acked for t in self.trials),
            "lost": sum(len(t.lost) for t in self.trials),
            "doubled": sum(len(t.doubled) for t in self.trials),
            "dropped_with_failed_round": sum(t.dropped_with_failed_round for t in self.trials),
            "versions_checked": sum(t.versions for t in self.trials),
            "versions_equal_to_order_free_mean": sum(t.order_free_equal for t in self.trials),
            "scenarios": by,
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.summary(), indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Sent:
    """One update as its device sent it: what the gateway decodes, and its FedAvg weight."""

    client_id: str
    round: int
    sparse: SparseUpdate
    num_samples: int


def sent_by_sim_devices(devices: Iterable[SimDevice]) -> dict[str, Sent]:
    out = {}
    for d in devices:
        for rnd, (update, sparse) in d.sent.items():
            out[update.update_id] = Sent(d.client_id, rnd, sparse, update.num_samples)
    return out


def acked_by_sim_devices(devices: Iterable[SimDevice]) -> dict[str, int]:
    """update id -> round, of every update the gateway Acked as accepted."""
    return {a.update_id: a.round for d in devices for a in d.acks if a.accepted}


def pattern(cid: str):  # type: ignore[no-untyped-def]
    """A device's delta for each round: deterministic, different per client and round."""
    base = sum(map(ord, cid))
    return lambda rnd, n: (0.01 * np.cos(np.arange(n) * 0.11 + base + 7 * rnd)).astype(np.float32)


def fleet(port: int, bundle_id: str, size: int, ids: Iterable[str], **kwargs: Any) -> list[SimDevice]:
    """Simulated devices (not started), device i holding i+1 samples so FedAvg weights differ."""
    return [
        SimDevice(port, cid, bundle_id, size, pattern(cid), num_samples=i + 1, **kwargs) for i, cid in enumerate(ids)
    ]


def await_acks(devices: Iterable[SimDevice], timeout: float = 15.0) -> None:
    """Wait (bounded) until every update the devices sent has its Ack.

    The gateway's last Acks reach the broker before it exits (it flushes its publishes), but the broker
    delivers them to the devices after that: stopping the devices at once would race that delivery. A
    missing Ack is not hidden: the audit's counts then fail.
    """
    devices = list(devices)

    def all_acked() -> bool:
        acked = {a.update_id for d in devices for a in d.acks}
        return all(u.update_id in acked for d in devices for u, _ in d.sent.values())

    deadline = time.monotonic() + timeout
    while not all_acked() and time.monotonic() < deadline:
        time.sleep(0.05)


def stop_all(devices: Iterable[SimDevice]) -> None:
    """Stop simulated devices; disconnecting first wakes paho's loop, so none waits out its 1 s select."""
    for d in devices:
        d._stop.set()
        d.client.disconnect()
    for d in devices:
        d.client.loop_stop()


def start_aggregator(
    bundle: Path,
    port: int,
    tmp: Path,
    *,
    rounds: int,
    k: int,
    m: int | None = None,
    failpoints: str = "",
    resume: bool = False,
    **extra: Any,
) -> AggregatorProcess:
    settings: dict[str, Any] = {
        "over_select": 1.0,
        "round_timeout": 60,
        "start_timeout": 30,
        "selection_window": 0.5,
        "codec": "topk:0.5+int8",
    }
    settings.update(extra)
    args = aggregator_args(bundle, port, tmp / "state", rounds=rounds, k=k, m=m, resume=resume, **settings)
    env = {"FMFL_FAILPOINTS": failpoints}
    # "-v" goes before the subcommand: the gateway's INFO log lands in the .err file for a failure report.
    return AggregatorProcess(tmp, ["aggregator", *args], extra_env=env, subcommand="-v")


def wait_for_global_model(port: int, size: int, agg: AggregatorProcess, federation: str = "default") -> None:
    """Until the gateway's retained version 0 is on the broker (it has subscribed by then)."""
    watch = Listener(port, [Topics(federation).global_model])
    try:
        limits = Limits.for_vector_size(size)
        assert watch.wait_for(lambda m: len(decode_all(m, limits, GlobalModel)) >= 1, 30), agg.stderr
    finally:
        watch.close()


def wait_exit(proc: subprocess.Popen[Any], timeout: float, what: str) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{what} did not exit within {timeout} s") from None


def audit(state: Path, initial: np.ndarray, sent: dict[str, Sent], acked: dict[str, int], trial: Trial) -> Trial:
    """Check the run in ``state`` against what was sent and acknowledged; fill ``trial`` and assert."""
    metrics = read_metrics(state)
    closed = {m["round"]: m for m in metrics if m["status"] == "ok"}
    failed = {m["round"] for m in metrics if m["status"] == "failed"}
    assert len(metrics) == len({m["round"] for m in metrics}), f"a round has two metrics lines: {metrics}"
    store = GlobalStore(state / "models")
    journal = RoundJournal(state / "journal.sqlite")
    try:
        seen: dict[str, int] = {}
        expected = initial.astype(np.float32)
        assert np.array_equal(store.load_weights(0)[1], expected)
        for rnd in sorted(closed):
            line = closed[rnd]
            rows = journal.accepted(rnd)
            assert line["participants"] == len(rows), f"round {rnd}: metrics say {line}, journal holds {rows}"
            clients = [r.client_id for r in rows]
            assert len(set(clients)) == len(clients), f"round {rnd}: a client counted twice: {clients}"
            for r in rows:
                if r.update_id in seen:
                    trial.doubled.append(r.update_id)
                seen[r.update_id] = rnd
                assert r.update_id in sent, f"round {rnd} counted {r.update_id}, which no device sent"
                assert sent[r.update_id].round == rnd
            # The undisturbed run: a fresh FedAvg fed the same updates in the same order.
            strategy = make_strategy("fedavg")
            strategy.begin_round(expected)
            for r in rows:
                strategy.accept(sent[r.update_id].sparse, float(r.num_samples), r.client_id)
            reference = strategy.aggregate()
            stored = store.load_weights(line["version"])[1]
            assert np.array_equal(stored, reference), f"round {rnd}: global v{line['version']} differs"
            dense = fedavg(expected, [(sent[r.update_id].sparse, float(r.num_samples)) for r in rows])
            np.testing.assert_allclose(stored, dense, rtol=1e-6, atol=1e-7)
            trial.versions += 1
            trial.order_free_equal += int(np.array_equal(stored, dense))
            expected = reference
        assert [v.version for v in store.versions()] == list(range(len(closed) + 1))
        for rnd in failed:
            assert not journal.accepted(rnd), f"failed round {rnd} still holds accepted rows"
    finally:
        journal.close()
    for uid, rnd in acked.items():
        if rnd in failed and uid not in seen:
            trial.dropped_with_failed_round += 1
        elif uid not in seen:
            trial.lost.append(uid)
    trial.acked = len(acked)
    trial.counted = len(seen)
    assert not trial.lost, f"acknowledged updates lost: {trial.lost}"
    assert not trial.doubled, f"updates counted twice: {trial.doubled}"
    return trial


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
