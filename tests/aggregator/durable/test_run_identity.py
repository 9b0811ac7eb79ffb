"""Run identity (protocol 1.2): runs never mix, numbers never repeat, and a 1.1 device still takes part.

Engine level: a new run learns from what earlier runs left retained (``PriorRun``), continues their round
and version numbers, clears their task and surplus chunk topics, and refuses updates of another run.
Real broker: two gateway runs back to back on one Mosquitto, their models in different chunk counts,
served by a device built from the frozen 1.1 protocol copy (tests/fmfl_protocol_1_1).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from support.device_v11 import DeviceV11
from support.gateway_harness import (
    LIMITS,
    SIZE,
    AggregatorProcess,
    Harness,
    Listener,
    aggregator_args,
    bundle_info,
    frames,
    make_update,
    read_metrics,
)

from fmfl.aggregator.durable.run_identity import PriorRun, prior_from_retained
from fmfl.aggregator.durable.store import GlobalStore
from fmfl.protocol import GlobalModel, Limits, Reassembler, RoundTask, Topics, split_message
from fmfl.protocol.chunking import chunk_run

TOPICS = Topics("default")


def test_a_new_run_continues_the_numbers_of_the_run_before_and_clears_its_retained_topics(tmp_path: Path) -> None:
    # Prepare: the broker held round 5's task (version 7) and a model in 6 chunks of run 1000.
    prior = PriorRun(run=1000, last_round=5, last_version=8, task_retained=True, chunk_topics=frozenset(range(6)))
    # Execute
    h = Harness(tmp_path, prior=prior, rounds=1, clients_per_round=2, min_clients=2)
    start = list(h.out)
    h.register("a", "b")
    h.tick()
    task = h.task()
    # Assert: the old task is cleared first; chunks beyond the new model's are cleared.
    assert start[0].topic == TOPICS.task
    assert start[0].payload == b""
    assert start[0].retain
    model_chunks = [o for o in start if "/global/" in o.topic and o.payload]
    cleared = sorted(int(o.topic.rsplit("/", 1)[1]) for o in start if "/global/" in o.topic and not o.payload)
    assert cleared == list(range(len(model_chunks), 6))
    assert h.engine.run > 1000
    assert task.run == h.engine.run
    assert (task.round, task.model_version) == (6, 9)
    assert all(chunk_run(o.payload) == h.engine.run for o in start if o.payload)
    version, _ = h.global_model()
    assert version == 9
    # The run finishes after --rounds 1 more version, whatever number it started at.
    for cid in ("a", "b"):
        update, _ = make_update(task, cid, np.full(SIZE, 0.01, dtype=np.float32))
        assert [a.accepted for a in h.send(cid, frames(update))] == [True]
    assert h.engine.version == 10
    assert h.engine.finished


def test_a_resumed_run_keeps_its_run_id_and_first_version(tmp_path: Path) -> None:
    h = Harness(tmp_path, prior=PriorRun(run=7, last_version=2), rounds=2)
    run = h.engine.run
    h.engine.close()
    again = Harness(tmp_path, resume=True, prior=PriorRun(run=run + 50, last_version=40), rounds=2)
    assert (again.engine.run, again.engine.first_version, again.engine.version) == (run, 3, 3)


def test_an_update_of_another_run_is_refused_and_a_compact_update_is_accepted(tmp_path: Path) -> None:
    h = Harness(tmp_path, rounds=1, clients_per_round=2, min_clients=2)
    h.register("a", "b")
    h.tick()
    task = h.task()
    stale, _ = make_update(task, "a", np.full(SIZE, 0.01, dtype=np.float32), run=(task.run or 0) - 1)
    acks = h.send("a", [stale.to_compact_bytes()])
    assert [(a.accepted, a.reason) for a in acks] == [(False, "wrong_run")]
    assert h.engine.wal.count(task.round) == 0
    assert h.engine.strategy.clients == frozenset()
    good, _ = make_update(task, "a", np.full(SIZE, 0.01, dtype=np.float32), run=task.run)
    packets = split_message(good.wire_bytes(), bare=True)
    assert len(packets) == 1
    assert packets[0][:4] == b"FMFL"
    assert [(a.accepted, a.update_id) for a in h.send("a", packets)] == [(True, good.update_id)]


def test_prior_run_is_read_from_retained_task_and_chunks(tmp_path: Path) -> None:
    h = Harness(tmp_path, prior=PriorRun(run=5, last_round=2, last_version=3), rounds=1, clients_per_round=1,
                min_clients=1)  # fmt: skip
    h.register("a")
    h.tick()
    retained = [(o.topic, o.payload) for o in h.out if o.retain]
    retained.append((TOPICS.global_model_chunk(9), b"\x00garbage"))  # unreadable: still a topic to clear
    prior = prior_from_retained(retained, TOPICS, LIMITS)
    assert (prior.run, prior.last_round, prior.last_version) == (h.engine.run, 3, 4)
    assert prior.task_retained
    assert 9 in prior.chunk_topics
    assert prior.first_round == 4


# --- two real runs on one broker, with a device that speaks protocol 1.1 only (support.device_v11) ----


def retained_state(port: int, limits: Limits) -> tuple[list[str], list[RoundTask], list[GlobalModel]]:
    """What a device connecting now receives retained: the global chunk topics, the task, the model."""
    listener = Listener(port, [TOPICS.task, TOPICS.global_model])
    time.sleep(0.5)
    messages = [(t, p) for t, p, retain in listener.snapshot() if retain and p]
    listener.close()
    reassembler = Reassembler(2**26, 16)
    tasks, models = [], []
    for topic, payload in messages:
        data = reassembler.add(payload, source=topic.split("/")[2])
        if data is not None and topic == TOPICS.task:
            tasks.append(RoundTask.from_bytes(data, limits))
        elif data is not None:
            models.append(GlobalModel.from_bytes(data, limits))
    return sorted(t for t, _ in messages if "/global/" in t), tasks, models


def test_two_runs_back_to_back_never_mix_and_a_1_1_device_serves_both(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(gateway_bundle)
    limits = Limits.for_vector_size(initial.size)
    device = DeviceV11(mosquitto.port, "old-1", bundle_id, initial)
    runs = []
    try:
        # Run 1: the model in 2 packets; run 2 (a fresh state folder): 1 packet, so a surplus chunk topic.
        for number, packet in ((1, 400), (2, 1024)):
            state = tmp_path / f"run{number}"
            agg = AggregatorProcess(
                tmp_path,
                aggregator_args(
                    gateway_bundle, mosquitto.port, state, rounds=2, k=1, codec="topk:0.5+int8",
                    round_timeout=20, start_timeout=20, selection_window=0, max_packet_bytes=packet,
                ),
            )  # fmt: skip
            assert agg.wait(90) == 0, agg.stderr
            runs.append((state, retained_state(mosquitto.port, limits)))
    finally:
        device.close()
    assert device.errors == []
    (state1, (chunks1, _, models1)), (state2, (chunks2, tasks2, models2)) = runs
    # Run 1: rounds 1-2, versions 0-2. Run 2 continues: rounds 3-4, versions 3 (its start) to 5.
    assert [(m["round"], m["version"]) for m in read_metrics(state1)] == [(1, 1), (2, 2)]
    assert [(m["round"], m["version"]) for m in read_metrics(state2)] == [(3, 4), (4, 5)]
    run1, run2 = models1[0].run, models2[0].run
    assert run1 is not None
    assert run2 is not None
    assert run2 > run1
    # The broker holds run 2's model in its 2 chunk topics only (run 1's surplus cleared), and run 2's task.
    assert len(chunks1) > len(chunks2)
    assert chunks2 == [TOPICS.global_model_chunk(i) for i in range(len(chunks2))]
    assert [(m.run, m.model_version) for m in models2] == [(run2, 5)]
    assert [(t.run, t.round) for t in tasks2] == [(run2, 4)]
    # The 1.1 device took part in all 4 rounds; each model is the one before plus exactly what it sent.
    assert sorted(device.sent) == [1, 2, 3, 4]
    accepted = sorted(a.update_id for a in device.acks if a.accepted)
    assert accepted == sorted(u.update_id for u, _ in device.sent.values())
    store1, store2 = GlobalStore(state1 / "models"), GlobalStore(state2 / "models")
    np.testing.assert_array_equal(store2.load_weights(3)[1], initial)  # run 2 starts from the bundle again
    for store, rounds, first in ((store1, (1, 2), 0), (store2, (3, 4), 3)):
        weights = store.load_weights(first)[1]
        for r in rounds:
            weights = (weights.astype(np.float64) + device.sent[r][1]).astype(np.float32)
            np.testing.assert_allclose(store.load_weights(first + r - rounds[0] + 1)[1], weights, rtol=1e-6)
