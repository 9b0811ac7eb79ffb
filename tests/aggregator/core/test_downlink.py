"""Downlink deltas at the gateway (docs/protocol.md 2b): the stored version is what devices rebuild.

Engine level, with real encoded updates: over many rounds a device that applies every published delta,
and one that takes every dense copy, hold the store's version bit for bit; the residual keeps what the
deltas left out (server error feedback); a resume republishes the same delta and keeps the residual;
a version without a delta clears the delta topics; the metrics line records both sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import LIMITS, SIZE, Harness, frames, make_update, read_metrics

from fmfl.aggregator.core.downlink import DownlinkCompressor, DownlinkConfigError
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.aggregator.durable.store import GlobalStore
from fmfl.protocol import GlobalModel, Reassembler, Topics
from fmfl.protocol.downlink import apply_delta, dense_weights, weights_sha256

TOPICS = Topics("default")
CLIENTS = ("a", "b", "c")


def _messages(out: list[Outgoing], kind: str) -> list[GlobalModel]:
    """Every complete GlobalModel published on ``global/+`` or ``delta/+`` (grouped as a device groups them)."""
    reassembler, found = Reassembler(2**26), []
    for o in out:
        if o.payload and o.topic.startswith(f"{TOPICS.root}/{kind}/"):
            data = reassembler.add(o.payload, source=kind)
            if data is not None:
                found.append(GlobalModel.from_bytes(data, LIMITS))
    return found


def _run_round(h: Harness, rng: np.random.Generator) -> None:
    h.tick()
    task = h.task()
    for cid in CLIENTS:
        update, _ = make_update(task, cid, rng.normal(scale=0.05, size=SIZE).astype(np.float32))
        h.send(cid, frames(update))


def test_devices_on_deltas_and_on_dense_copies_hold_the_stored_version_bit_for_bit_over_50_rounds(
    tmp_path: Path,
) -> None:
    # Prepare: FedAvgM (its momentum makes every round's change dense) and a lossy 10% top-k int8 downlink.
    rounds = 50
    h = Harness(tmp_path, rounds=rounds, clients_per_round=3, min_clients=3, strategy="fedavgm",
                downlink_codec="topk:0.1+int8+ef")  # fmt: skip
    h.register(*CLIENTS)
    rng = np.random.default_rng(5)
    store = GlobalStore(tmp_path / "state" / "models")
    on_deltas = h.initial.astype(np.float32).copy()
    # Execute: a device applies each delta as it is published; the rounds run one after another.
    for version in range(1, rounds + 1):
        published = len(h.out)
        _run_round(h, rng)
        h.tick()  # the next round's publishes (the last round's model goes out on close)
        deltas = _messages(h.out[published:], "delta")
        dense = _messages(h.out[published:], "global")
        # Assert: one delta from the version before, and both forms are the stored version, bit for bit.
        assert [(d.base_version, d.model_version) for d in deltas] == [(version - 1, version)]
        on_deltas = apply_delta(on_deltas, deltas[0], LIMITS)
        stored = store.load_weights(version)[1]
        assert on_deltas.tobytes() == stored.tobytes()
        assert [m.model_version for m in dense] == [version]
        assert dense_weights(dense[0], SIZE, LIMITS).tobytes() == stored.tobytes()
        assert deltas[0].weights_sha256 == dense[0].weights_sha256 == weights_sha256(stored)
        assert dense[0].deltas is True  # devices taking it know deltas follow
        assert len(deltas[0].payload) < 0.25 * 4 * SIZE
    assert h.engine.finished
    # The stored model is not the aggregation rule's: the residual holds the difference, and it is small
    # against the distance the model travelled (the compression delays coordinates, it does not lose them).
    residual = h.engine.downlink.residual
    travelled = np.abs(store.load_weights(rounds)[1] - h.initial).sum()
    assert 0 < np.abs(residual).sum() < 0.5 * travelled
    lines = [m for m in read_metrics(tmp_path / "state") if m["status"] == "ok"]
    assert len(lines) == rounds
    assert all(0 < m["downlink_delta_bytes"] < m["downlink_dense_bytes"] for m in lines)


def test_error_feedback_conserves_every_change_sent_or_held() -> None:
    # Property: sum of what the deltas carried + residual == sum of the rule's changes (float64 rounding aside).
    rng = np.random.default_rng(3)
    size = 1000
    downlink = DownlinkCompressor("topk:0.05+int8+ef", size)
    weights = rng.normal(size=size).astype(np.float32)
    carried = np.zeros(size)
    wanted = np.zeros(size)
    for version in range(1, 31):
        candidate = (weights + rng.normal(scale=1e-2, size=size)).astype(np.float32)
        wanted += candidate.astype(np.float64) - weights.astype(np.float64)
        new = downlink.rebase(weights, version - 1, candidate)
        carried += new.astype(np.float64) - weights.astype(np.float64)
        weights = new
    np.testing.assert_allclose(carried + downlink.residual, wanted, atol=1e-5)
    assert np.abs(downlink.residual).max() > 0  # something was held back, and it is accounted for


def test_a_resume_republishes_the_same_delta_and_keeps_the_residual(tmp_path: Path) -> None:
    # Prepare: 2 rounds done, then the gateway stops.
    h = Harness(tmp_path, rounds=4, clients_per_round=3, min_clients=3, downlink_codec="topk:0.1+int8+ef")
    h.register(*CLIENTS)
    rng = np.random.default_rng(8)
    for _ in range(2):
        _run_round(h, rng)
    h.tick()
    before = _messages(h.out, "delta")[-1]
    residual = h.engine.downlink.residual.copy()
    h.engine.close()
    # Execute
    again = Harness(tmp_path, resume=True, rounds=4, clients_per_round=3, min_clients=3,
                    downlink_codec="topk:0.1+int8+ef")  # fmt: skip
    # Assert: the same delta message (its bytes) goes out again, and the residual carries on.
    republished = _messages(again.out, "delta")
    assert [m.to_bytes() for m in republished] == [before.to_bytes()]
    assert np.array_equal(again.engine.downlink.residual, residual)
    again.engine.close()


def test_the_first_version_has_no_delta_and_clears_an_earlier_runs_delta_topics(tmp_path: Path) -> None:
    from fmfl.aggregator.durable.run_identity import PriorRun

    # Prepare: an earlier run left a delta in 3 chunk topics.
    prior = PriorRun(run=1000, last_round=2, last_version=2, delta_topics=frozenset(range(3)))
    # Execute
    h = Harness(tmp_path, prior=prior, rounds=1, clients_per_round=3, min_clients=3,
                downlink_codec="topk:0.1+int8+ef")  # fmt: skip
    # Assert: nothing on delta/+ but the three deletions; the dense model names its hash.
    delta_out = [o for o in h.out if o.topic.startswith(f"{TOPICS.root}/delta/")]
    assert sorted(o.topic for o in delta_out) == [TOPICS.global_delta_chunk(i) for i in range(3)]
    assert all(o.payload == b"" and o.retain for o in delta_out)
    (dense,) = _messages(h.out, "global")
    assert dense.weights_sha256 == weights_sha256(h.initial)
    assert dense.deltas is True


def test_dense_downlink_codec_publishes_no_delta_and_keeps_the_rules_model(tmp_path: Path) -> None:
    h = Harness(tmp_path, rounds=1, clients_per_round=3, min_clients=3, downlink_codec="dense")
    h.register(*CLIENTS)
    _run_round(h, np.random.default_rng(1))
    assert not _messages(h.out, "delta")
    assert all(m.deltas is None for m in _messages(h.out, "global"))
    assert h.engine.downlink.delta is None
    assert not h.engine.downlink.enabled
    line = read_metrics(tmp_path / "state")[-1]
    assert line["downlink_delta_bytes"] == 0
    assert line["downlink_dense_bytes"] > 4 * SIZE


@pytest.mark.parametrize("spec", ["topk:0.1,per_tensor+int8", "int8:per_tensor"])
def test_a_per_tensor_downlink_codec_is_refused_at_start(spec: str, tmp_path: Path) -> None:
    with pytest.raises(DownlinkConfigError, match="per_tensor"):
        DownlinkCompressor(spec, SIZE)
    with pytest.raises(ValueError, match="per_tensor"):
        Harness(tmp_path, rounds=1, clients_per_round=3, min_clients=3, downlink_codec=spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("topk:0.1,per_tensor+int8", "downlink_codec 'topk:0.1,per_tensor+int8': per_tensor options are not supported"),
        ("topk:1.5+int8", "bad_codec_spec"),
    ],
)
def test_a_bad_downlink_codec_is_one_line_exit_2_and_writes_nothing(
    spec: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fmfl.cli import main

    args = ["aggregator", "--bundle", str(tmp_path), "--broker", "mqtt://127.0.0.1:1", "--rounds", "1",
            "--clients-per-round", "2", "--state-dir", str(tmp_path / "state"), "--lr", "0.1",
            "--downlink-codec", spec]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmfl aggregator: error: ")
    assert message in err
    assert spec.split("+")[0] in err
    assert "Traceback" not in err
    assert not (tmp_path / "state").exists()
