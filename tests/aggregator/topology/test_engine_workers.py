"""Scale-out without a broker: a coordinator and two workers, each given a share of the updates,
produce exactly the single-process global model, also when a resend reaches a second worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import SIZE, T0, TOPICS, Bus, Harness, frames, make_update

from fmfl.aggregation import make_strategy
from fmfl.aggregator.topology.worker import WorkerEngine
from fmfl.protocol import RoundTask


def dyadic_delta(cid: str) -> np.ndarray:
    """Multiples of 2**-8 in [-1, 1): float32 exact, and so are their integer-weighted float64 sums."""
    rng = np.random.default_rng(sum(map(ord, cid)))
    return (rng.integers(-256, 256, SIZE) / 256).astype(np.float32)


def run(tmp: Path, shares: list[tuple[str, str]], workers: tuple[str, ...]) -> np.ndarray:
    """Round 1 with updates of ``shares`` = [(node, client)]; the node ``coord`` is the coordinator."""
    ids = sorted({c for _, c in shares})
    h = Harness(tmp, rounds=1, clients_per_round=len(ids), min_clients=len(ids), codec="dense",
                workers=workers)  # fmt: skip
    bus = Bus()
    bus.add("coord", h.engine)
    h.register(*ids)
    bus.publish("coord", h.tick())
    for w in workers:
        bus.add(w, WorkerEngine(
            config=h.config, worker_id=w, bundle_id=h.bundle_id, size=SIZE,
            make_strategy=lambda: make_strategy("fedavg"), state_dir=tmp / w,
        ))  # fmt: skip
    task = h.task()
    updates = {c: make_update(task, c, dyadic_delta(c), num_samples=3 + len(c))[0] for c in ids}
    for node, cid in shares:
        acks = bus.update(node, TOPICS.update(cid), frames(updates[cid]))
        assert len(acks) == 1
    assert h.engine.version == 1, h.engine.closing.done(T0)
    return h.engine.store.load_weights(1)[1]


def test_two_workers_and_the_coordinator_equal_one_process_bit_for_bit(tmp_path: Path) -> None:
    ids = [f"dev-{i}" for i in range(9)]
    single = run(tmp_path / "single", [("coord", c) for c in ids], ())
    nodes = ["coord", "w1", "w2"]
    split = run(tmp_path / "split", [(nodes[i % 3], c) for i, c in enumerate(ids)], ("w1", "w2"))
    np.testing.assert_array_equal(split, single)


def test_a_resend_reaching_a_second_worker_counts_once(tmp_path: Path) -> None:
    ids = [f"dev-{i}" for i in range(6)]
    single = run(tmp_path / "single", [("coord", c) for c in ids], ())
    # dev-1's update goes to w1 and, resent, to w2; dev-2's to the coordinator and to w2.
    shares = [("w1", "dev-1"), ("w2", "dev-1"), ("coord", "dev-2"), ("w2", "dev-2")]
    shares += [("w1", "dev-0"), ("w2", "dev-3"), ("coord", "dev-4"), ("w1", "dev-5")]
    split = run(tmp_path / "split", shares, ("w1", "w2"))
    np.testing.assert_array_equal(split, single)


def test_a_worker_refuses_updates_after_the_close_request(tmp_path: Path) -> None:
    h = Harness(
        tmp_path,
        rounds=1,
        clients_per_round=1,
        min_clients=1,
        codec="dense",
        workers=("w1",),
        over_select=2.0,
    )
    w = WorkerEngine(config=h.config, worker_id="w1", bundle_id=h.bundle_id, size=SIZE,
                     make_strategy=lambda: make_strategy("fedavg"), state_dir=tmp_path / "w1")  # fmt: skip
    bus = Bus()
    bus.add("coord", h.engine)
    bus.add("w1", w)
    h.register("a", "b")
    bus.publish("coord", h.tick())
    task: RoundTask = h.task()
    bus.update("coord", TOPICS.update("a"), frames(make_update(task, "a", dyadic_delta("a"))[0]))  # K = 1: closes
    assert h.engine.version == 1
    assert w.frozen
    (late,) = bus.update("w1", TOPICS.update("b"), frames(make_update(task, "b", dyadic_delta("b"))[0]))
    assert b"no_open_round" in late.payload


@pytest.mark.parametrize("bad", [b"not json", b'{"round": "x"}'])
def test_bad_worker_messages_are_dropped(tmp_path: Path, bad: bytes) -> None:
    h = Harness(tmp_path, rounds=1, clients_per_round=1, min_clients=1, workers=("w1",))
    assert h.engine.handle(TOPICS.root + "/gateway/progress/w1", bad, T0) == []
    assert h.engine.bad_messages == {"worker_message": 1}
