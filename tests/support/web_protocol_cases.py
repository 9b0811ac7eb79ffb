"""Random inputs shared by the web protocol's oracle tests: codec chains, updates, tensor layouts, ids, floats."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from fmfl.protocol import UpdateEncoder


def random_fraction(rng: np.random.Generator) -> str:
    x = float(rng.choice([1.0, 0.5, 0.25, 0.1, 0.01, 0.3, float(rng.uniform(1e-3, 1))]))
    form = int(rng.integers(4))
    if form == 0:
        return repr(x)
    if form == 1:
        # Exponent form without "+": the grammar allows "e+2", but "+" also separates stages, so no such
        # spec parses (docs/protocol.md section 7).
        return f"{x:.2e}".replace("e+", "e")
    if form == 2 and x < 1:
        return f"{x:.3f}".lstrip("0") or "1."  # ".250"
    return f"{x:g}"


def random_spec(rng: np.random.Generator) -> str:
    stages: list[str] = []
    sparsifier = int(rng.integers(6))
    amount = str(int(rng.integers(1, 40))) if rng.random() < 0.5 else random_fraction(rng)
    if sparsifier == 1:
        stages.append(f"topk:{amount}")
    elif sparsifier == 2:
        stages.append(f"topk:{amount},per_tensor")
    elif sparsifier == 3:
        stages.append(f"randk:{amount}")
    values = str(rng.choice(["", "dense", "fp32", "fp16", "int8", "int4", "sign", "int8", "sign"]))
    if values in ("int8", "int4", "sign"):
        options = []
        scale = int(rng.integers(3))
        if scale == 1:
            options.append(f"block={int(rng.choice([1, 3, 4, 16, 256, 1000]))}")
        elif scale == 2:
            options.append("per_tensor")
        if rng.random() < 0.35:
            options.append("sr")
        rng.shuffle(options)
        values += (":" + ",".join(options)) if options else ""
    if values:
        stages.append(values)
    if rng.random() < 0.5:
        stages.append("ef")
    if rng.random() < 0.3:
        stages.append("zstd" if rng.random() < 0.5 else f"zstd:level={int(rng.integers(1, 23))}")
    rng.shuffle(stages)
    return "+".join(stages) or "dense"


def random_delta(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = int(rng.integers(7))
    if kind == 6:  # halves with max |x| = 7 or 127: int4 / int8 scales of exactly 1, so v / s ties at .5
        top = float(rng.choice([7.0, 127.0]))
        x = np.clip(rng.integers(-2 * int(top), 2 * int(top) + 1, size=size) * 0.5, -top, top)
        x[int(rng.integers(size))] = top
    elif kind == 0:
        x = rng.normal(scale=10.0 ** rng.integers(-6, 3), size=size)
    elif kind == 1:  # many exact ties, zeros included: the tie rule decides the bytes
        x = rng.integers(-4, 5, size=size) * 0.25
    elif kind == 2:  # sparse
        x = np.where(rng.random(size) < 0.1, rng.normal(size=size), 0.0)
    elif kind == 3:  # beyond fp16's range and near the quantizer clip
        x = rng.normal(size=size) * np.array([1.0, 7e4, 1e30, 1e-30])[rng.integers(4, size=size)]
    elif kind == 4:  # subnormal float32 and tiny values
        x = rng.normal(size=size) * 1e-40
    else:
        x = rng.standard_cauchy(size=size)
    return np.asarray(x, dtype=np.float32)


def random_tensor_sizes(rng: np.random.Generator, size: int) -> list[int]:
    cuts = sorted({int(c) for c in rng.integers(1, size, size=int(rng.integers(0, 4)))}) if size > 1 else []
    bounds = [0, *cuts, size]
    return [b - a for a, b in itertools.pairwise(bounds)]


ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-"
BUNDLE_CHARS = ID_CHARS + "+="


def random_id(rng: np.random.Generator, chars: str = ID_CHARS, longest: int = 64) -> str:
    n = int(rng.integers(1, longest + 1)) if rng.random() < 0.3 else int(rng.integers(1, 12))
    first = chars[int(rng.integers(62))]  # a letter or digit
    return first + "".join(chars[int(i)] for i in rng.integers(len(chars), size=n - 1))


def random_float(rng: np.random.Generator) -> float:
    """Floats whose text forms differ between languages: tiny, huge, whole, one-tenths, negative zero."""
    pick = int(rng.integers(8))
    if pick == 0:
        return float(rng.choice([1e-05, 1e-07, 0.0001, 1e16, 1e15, 123456789012345678.0, 100.0, 0.1, -0.0, 5e-324]))
    if pick == 1:
        return float(rng.integers(-1000, 1000))
    if pick == 2:
        return float(np.float32(rng.normal()))  # a float32 widened, as metrics from a float32 loss are
    return float(rng.normal() * 10.0 ** rng.integers(-30, 30))


def random_text(rng: np.random.Generator) -> str:
    """Short text with ASCII, escapes, accents, CJK and an astral character (JSON writes them escaped)."""
    parts = ["model_version 10", ' "quoted" ', "\\", "\n\t", "\u00e9", "\u65e5\u672c", "\U0001f600", "\x7f", "\x01"]
    return "".join(parts[int(i)] for i in rng.integers(len(parts), size=int(rng.integers(0, 6))))


def reference_cases(seed: int, count: int) -> list[dict[str, Any]]:
    """Encoder cases written by the reference: chain, sizes, seeds, each round's delta and what the reference's
    UpdateEncoder made of it (payload, sent indices and values), and the final residual."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        size = int(rng.choice((1, 2, 7, 20, 100, 257, 1000, 3000)))
        spec = random_spec(rng)
        tensor_sizes = random_tensor_sizes(rng, size)
        encoder_seed = int(rng.integers(0, 2**63)) if rng.random() < 0.5 else int(rng.integers(0, 2**32))
        encoder = UpdateEncoder(spec, size, tensor_sizes, seed=encoder_seed)
        rounds = []
        for _ in range(int(rng.integers(1, 4))):
            delta = random_delta(rng, size)
            call_seed = None if rng.random() < 0.5 else int(rng.integers(0, 2**64, dtype=np.uint64))
            payload, sent = encoder.encode_sparse(delta, seed=call_seed)
            rounds.append(
                {
                    "delta": delta.astype("<f4").tobytes().hex(),
                    "seed": None if call_seed is None else str(call_seed),
                    "payload": payload.hex(),
                    "indices": sent.indices.tolist(),
                    "values": sent.values.astype("<f4").tobytes().hex(),
                }
            )
        cases.append(
            {
                "spec": spec,
                "size": size,
                "tensor_sizes": tensor_sizes,
                "encoder_seed": str(encoder_seed),
                "rounds": rounds,
                "residual": encoder.residual.astype("<f8").tobytes().hex(),
            }
        )
    return cases
