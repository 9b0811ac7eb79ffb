"""The fast (vectorised) codec checked against the plain references in reference.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fmfl.protocol import Limits, UpdateEncoder, decode_update
from fmfl.protocol.codec.groups import block_counts
from fmfl.protocol.codec.index_coding import IndexCoding, decode_indices, encode_indices
from fmfl.protocol.codec.randk import seeded_indices
from fmfl.protocol.codec.varint import decode_varints, encode_varints

from . import reference

_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


def _vector(draw: st.DrawFn, min_size: int = 1, max_size: int = 400) -> np.ndarray:
    size = draw(st.integers(min_size, max_size))
    return draw(hnp.arrays(np.float32, size, elements=_floats))


@given(st.lists(st.integers(0, 2**35 - 1), max_size=200))
def test_varints_match_the_one_at_a_time_reference(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    encoded = encode_varints(array)
    assert encoded == reference.varint_bytes(values)
    assert decode_varints(encoded, len(values)).tolist() == values


@given(st.data())
def test_index_coding_round_trips_and_picks_the_smaller(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 3000))
    indices = np.array(sorted(data.draw(st.sets(st.integers(0, size - 1), max_size=size))), dtype=np.int64)
    coding, section = encode_indices(indices, size)
    decoded = decode_indices(coding, memoryview(section), size, indices.size)
    assert decoded.tolist() == indices.tolist()
    if coding == IndexCoding.DELTA_VARINT:
        assert len(section) <= (size + 7) // 8
    elif coding == IndexCoding.BITMAP:
        gaps = [int(indices[0])] + [int(b - a - 1) for a, b in itertools.pairwise(indices)]
        assert len(reference.varint_bytes(gaps)) > len(section)


@given(st.data())
@settings(max_examples=60)
def test_topk_keeps_the_largest_magnitudes(data: st.DataObject) -> None:
    delta = _vector(data.draw)
    k = data.draw(st.integers(1, delta.size))
    update = decode_update(UpdateEncoder(f"topk:{k}", delta.size).encode(delta), delta.size, _limits(delta))
    assert update.nnz == k
    assert np.all(np.diff(update.indices) > 0)
    # Oracle: every kept |value| >= the k-th largest, every dropped |value| <= it; kept values are exact.
    threshold = reference.top_k_threshold(delta.astype(np.float64), k)
    kept = np.zeros(delta.size, dtype=bool)
    kept[update.indices] = True
    assert np.all(np.abs(delta[kept]) >= threshold)
    assert np.all(np.abs(delta[~kept]) <= threshold)
    np.testing.assert_array_equal(update.values, delta[kept])


def test_topk_per_tensor_keeps_a_share_of_every_tensor() -> None:
    rng = np.random.default_rng(1)
    delta = np.concatenate([rng.normal(0, 1, 1000), rng.normal(0, 1e-4, 10)]).astype(np.float32)
    update = decode_update(
        UpdateEncoder("topk:0.01,per_tensor", delta.size, [1000, 10]).encode(delta),
        delta.size,
        _limits(delta),
    )
    assert update.nnz == 10 + 1
    assert int(np.sum(update.indices >= 1000)) == 1  # the tiny head still gets its coordinate


@pytest.mark.parametrize(("chain", "levels"), [("int8", 127), ("int4", 7)])
@given(data=st.data())
@settings(max_examples=40)
def test_linear_quantization_matches_the_reference(chain: str, levels: int, data: st.DataObject) -> None:
    delta = _vector(data.draw)
    block = data.draw(st.integers(1, 64))
    update = decode_update(
        UpdateEncoder(f"{chain}:block={block}", delta.size).encode(delta), delta.size, _limits(delta)
    )
    expected = reference.quantize_groups(
        delta.astype(np.float64), block_counts(delta.size, block).tolist(), levels
    )
    np.testing.assert_array_equal(update.values, expected)


@given(data=st.data())
@settings(max_examples=40)
def test_sign_matches_the_reference(data: st.DataObject) -> None:
    delta = _vector(data.draw)
    block = data.draw(st.integers(1, 64))
    update = decode_update(
        UpdateEncoder(f"sign:block={block}", delta.size).encode(delta), delta.size, _limits(delta)
    )
    expected = reference.sign_groups(delta.astype(np.float64), block_counts(delta.size, block).tolist())
    np.testing.assert_array_equal(update.values, expected)


def test_fp16_matches_numpy_half_and_clips() -> None:
    delta = np.array([1e-3, -2.5, 7e4, -1e5, 0.0], dtype=np.float32)
    update = decode_update(UpdateEncoder("fp16", 5).encode(delta), 5, _limits(delta))
    expected = np.clip(delta, -65504, 65504).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(update.values, expected)


@pytest.mark.parametrize("chain", ["int8:sr", "int4:sr", "sign:sr"])
def test_stochastic_rounding_is_unbiased(chain: str) -> None:
    rng = np.random.default_rng(0)
    delta = rng.normal(0, 1, 64).astype(np.float32)
    encoder = UpdateEncoder(chain + ",block=64" if ":" in chain else chain, 64, seed=3)
    trials = 4000
    mean = np.zeros(64)
    for _ in range(trials):
        mean += decode_update(encoder.encode(delta), 64, _limits(delta)).to_dense()
    mean /= trials
    spread = float(np.max(np.abs(delta)))
    # Standard error of a mean of values in [-max, max] is at most max / sqrt(trials); allow 5 sigma.
    assert np.max(np.abs(mean - delta)) < 5 * spread / np.sqrt(trials)


@given(st.integers(0, 2**64 - 1), st.integers(1, 500), st.data())
def test_seeded_indices_match_the_sorting_reference(seed: int, size: int, data: st.DataObject) -> None:
    from fmfl.protocol.codec.randk import position_hashes

    k = data.draw(st.integers(0, size))
    hashes = position_hashes(seed, size).tolist()
    expected = sorted(sorted(range(size), key=lambda i: (hashes[i], i))[:k])
    assert seeded_indices(seed, size, k).tolist() == expected


def test_splitmix64_matches_the_published_sequence() -> None:
    # SplitMix64 with state 0: the first outputs (Vigna's reference splitmix64.c).
    from fmfl.protocol.codec.randk import position_hashes

    assert position_hashes(0, 3).tolist() == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


@pytest.mark.parametrize(
    "chain",
    ["dense", "fp16", "topk:0.1", "topk:0.1+int8+ef", "topk:0.1+int4+ef", "topk:0.1+sign+ef",
     "randk:0.1+int8", "topk:0.1+int8+ef+zstd", "int8:per_tensor", "topk:0.2,per_tensor+int4:per_tensor,sr"],
)  # fmt: skip
def test_decoder_returns_exactly_what_the_encoder_says_it_sent(chain: str) -> None:
    rng = np.random.default_rng(2)
    delta = rng.standard_t(3, 2000).astype(np.float32)
    encoder = UpdateEncoder(chain, 2000, [1500, 500], seed=5)
    for _ in range(3):
        payload, sent = encoder.encode_sparse(delta)
        update = decode_update(payload, 2000, _limits(delta))
        np.testing.assert_array_equal(update.indices, sent.indices)
        np.testing.assert_array_equal(update.values, sent.values)


def test_sparse_update_helpers() -> None:
    delta = np.array([0.0, 5.0, 0.0, -1.0], dtype=np.float32)
    update = decode_update(UpdateEncoder("topk:2", 4).encode(delta), 4, _limits(delta))
    np.testing.assert_array_equal(update.to_dense(), delta)
    accumulator = np.ones(4)
    update.add_to(accumulator, weight=2.0)
    np.testing.assert_array_equal(accumulator, [1.0, 11.0, 1.0, -1.0])
    with pytest.raises(ValueError, match="shape"):
        update.add_to(np.zeros(3))
    assert not update.values.flags.writeable


def _limits(delta: np.ndarray) -> Limits:
    return Limits.for_vector_size(delta.size)
