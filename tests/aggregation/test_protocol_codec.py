"""Real encoded updates from ``fmfl.protocol`` (top-k + int8 + error feedback) through the aggregator:
the structural ``SparseVector`` accepts the protocol's ``SparseUpdate`` as decoded off the wire."""

from __future__ import annotations

import numpy as np
import pytest
from support.sparse_updates import Sparse, ref_median, ref_weighted_mean

from fmfl.aggregation import make_strategy

protocol = pytest.importorskip("fmfl.protocol")

SIZE = 20_000


def _decoded_updates(n: int) -> list[object]:
    limits = protocol.Limits.for_vector_size(SIZE)
    out = []
    for c in range(n):
        encoder = protocol.UpdateEncoder(protocol.DEFAULT_CODEC, SIZE, seed=c)
        delta = np.random.default_rng(c).standard_normal(SIZE).astype(np.float32) * 1e-2
        out.append(protocol.decode_update(encoder.encode(delta), SIZE, limits))
    return out


@pytest.mark.parametrize("rule", ["fedavg", "median"])
def test_decoded_wire_updates_aggregate_like_the_reference(rule: str) -> None:
    # Prepare: payloads as devices publish them, decoded as the gateway will (read-only arrays).
    ups = _decoded_updates(5)
    weights = [float(10 + c) for c in range(5)]
    g = np.zeros(SIZE, np.float32)
    strategy = make_strategy(rule)
    strategy.begin_round(g)
    # Execute
    for c, u in enumerate(ups):
        strategy.accept(u, weights[c], f"dev-{c}")  # type: ignore[arg-type]
    out = strategy.aggregate()
    # Assert
    plain = [Sparse(u.indices, u.values, u.size) for u in ups]  # type: ignore[attr-defined]
    expected = ref_weighted_mean(plain, weights) if rule == "fedavg" else ref_median(plain)
    np.testing.assert_allclose(out, expected.astype(np.float32), rtol=1e-6)
    assert all(u.nnz == 200 for u in ups)  # type: ignore[attr-defined]  # top-k 1% really is sparse


def test_a_selection_too_large_for_one_task_packet_is_an_operator_error_not_a_crash() -> None:
    from fmfl.aggregator.core.outbound import TaskTooLarge, task_packets
    from fmfl.errors import FmflError
    from fmfl.protocol import RoundTask, Topics

    task = RoundTask(federation="default", bundle_id="b1", round=1, model_version=0,
                     selected=tuple(f"device-{i:05d}" for i in range(200)), batch_size=16, lr=1e-3,
                     codec="topk:0.01+int8+ef", deadline=2e9, seed=1, local_epochs=1)
    assert len(task_packets(Topics("default"), task, 128 * 1024)) == 1
    with pytest.raises(TaskTooLarge, match=r"the round task \(200 selected clients\) does not fit one packet of "
                                           r"1024 bytes; raise --max-packet-bytes or lower --clients-per-round"):
        task_packets(Topics("default"), task, 1024)
    assert issubclass(TaskTooLarge, FmflError)  # the CLI prints it as one line and exits 2
