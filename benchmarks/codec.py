"""Update codec benchmark: encoded bytes and encode/decode speed of each chain on the real update shapes.

    .venv/bin/python -m benchmarks.codec [--repeats N] [--no-write]

Rewrites the "## Update codec" section of docs/benchmarks.md (other sections are left alone). Speeds are
MB/s of dense-equivalent input (4 bytes per trainable float) through ``UpdateEncoder.encode`` (including
error feedback and zstd where the chain has them) and ``decode_update`` (including all validation).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zstandard

from benchmarks._docs import cpu_model
from fmfl.protocol import ClientUpdate, Limits, UpdateEncoder, decode_update, split_message

DOC = Path(__file__).parents[1] / "docs" / "benchmarks.md"
HEADING = "## Update codec"
MESSAGE_BUDGET = 16 * 1024


@dataclass(frozen=True)
class Shape:
    name: str
    tensor_sizes: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.tensor_sizes)


# The trainable sets of the export issue. Tensor splits: MiniLM head = dense 384x384 + bias, classifier
# 384x4 + bias; LoRA r=8 on query/value of two layers = 8 tensors of 8x384 (A) or 384x8 (B), plus that head;
# EfficientNet-Lite0 head = classifier 1280x10 + bias.
SHAPES = [
    Shape("all-MiniLM head", (384 * 384, 384, 384 * 4, 4)),
    Shape("MiniLM LoRA r=8 x2 + head", (3072,) * 8 + (384 * 384, 384, 384 * 4, 4)),
    Shape("EfficientNet-Lite0 head", (1280 * 10, 10)),
]
CHAINS = [
    "dense",
    "fp16",
    "zstd",
    "int8+ef",
    "topk:0.01",
    "topk:0.01+int8+ef",
    "topk:0.01+int4+ef",
    "topk:0.01+sign+ef",
    "topk:0.01,per_tensor+int8:per_tensor+ef",
    "randk:0.01+int8+ef",
    "topk:0.01+int8+ef+zstd",
    "topk:0.001+int8+ef",
    "topk:0.1+int8+ef",
]
DEFAULT_CHAIN = "topk:0.01+int8+ef"


def update_vector(shape: Shape, rng: np.random.Generator, distribution: str) -> np.ndarray:
    """A realistic update: per-tensor scale (spread over two decades), Student-t(3) or Gaussian values."""
    parts = []
    for n in shape.tensor_sizes:
        scale = 10 ** rng.uniform(-4, -2)
        noise = rng.standard_t(3, n) if distribution == "student-t(3)" else rng.standard_normal(n)
        parts.append(scale * noise)
    return np.concatenate(parts).astype(np.float32)


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    # Batches long enough (>= ~20 ms) that the clock's resolution does not matter.
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-6)
    batch = max(1, int(0.02 / once))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples)


@dataclass(frozen=True)
class Row:
    shape: Shape
    chain: str
    distribution: str
    payload_bytes: int
    encode_s: float
    decode_s: float
    relative_error: float

    @property
    def ratio(self) -> float:
        return 4 * self.shape.size / self.payload_bytes

    def mbps(self, seconds: float) -> float:
        return 4 * self.shape.size / seconds / 1e6


def measure(shape: Shape, chain: str, distribution: str, repeats: int) -> Row:
    rng = np.random.default_rng(0)
    deltas = [update_vector(shape, rng, distribution) for _ in range(8)]
    limits = Limits.for_vector_size(shape.size)
    encoder = UpdateEncoder(chain, shape.size, shape.tensor_sizes, seed=1)
    payload = encoder.encode(deltas[0])
    sent = decode_update(payload, shape.size, limits).to_dense()
    error = float(np.linalg.norm(sent - deltas[0]) / np.linalg.norm(deltas[0]))
    cycle = iter(range(10**12))
    encode_s = _median_seconds(lambda: encoder.encode(deltas[next(cycle) % len(deltas)]), repeats)
    decode_s = _median_seconds(lambda: decode_update(payload, shape.size, limits), repeats)
    return Row(shape, chain, distribution, len(payload), encode_s, decode_s, error)


def framed_update_bytes(shape: Shape, chain: str, distribution: str) -> tuple[int, int]:
    """(bytes of a whole ClientUpdate message, number of 16 KB chunks it needs)."""
    delta = update_vector(shape, np.random.default_rng(0), distribution)
    message = ClientUpdate(
        federation="federation-01", bundle_id="minilm-head@" + "0" * 16, round=12345, model_version=12344,
        client_id="device-000001", num_samples=512, update_id="f" * 32,
        payload=UpdateEncoder(chain, shape.size, shape.tensor_sizes).encode(delta),
        metrics={"loss": 0.6931, "accuracy": 0.5, "train_seconds": 12.5},
    ).to_bytes()  # fmt: skip
    return len(message), len(split_message(message, MESSAGE_BUDGET))


def machine() -> str:
    cpu = cpu_model("unknown CPU")
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), shared with other work; Python "
        f"{platform.python_version()}, numpy {np.__version__}, zstandard {zstandard.__version__}."
    )


def render(rows: list[Row], check_rows: list[Row], repeats: int) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        HEADING,
        "",
        f"Written by `python -m benchmarks.codec` on {today}.",
        f"Machine: {machine()}",
        f"Speeds: median of {repeats} timed batches, MB/s of dense-equivalent float32 input (4 bytes",
        "per trainable float), through `UpdateEncoder.encode` (with error feedback) and `decode_update`",
        "(with all validation). Updates: per-tensor scale 10^U(-4,-2) times Student-t(3) noise",
        "(heavy-tailed), float32; the goals table repeats the default chain on Gaussian noise.",
        "Error: relative L2 error of one round's decoded update (error feedback sends the rest later).",
        "",
    ]
    for shape in SHAPES:
        lines += [
            f"### {shape.name}: {shape.size:,} floats ({4 * shape.size:,} bytes dense fp32)",
            "",
            "| chain | bytes | vs fp32 | encode ms | encode MB/s | decode ms | decode MB/s | error |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            if row.shape is not shape:
                continue
            name = f"**{row.chain}** (default)" if row.chain == DEFAULT_CHAIN else row.chain
            lines.append(
                f"| {name} | {row.payload_bytes:,} | {row.ratio:,.1f}x | {row.encode_s * 1e3:.2f} "
                f"| {row.mbps(row.encode_s):,.0f} | {row.decode_s * 1e3:.3f} | {row.mbps(row.decode_s):,.0f} "
                f"| {row.relative_error:.3f} |"
            )
        lines.append("")
    lines += [
        f"### Goals, default chain `{DEFAULT_CHAIN}`",
        "",
        "| shape | values | payload bytes | vs fp32 | whole ClientUpdate bytes | 16 KB chunks "
        "| encode MB/s | decode MB/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in check_rows:
        message_bytes, chunks = framed_update_bytes(row.shape, row.chain, row.distribution)
        lines.append(
            f"| {row.shape.name} | {row.distribution} | {row.payload_bytes:,} | {row.ratio:,.1f}x "
            f"| {message_bytes:,} | {chunks} | {row.mbps(row.encode_s):,.0f} "
            f"| {row.mbps(row.decode_s):,.0f} |"
        )
    worst_ratio = min(r.ratio for r in check_rows)
    worst_encode = min(r.mbps(r.encode_s) for r in check_rows)
    worst_decode = min(r.mbps(r.decode_s) for r in check_rows)
    lines += [
        "",
        f"Goal >= 100x smaller than fp32: worst {worst_ratio:,.0f}x "
        f"({'met' if worst_ratio >= 100 else 'MISSED'}). "
        f"Goal >= 200 MB/s: worst encode {worst_encode:,.0f} MB/s, worst decode {worst_decode:,.0f} MB/s "
        f"({'met' if min(worst_encode, worst_decode) >= 200 else 'MISSED'}).",
        "",
        "Reading: top-k chains cost one O(n) `argpartition` plus O(nnz) work, so they run faster than",
        "dense int8 or fp16, which convert every element; rand-k hashes all n positions (SplitMix64) on",
        "both sides, so its decode is the slowest; zstd gains little on float noise (1.1x dense, about",
        "10-20% on top-k payloads). On the 12,810-float EfficientNet head a fixed ~0.1 ms of Python per",
        "call dominates, which is why its MB/s are lower. fp16 slows down where many values are float16",
        "subnormals (|v| < 6.1e-5, as in the LoRA set here): numpy converts those about 30x slower. The",
        "error column is one round in isolation: with `ef` what was not sent goes out in later rounds (see",
        "the conservation tests).",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path = DOC) -> None:
    """Replace this benchmark's section of ``path`` (from its heading to the next ``## ``), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    try:
        start = lines.index(HEADING)
    except ValueError:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = lines[end:]
        new = "\n".join([*lines[:start], *section.rstrip("\n").splitlines(), *(["", *tail] if tail else [])])
        new = new.rstrip("\n") + "\n"
    path.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave the docs alone")
    args = parser.parse_args()
    rows = []
    for shape in SHAPES:
        for chain in CHAINS:
            rows.append(measure(shape, chain, "student-t(3)", args.repeats))
            print(f"{shape.name:28s} {chain:42s} {rows[-1].payload_bytes:>9,} B", flush=True)
    check_rows = [
        row for shape in SHAPES for row in (
            next(r for r in rows if r.shape is shape and r.chain == DEFAULT_CHAIN),
            measure(shape, DEFAULT_CHAIN, "gaussian", args.repeats),
        )
    ]  # fmt: skip
    section = render(rows, check_rows, args.repeats)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"wrote the '{HEADING}' section of {DOC}")


if __name__ == "__main__":
    main()
