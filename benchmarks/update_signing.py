"""Signed-update benchmark: what Ed25519 signing costs the device and verification costs the gateway.

    .venv/bin/python -m benchmarks.update_signing [--repeats N] [--no-write]

Rewrites the "## Signed updates" section of docs/benchmarks.md (other sections are left alone). Times are the
median of ``repeats`` timed batches per call of ``fmfl.trust.sign_update`` (a fresh nonce, the signing input
with the payload's SHA-256, one Ed25519 signature) and ``UpdateVerifier.check`` (registry lookup, signing
input, one Ed25519 verification), on updates the size of the default codec's output for the real trainable
sets (docs/benchmarks.md, "Update codec") and of a dense one.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cryptography

from benchmarks._docs import cpu_model, replace_section
from fmfl.protocol import ClientUpdate
from fmfl.provision import ProvisionSpec, provision
from fmfl.trust import UpdateVerifier, load_signing_key, sign_update

DOC = Path(__file__).parents[1] / "docs" / "benchmarks.md"
HEADING = "## Signed updates"
# Payload sizes: the default codec (topk:0.01+int8+ef) on the EfficientNet-Lite0 head and the MiniLM head,
# the MiniLM head dense fp32, and a 1 MB update.
PAYLOADS = [("EfficientNet-Lite0 head, default codec", 300), ("all-MiniLM head, default codec", 3_451),
            ("all-MiniLM head, dense fp32", 597_538), ("1 MB payload", 1_000_000)]
BATCH = 50


def per_call_us(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(BATCH):
            fn()
        times.append((time.perf_counter() - start) / BATCH)
    return statistics.median(times) * 1e6


def measure(repeats: int) -> list[tuple[str, int, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fed"
        provision(ProvisionSpec(out=out, federation="bench", device_ids=("dev-1",), use_mosquitto_passwd=False))
        key = load_signing_key(out / "devices" / "dev-1" / "signing.key")
        verifier = UpdateVerifier(out / "devices.json", federation="bench")
        rows = []
        for name, size in PAYLOADS:
            update = ClientUpdate("bench", "b1", 1, 0, "dev-1", 480, "0" * 32, os.urandom(size),
                                  {"train_loss": 0.5, "eval_accuracy": 0.9})
            signed = sign_update(update, key)
            assert verifier.check(signed) is None

            def sign(u: ClientUpdate = update) -> object:
                return sign_update(u, key)

            def verify(s: ClientUpdate = signed) -> object:
                return verifier.check(s)

            rows.append((name, size, per_call_us(sign, repeats), per_call_us(verify, repeats)))
    return rows


def section(rows: list[tuple[str, int, float, float]], repeats: int) -> str:
    lines = [
        HEADING,
        "",
        f"Written by `python -m benchmarks.update_signing` on {datetime.date.today().isoformat()}.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), shared with other work; "
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}; "
        f"1-minute load average {os.getloadavg()[0]:.1f} when it finished (above the core count: upper bounds).",
        f"Median of {repeats} batches of {BATCH} calls. Sign: `sign_update` on the device (nonce, signing input with",
        "the payload's SHA-256, Ed25519). Verify: `UpdateVerifier.check` at the gateway (registry stat and lookup,",
        "signing input, Ed25519 verification), once per update before the dedupe (docs/security.md).",
        "",
        "| update | payload bytes | sign us | verify us |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {size:,} | {sign:,.0f} | {verify:,.0f} |" for name, size, sign, verify in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args()
    text = section(measure(args.repeats), args.repeats)
    if args.no_write:
        print(text)
    else:
        replace_section(DOC, HEADING, text)
        print(text)


if __name__ == "__main__":
    main()
