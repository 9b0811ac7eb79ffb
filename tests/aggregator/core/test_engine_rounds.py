"""The round engine without MQTT: rounds against a FedAvg oracle, quorum, over-selection, async, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import SIZE, T0, TOPICS, Harness, fedavg, frames, make_update

from fmfl.aggregator.core.engine import RunFailed, StartTimeout
from fmfl.aggregator.core.requirements import Requirement
from fmfl.errors import FmflError
from fmfl.protocol import (
    ClientHello,
    ClientStatus,
)


def delta_for(cid: str, rnd: int) -> np.ndarray:
    rng = np.random.default_rng([rnd, sum(map(ord, cid))])
    return (rng.standard_normal(SIZE) * 0.01).astype(np.float32)


def run_round(h: Harness, ids: list[str], samples: dict[str, int]) -> list[tuple[object, float]]:
    task = h.task()
    sent = []
    for cid in ids:
        update, decoded = make_update(task, cid, delta_for(cid, task.round), num_samples=samples[cid])
        acks = h.send(cid, frames(update))
        assert [a.accepted for a in acks] == [True], acks
        sent.append((decoded, float(samples[cid])))
    return sent


def test_three_rounds_equal_the_fedavg_oracle(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    ids = ["dev-a", "dev-b", "dev-c", "dev-d"]
    samples = {"dev-a": 5, "dev-b": 10, "dev-c": 20, "dev-d": 40}
    h.register(*ids)
    h.tick()
    expected = h.initial
    for rnd in (1, 2, 3):
        task = h.task()
        assert (task.round, task.model_version, sorted(task.selected)) == (rnd, rnd - 1, ids)
        sent = run_round(h, ids, samples)  # the 4th accept closes the round (K = 4)
        expected = fedavg(expected, sent)  # type: ignore[arg-type]
        _, saved = h.engine.store.load_weights(rnd)
        np.testing.assert_allclose(saved, expected, rtol=1e-6, atol=1e-7)
    assert h.engine.finished
    version, published = h.global_model()  # the final model goes out, retained, for late devices
    assert version == 3
    np.testing.assert_array_equal(published, h.engine.store.load_weights(3)[1])
    lines = [json.loads(x) for x in (tmp_path / "state" / "metrics.jsonl").read_text().splitlines()]
    assert [(m["round"], m["version"], m["participants"], m["status"]) for m in lines] == [
        (1, 1, 4, "ok"),
        (2, 2, 4, "ok"),
        (3, 3, 4, "ok"),
    ]
    assert all(m["bytes_up"] > 0 and m["bytes_down"] > 0 and m["strategy"] == "fedavg" for m in lines)


def test_metrics_are_weighted_means_and_eval_accuracy_uses_eval_samples(tmp_path: Path) -> None:
    h = Harness(tmp_path, rounds=1, clients_per_round=2, min_clients=2)
    h.register("a", "b")
    h.tick()
    task = h.task()
    for cid, acc, ev, loss, n in (("a", 0.5, 100.0, 1.0, 10), ("b", 1.0, 300.0, 3.0, 30)):
        update, _ = make_update(
            task, cid, delta_for(cid, 1), num_samples=n,
            metrics={"eval_accuracy": acc, "eval_samples": ev, "train_loss": loss},
        )  # fmt: skip
        h.send(cid, frames(update))
    line = json.loads((tmp_path / "state" / "metrics.jsonl").read_text())
    assert line["metrics"]["eval_accuracy"] == pytest.approx((0.5 * 100 + 1.0 * 300) / 400)
    assert line["metrics"]["train_loss"] == pytest.approx((1.0 * 10 + 3.0 * 30) / 40)
    assert line["metrics"]["eval_samples"] == 400


def test_quorum_not_met_fails_the_round_and_a_new_selection_follows(tmp_path: Path) -> None:
    h = Harness(tmp_path, clients_per_round=3, min_clients=2)
    h.register("a", "b", "c")
    h.tick()
    task = h.task()
    update, _ = make_update(task, "a", delta_for("a", 1))
    h.send("a", frames(update))
    assert h.tick(T0 + 30) == []  # before the deadline nothing happens
    out = h.tick(T0 + 61)  # deadline: 1 accepted < quorum 2 -> failed, next round opens
    line = json.loads((tmp_path / "state" / "metrics.jsonl").read_text().splitlines()[0])
    assert (line["round"], line["status"], line["participants"], line["version"]) == (1, "failed", 1, 0)
    assert h.engine.store.latest().version == 0  # type: ignore[union-attr]
    nxt = h.task()
    assert (nxt.round, nxt.model_version) == (2, 0)
    assert not any(o.topic.startswith(TOPICS.root + "/global/") for o in out)  # same version: not resent
    # The failed round's update was discarded, so its resend is now refused, not acked as accepted.
    assert [(a.accepted, a.reason) for a in h.send("a", frames(update))] == [(False, "stale_round")]


def test_too_many_failed_rounds_stop_the_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, clients_per_round=2, min_clients=2, max_failed_rounds=2, round_timeout=10.0)
    h.register("a", "b")
    h.tick()
    h.tick(T0 + 11)
    with pytest.raises(RunFailed, match="2 rounds in a row"):
        h.tick(T0 + 22)


def test_over_selection_invites_more_and_closes_at_k(tmp_path: Path) -> None:
    h = Harness(tmp_path, rounds=1, clients_per_round=2, min_clients=2, over_select=1.5)
    ids = [f"dev-{i}" for i in range(6)]
    h.register(*ids)
    h.tick()
    task = h.task()
    assert len(task.selected) == 3
    assert set(task.selected) <= set(ids)
    first, second, third = task.selected
    for cid in (first, second):
        update, _ = make_update(task, cid, delta_for(cid, 1))
        h.send(cid, frames(update))
    assert h.engine.finished  # closed at K = 2 without waiting for the third
    update, _ = make_update(task, third, delta_for(third, 1))
    assert [(a.accepted, a.reason) for a in h.send(third, frames(update))] == [(False, "no_open_round")]


def test_selection_is_reproducible_and_respects_requirements(tmp_path: Path) -> None:
    h = Harness(tmp_path, clients_per_round=2, min_clients=2, requirements=(Requirement.parse("memory_bytes>=1e9"),))
    h.register("small-1", "small-2", memory_bytes=2**28)
    h.register("big-1", "big-2", "big-3", memory_bytes=2**32)
    h.tick()
    assert set(h.task().selected) <= {"big-1", "big-2", "big-3"}
    h2 = Harness(
        tmp_path / "again", clients_per_round=2, min_clients=2,
        requirements=(Requirement.parse("memory_bytes>=1e9"),),
    )  # fmt: skip
    h2.register("small-1", "small-2", memory_bytes=2**28)
    h2.register("big-1", "big-2", "big-3", memory_bytes=2**32)
    h2.tick()
    assert h2.task().selected == h.task().selected


def test_offline_and_foreign_bundle_clients_are_not_selected(tmp_path: Path) -> None:
    h = Harness(tmp_path, clients_per_round=2, min_clients=2)
    h.register("a", "b", "c")
    h.engine.handle(TOPICS.status("c"), frames(ClientStatus("c", False))[0], T0)  # its last will
    other = ClientHello("d", {"memory_bytes": 2**32}, bundle_id="another-bundle")
    h.engine.handle(TOPICS.hello("d"), frames(other)[0], T0)
    h.tick()
    assert set(h.task().selected) == {"a", "b"}


def test_waiting_for_min_clients_times_out_with_a_clear_error(tmp_path: Path) -> None:
    h = Harness(tmp_path, min_clients=3, start_timeout=5.0)
    h.register("a", "b")
    assert h.tick(T0 + 4) == []
    with pytest.raises(StartTimeout, match="only 2 eligible client"):
        h.tick(T0 + 6)


def test_a_state_dir_with_a_run_needs_resume(tmp_path: Path) -> None:
    Harness(tmp_path).engine.close()
    with pytest.raises(FmflError, match="--resume"):
        Harness(tmp_path)


def test_resume_continues_the_open_round_with_every_logged_update_once(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d"]
    samples = {"a": 1, "b": 2, "c": 3, "d": 4}
    h = Harness(tmp_path, rounds=1)
    h.register(*ids)
    h.tick()
    task = h.task()
    sent = {}
    updates = {}
    for cid in ("a", "b"):
        updates[cid], sent[cid] = make_update(task, cid, delta_for(cid, 1), num_samples=samples[cid])
        h.send(cid, frames(updates[cid]))
    # "Crash": the engine is dropped without close(); a new one resumes from the same state dir.
    h2 = Harness(tmp_path, rounds=1, resume=True)
    assert sorted(h2.engine.strategy.clients) == ["a", "b"]
    assert h2.task() == task  # the same task is published again
    # "b" never got its Ack and resends: acknowledged again, not counted twice.
    assert [(a.accepted, a.update_id) for a in h2.send("b", frames(updates["b"]))] == [(True, updates["b"].update_id)]
    assert sorted(h2.engine.strategy.clients) == ["a", "b"]
    for cid in ("c", "d"):
        updates[cid], sent[cid] = make_update(task, cid, delta_for(cid, 1), num_samples=samples[cid])
        h2.send(cid, frames(updates[cid]))
    assert h2.engine.finished
    expected = fedavg(h.initial, [(sent[c], float(samples[c])) for c in ids])
    np.testing.assert_allclose(h2.engine.store.load_weights(1)[1], expected, rtol=1e-6, atol=1e-7)
    line = json.loads((tmp_path / "state" / "metrics.jsonl").read_text())
    assert line["participants"] == 4


def test_resume_after_the_version_was_saved_finishes_the_bookkeeping(tmp_path: Path) -> None:
    h = Harness(tmp_path, rounds=2, clients_per_round=2, min_clients=2)
    h.register("a", "b")
    h.tick()
    task = h.task()
    for cid in ("a", "b"):
        update, _ = make_update(task, cid, delta_for(cid, 1))
        h.send(cid, frames(update))
    # Simulate a crash between saving version 1 and the rest: mark the round open again and drop
    # its metrics line, as if neither had been written.
    h.engine.journal._db.execute("UPDATE rounds SET status = 'open' WHERE round = 1")
    h.engine.journal._db.execute("DELETE FROM rounds WHERE round = 2")
    h.engine.journal.put("next_round", 2)
    (tmp_path / "state" / "metrics.jsonl").write_text("")
    h2 = Harness(tmp_path, rounds=2, clients_per_round=2, min_clients=2, resume=True)
    assert h2.engine.open_round is None
    assert h2.engine.version == 1
    line = json.loads((tmp_path / "state" / "metrics.jsonl").read_text())
    assert (line["round"], line["status"], line["participants"]) == (1, "ok", 2)
    assert h2.engine.journal.round(1).status == "closed"  # type: ignore[union-attr]


def test_async_mode_folds_a_late_update_in_with_staleness_weight(tmp_path: Path) -> None:
    h = Harness(tmp_path, rounds=2, clients_per_round=2, min_clients=2, async_mode=True, over_select=1.5)
    h.register("a", "b", "c")
    h.tick()
    task1 = h.task()
    assert len(task1.selected) == 3
    on_time = [c for c in task1.selected][:2]
    late = task1.selected[2]
    sent1 = []
    for cid in on_time:
        update, decoded = make_update(task1, cid, delta_for(cid, 1), num_samples=10)
        h.send(cid, frames(update))
        sent1.append((decoded, 10.0))
    assert h.engine.version == 1
    task2 = h.task()
    late_update, late_decoded = make_update(task1, late, delta_for(late, 1), num_samples=8)
    acks = h.send(late, frames(late_update))
    assert [(a.accepted, a.round) for a in acks] == [(True, 1)]
    round2 = [c for c in task2.selected if c != late][:1]
    update, decoded = make_update(task2, round2[0], delta_for(round2[0], 2), num_samples=10)
    h.send(round2[0], frames(update))
    assert h.engine.version == 2
    w1 = fedavg(h.initial, sent1)
    expected = fedavg(w1, [(late_decoded, 8 / np.sqrt(2.0)), (decoded, 10.0)])
    np.testing.assert_allclose(h.engine.store.load_weights(2)[1], expected, rtol=1e-6, atol=1e-7)
    line = json.loads((tmp_path / "state" / "metrics.jsonl").read_text().splitlines()[1])
    assert line["late_updates"] == 1


def test_robust_strategy_runs_a_round(tmp_path: Path) -> None:
    h = Harness(tmp_path, rounds=1, strategy="median")
    ids = ["a", "b", "c", "d"]
    h.register(*ids)
    h.tick()
    run_round(h, ids, dict.fromkeys(ids, 1))
    assert h.engine.version == 1


def test_devices_known_only_by_status_are_eligible_unless_something_is_required(tmp_path: Path) -> None:
    h = Harness(tmp_path, clients_per_round=2, min_clients=2)
    for cid in ("a", "b"):  # online before the gateway subscribed: their hellos were never seen
        h.engine.handle(TOPICS.status(cid), frames(ClientStatus(cid, True))[0], T0)
    h.tick()
    assert set(h.task().selected) == {"a", "b"}
    strict = Harness(
        tmp_path / "strict", clients_per_round=2, min_clients=2, start_timeout=1.0,
        requirements=(Requirement.parse("cores>=2"),),
    )  # fmt: skip
    for cid in ("a", "b"):
        strict.engine.handle(TOPICS.status(cid), frames(ClientStatus(cid, True))[0], T0)
    assert strict.tick() == []


def test_with_quorum_but_no_full_selection_the_round_waits_the_selection_window(tmp_path: Path) -> None:
    h = Harness(tmp_path, clients_per_round=4, min_clients=2, selection_window=5.0)
    h.register("a", "b")
    assert h.tick(T0) == []
    assert h.tick(T0 + 4.9) == []
    h.register("c")
    h.tick(T0 + 5.0)
    assert set(h.task().selected) == {"a", "b", "c"}


def test_after_the_first_round_the_next_opens_at_once_with_a_quorum(tmp_path: Path) -> None:
    h = Harness(tmp_path, clients_per_round=3, min_clients=2, over_select=1.0, selection_window=5.0)
    h.register("a", "b")
    h.tick(T0)
    h.tick(T0 + 5)  # the start-up window
    task = h.task()
    for cid in ("a", "b"):
        h.send(cid, frames(make_update(task, cid, delta_for(cid, 1))[0]), T0 + 6)
    h.tick(T0 + 6)  # every selected device answered: no need to wait for K=3 or the deadline
    assert h.engine.version == 1
    assert h.task().round == 2
