"""rng.js against numpy: ``default_rng(seed).permutation(n)`` must be the same order for every seed and size the
device can meet (the round seed is task.seed + round, times 1000 plus the epoch: beyond 2**53)."""

from __future__ import annotations

import numpy as np
from support.web_training_node import run_js

SEEDS = [0, 1, 2, 7, 42, 999, 8000, 8001, 2**31 - 1, 2**32 - 1, 2**32, 2**32 + 1, 2**53 - 1, 2**53 * 1000 + 3, 2**64,
         2**96 + 12345, 2**128 + 1]
SIZES = [0, 1, 2, 3, 10, 100, 480, 600, 1000, 65539]


def test_permutation_equals_numpy_for_many_seeds_and_sizes() -> None:
    rng = np.random.default_rng(12345)
    seeds = SEEDS + [int(s) for s in rng.integers(0, 2**62, 20)]
    cases = [(s, n) for s in seeds for n in SIZES if n <= 1000] + [(s, 65539) for s in seeds[:4]]
    got = run_js("output(input.map(([s, n]) => Array.from(device.permutation(BigInt(s), n))));",
                 [[str(s), n] for s, n in cases])
    for (seed, n), order in zip(cases, got, strict=True):
        assert order == np.random.default_rng(seed).permutation(n).tolist(), (seed, n)


def test_seed_state_equals_numpy_seed_sequence() -> None:
    seeds = [0, 1, 2**32 + 5, 2**70 + 3]
    got = run_js("output(input.map((s) => Array.from(device.defaultRngSeedState(BigInt(s), 8))));",
                 [str(s) for s in seeds])
    for seed, words in zip(seeds, got, strict=True):
        assert words == np.random.SeedSequence(seed).generate_state(8).tolist()


def test_negative_seed_and_bad_size_are_refused() -> None:
    got = run_js("""
      const msg = (f) => { try { f(); return null; } catch (e) { return e.message; } };
      output([msg(() => device.permutation(-1n, 3)), msg(() => device.permutation(0, -1)),
              msg(() => device.permutation(0, 1.5))]);
    """)
    assert "non-negative" in got[0]
    assert "n must be" in got[1]
    assert "n must be" in got[2]
