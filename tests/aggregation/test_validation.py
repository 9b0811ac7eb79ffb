"""Every rejection: the reason it reports, and that the strategy is byte-for-byte unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from support.sparse_updates import Sparse, random_update

from fmfl.aggregation import FedAvg, Median, RejectedUpdate, Strategy, UpdateLimits, make_strategy, validate_update
from fmfl.aggregation.validation import RejectReason
from fmfl.errors import FmflError

SIZE = 64


def _snapshot(strategy: Strategy) -> tuple[bytes, list[tuple[str, bytes]]]:
    state = sorted((k, np.asarray(v).tobytes()) for k, v in strategy.state_dict().items())
    return strategy.round_bytes(), state


def _good() -> Sparse:
    return Sparse(np.array([1, 5, 9], dtype=np.int64), np.array([0.5, -1.0, 2.0], dtype=np.float32), SIZE)


BAD_UPDATES: list[tuple[str, object, float, str, RejectReason]] = [
    ("wrong size", Sparse(np.array([1]), np.array([1.0], np.float32), SIZE + 1), 1.0, "c", RejectReason.SIZE_MISMATCH),
    ("size not int", Sparse(np.array([1]), np.array([1.0], np.float32), 64.0), 1.0, "c", RejectReason.SIZE_MISMATCH),  # type: ignore[arg-type]
    ("2-D values", Sparse(np.array([1]), np.ones((1, 1), np.float32), SIZE), 1.0, "c", RejectReason.SHAPE),
    ("length mismatch", Sparse(np.array([1, 2]), np.ones(3, np.float32), SIZE), 1.0, "c", RejectReason.SHAPE),
    (
        "more entries than size",
        Sparse(np.arange(65), np.ones(65, np.float32), SIZE),
        1.0,
        "c",
        RejectReason.SHAPE,
    ),
    ("float indices", Sparse(np.array([1.0]), np.ones(1, np.float32), SIZE), 1.0, "c", RejectReason.DTYPE),
    ("int values", Sparse(np.array([1]), np.ones(1, np.int32), SIZE), 1.0, "c", RejectReason.DTYPE),
    ("list values", Sparse(np.array([1]), [1.0], SIZE), 1.0, "c", RejectReason.DTYPE),  # type: ignore[arg-type]
    ("not a vector", object(), 1.0, "c", RejectReason.SHAPE),
    ("unsorted", Sparse(np.array([5, 1]), np.ones(2, np.float32), SIZE), 1.0, "c", RejectReason.INDICES),
    (
        "duplicate index",
        Sparse(np.array([3, 3]), np.ones(2, np.float32), SIZE),
        1.0,
        "c",
        RejectReason.INDICES,
    ),
    (
        "negative index",
        Sparse(np.array([-1, 3]), np.ones(2, np.float32), SIZE),
        1.0,
        "c",
        RejectReason.INDICES,
    ),
    (
        "index == size",
        Sparse(np.array([3, 64]), np.ones(2, np.float32), SIZE),
        1.0,
        "c",
        RejectReason.INDICES,
    ),
    (
        "huge uint index",
        Sparse(np.array([2**63 + 5], np.uint64), np.ones(1, np.float32), SIZE),
        1.0,
        "c",
        RejectReason.INDICES,
    ),
    ("NaN", Sparse(np.array([1]), np.array([np.nan], np.float32), SIZE), 1.0, "c", RejectReason.NON_FINITE),
    ("inf", Sparse(np.array([1]), np.array([-np.inf], np.float32), SIZE), 1.0, "c", RejectReason.NON_FINITE),
    ("float32 overflow", Sparse(np.array([1]), np.array([1e300]), SIZE), 1.0, "c", RejectReason.NON_FINITE),
    (
        "norm above bound",
        Sparse(np.array([1]), np.array([11.0], np.float32), SIZE),
        1.0,
        "c",
        RejectReason.NORM,
    ),
    ("zero weight", _good(), 0.0, "c", RejectReason.WEIGHT),
    ("negative weight", _good(), -3.0, "c", RejectReason.WEIGHT),
    ("NaN weight", _good(), float("nan"), "c", RejectReason.WEIGHT),
    ("absurd weight", _good(), 1e12, "c", RejectReason.WEIGHT),
    ("bool weight", _good(), True, "c", RejectReason.WEIGHT),
    ("str weight", _good(), "10", "c", RejectReason.WEIGHT),  # type: ignore[list-item]
    ("empty client id", _good(), 1.0, "", RejectReason.INVALID_ID),
    ("long client id", _good(), 1.0, "x" * 300, RejectReason.INVALID_ID),
    ("duplicate client", _good(), 1.0, "seen", RejectReason.DUPLICATE_CLIENT),
]


@pytest.mark.parametrize("rule", ["fedadam", "median"])
@pytest.mark.parametrize(
    ("case", "update", "weight", "client", "reason"), BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES]
)
def test_rejection_reports_reason_and_changes_nothing(
    rule: str, case: str, update: Sparse, weight: float, client: str, reason: RejectReason
) -> None:
    # Prepare: a round holding one accepted update from "seen".
    strategy = make_strategy(rule, limits=UpdateLimits(max_norm=10.0))
    strategy.begin_round(np.zeros(SIZE, np.float32))
    strategy.accept(_good(), 3.0, "seen")
    before = _snapshot(strategy)
    # Execute
    with pytest.raises(RejectedUpdate) as info:
        strategy.accept(update, weight, client)  # type: ignore[arg-type]
    # Assert
    assert info.value.reason == reason
    assert str(reason) in str(info.value)
    assert isinstance(info.value, FmflError)
    assert _snapshot(strategy) == before
    assert strategy.clients == {"seen"}


def test_valid_update_is_canonicalised() -> None:
    u = Sparse(np.array([0, 7, 63], np.uint32), np.array([1.0, 2.0, 3.0], np.float64), SIZE)
    v = validate_update(u, 5, "dev-1", size=SIZE)
    assert v.indices.dtype == np.int64
    assert v.values.dtype == np.float32
    assert v.indices.tolist() == [0, 7, 63]
    assert v.weight == 5.0
    assert v.nnz == 3


def test_empty_update_is_valid() -> None:
    v = validate_update(Sparse(np.zeros(0, np.int64), np.zeros(0, np.float32), SIZE), 1.0, "c", size=SIZE)
    assert v.nnz == 0


def test_norm_at_the_bound_is_accepted() -> None:
    u = Sparse(np.array([0, 1]), np.array([3.0, 4.0], np.float32), SIZE)
    assert validate_update(u, 1.0, "c", size=SIZE, limits=UpdateLimits(max_norm=5.0)).nnz == 2


def test_capacity_by_clients_is_a_rejection_that_changes_nothing() -> None:
    strategy = Median(max_buffered_clients=2)
    strategy.begin_round(np.zeros(SIZE, np.float32))
    rng = np.random.default_rng(0)
    strategy.accept(random_update(rng, SIZE, 8), 1.0, "a")
    strategy.accept(random_update(rng, SIZE, 8), 1.0, "b")
    before = _snapshot(strategy)
    with pytest.raises(RejectedUpdate, match="max_buffered_clients=2") as info:
        strategy.accept(random_update(rng, SIZE, 8), 1.0, "c")
    assert info.value.reason == "capacity"
    assert _snapshot(strategy) == before


def test_capacity_by_bytes() -> None:
    strategy = Median(max_buffer_bytes=1_000)
    strategy.begin_round(np.zeros(SIZE, np.float32))
    strategy.accept(random_update(np.random.default_rng(1), SIZE, 10), 1.0, "a")  # 120 + 400 bytes
    with pytest.raises(RejectedUpdate, match="max_buffer_bytes=1000"):
        strategy.accept(random_update(np.random.default_rng(2), SIZE, 10), 1.0, "b")
    assert strategy.buffer.nbytes == 520


def test_streaming_rules_have_no_capacity_limit() -> None:
    strategy = FedAvg()
    strategy.begin_round(np.zeros(SIZE, np.float32))
    for c in range(2_000):
        strategy.accept(Sparse(np.array([c % SIZE]), np.ones(1, np.float32), SIZE), 1.0, f"c{c}")
    assert strategy.weighted_sum.count == 2_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_norm": 0.0}, "max_norm"),
        ({"max_norm": float("inf")}, "max_norm"),
        ({"max_weight": -1.0}, "max_weight"),
    ],
)
def test_limits_check_their_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UpdateLimits(**kwargs)


def test_huge_finite_values_are_accepted_and_their_norm_computed_without_overflow() -> None:
    # 1e30**2 overflows float32; the norm is taken in float64, where it does not.
    u = Sparse(np.array([1, 2]), np.array([1e30, -1e30], np.float32), SIZE)
    assert validate_update(u, 1.0, "c", size=SIZE).nnz == 2
    with pytest.raises(RejectedUpdate, match="norm"):
        validate_update(u, 1.0, "c", size=SIZE, limits=UpdateLimits(max_norm=1e29))
    assert validate_update(u, 1.0, "c", size=SIZE, limits=UpdateLimits(max_norm=1.5e30)).nnz == 2


def test_a_checked_update_is_added_without_validating_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Validation once: check() returns a token; add() folds it in without the O(nnz) checks.
    from fmfl.aggregation import strategy as strategy_module
    from fmfl.aggregation.rules.fedavg import FedAvg
    from fmfl.aggregation.strategy import RoundStateError

    s = FedAvg()
    s.begin_round(np.zeros(SIZE, np.float32))
    calls: list[str] = []
    real = strategy_module.validate_update

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("validate")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(strategy_module, "validate_update", counting)
    checked = s.check(_good(), 2.0, "c")
    s.add(checked)
    assert calls == ["validate"]
    assert s.clients == {"c"}
    with pytest.raises(RejectedUpdate) as again:  # the same token twice: counted once
        s.add(checked)
    assert again.value.reason == RejectReason.DUPLICATE_CLIENT
    stale = s.check(_good(), 1.0, "d")
    s.begin_round(np.zeros(SIZE, np.float32))  # a new round: an old token is refused, nothing added
    with pytest.raises(RoundStateError, match="another round"):
        s.add(stale)
    assert s.clients == frozenset()
