"""Flower's aggregation against fmfl's on the same updates, for ``benchmarks.run`` (runs in ``.venv-flwr``).

Invoked as ``.venv-flwr/bin/python -m benchmarks.flower_aggregate <command> ...``:

- ``aggregate``: Flower's ``aggregate()`` (legacy strategy helper) and ``aggregate_arrayrecords`` (what the
  1.42 ``FedAvg`` runs) against fmfl's streaming FedAvg on the deployed run's real client updates,
  interleaved, plus a numpy copy of the same bytes (memory bandwidth) and the updates' empirical entropy.
- ``scaling``: ``aggregate()`` on N random dense updates, for the scaling plot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict


def aggregation(args: argparse.Namespace) -> dict[str, Any]:
    """Flower's aggregation against fmfl's streaming FedAvg on the Flower run's real client updates.

    Flower gets the clients' trained head weights (dense fp32, as its FedAvg receives them); fmfl gets
    the same clients' deltas from the round's global, encoded by the default codec with each client's
    error-feedback residual carried across rounds (what fmfl's client sends), and decodes + validates +
    accumulates them (what its gateway does). Timings interleave the sides, ``repeats`` times.
    """
    from flwr.server.strategy.aggregate import aggregate
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    from fmfl.aggregation import FedAvg as FmflFedAvg
    from fmfl.protocol import DEFAULT_CODEC, Limits, UpdateEncoder, decode_update

    out = args.flower_out
    glob = np.load(out / "globals.npz")
    server = json.loads((out / "server.json").read_text())
    rounds = server["rounds"]
    n_params = glob["v0/weight"].size + glob["v0/bias"].size
    limits = Limits.for_vector_size(n_params)
    encoders: dict[int, Any] = {}
    encoded: list[list[bytes]] = []
    weights_by_round: list[list[int]] = []
    dense_by_round: list[list[list[np.ndarray]]] = []
    for r in rounds:
        k = int(r["round"])
        g = np.concatenate([glob[f"v{k - 1}/weight"].ravel(), glob[f"v{k - 1}/bias"].ravel()])
        rep = np.load(out / f"replies-{k:03d}.npz")
        payloads, dense, ns = [], [], []
        for i, c in enumerate(r["clients"]):
            w = np.concatenate([rep[f"c{i}/weight"].ravel(), rep[f"c{i}/bias"].ravel()])
            enc = encoders.setdefault(i, UpdateEncoder(DEFAULT_CODEC, n_params, [12800, 10], seed=i))
            payloads.append(enc.encode((w.astype(np.float64) - g).astype(np.float32), seed=i * 1000 + k))
            dense.append([rep[f"c{i}/weight"], rep[f"c{i}/bias"]])
            ns.append(int(c["num-examples"]))
        encoded.append(payloads)
        dense_by_round.append(dense)
        weights_by_round.append(ns)
    last = len(rounds) - 1
    k = int(rounds[last]["round"])
    g = np.concatenate([glob[f"v{k - 1}/weight"].ravel(), glob[f"v{k - 1}/bias"].ravel()]).astype(np.float32)
    payloads, dense, ns = encoded[last], dense_by_round[last], weights_by_round[last]
    records = [RecordDict({"arrays": ArrayRecord(array_dict={"weight": Array(d[0]), "bias": Array(d[1])}),
                           "metrics": MetricRecord({"num-examples": n})}) for d, n in zip(dense, ns, strict=True)]
    strategy = FmflFedAvg()
    ids = [f"c{i:02d}" for i in range(len(payloads))]

    def fmfl_round() -> np.ndarray:
        strategy.begin_round(g)
        for payload, n, cid in zip(payloads, ns, ids, strict=True):
            strategy.accept(decode_update(payload, n_params, limits), float(n), cid)
        return strategy.aggregate()

    def flower_legacy() -> list[np.ndarray]:
        return aggregate([(d, n) for d, n in zip(dense, ns, strict=True)])

    def flower_records() -> Any:
        return aggregate_arrayrecords(records, "num-examples")

    sides = {"fmfl": fmfl_round, "flower_aggregate": flower_legacy, "flower_arrayrecords": flower_records}
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for rep_i in range(args.repeats + 1):
        for name in names[rep_i % 3 :] + names[: rep_i % 3]:
            t0 = time.perf_counter()
            sides[name]()
            if rep_i:  # the first pass warms caches and allocators on every side
                times[name].append(time.perf_counter() - t0)
    fm = fmfl_round()
    fl = np.concatenate([a.ravel() for a in flower_legacy()])
    # memory bandwidth: a numpy copy of the bytes each side reads (dense updates vs encoded payloads)
    dense_bytes = sum(d[0].nbytes + d[1].nbytes for d in dense)
    enc_bytes = sum(len(p) for p in payloads)
    copies = {}
    for label, nbytes in (("dense", dense_bytes), ("encoded", enc_bytes)):
        src = np.ones(nbytes, dtype=np.uint8)
        dst = np.empty_like(src)
        ts = []
        for _ in range(max(args.repeats, 20)):
            t0 = time.perf_counter()
            np.copyto(dst, src)
            ts.append(time.perf_counter() - t0)
        copies[label] = ts
    return {"times": times, "clients": len(payloads), "n_params": n_params, "dense_bytes": dense_bytes,
            "encoded_bytes": enc_bytes, "copy": copies, "payload_sizes": [[len(p) for p in ps] for ps in encoded],
            "entropy": entropy_report(encoded, n_params, limits),
            "fmfl_vs_dense_max_abs": float(np.max(np.abs(fm - fl)))}


def flower_scaling(size: int, clients: list[int], repeats: int) -> dict[str, list[float]]:
    """Seconds of ``aggregate()`` on ``n`` dense float32 updates of ``size`` floats (min of repeats)."""
    from flwr.server.strategy.aggregate import aggregate

    rng = np.random.default_rng(0)
    pool = [rng.standard_normal(size).astype(np.float32) for _ in range(min(max(clients), 64))]
    out: dict[str, list[float]] = {}
    for n in clients:
        results = [([pool[i % len(pool)]], 10 + i % 90) for i in range(n)]
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            aggregate(results)
            ts.append(time.perf_counter() - t0)
        out[str(n)] = ts
    return out


def entropy_report(encoded: list[list[bytes]], n: int, limits: Any) -> dict[str, float]:
    """Payload bits against the empirical entropy of what the payloads carry (per update, averaged).

    Values: the zeroth-order entropy of the decoded quantized values (one int8 scale per update here,
    so distinct values are distinct codes). Indices: log2 C(n, k) (any k-subset equally likely), and
    the zeroth-order entropy of the gaps between sorted indices.
    """
    import math

    from fmfl.protocol import decode_update

    rows = []
    for payloads in encoded:
        for payload in payloads:
            u = decode_update(payload, n, limits)
            k = u.nnz
            _, counts = np.unique(u.values, return_counts=True)
            p = counts / counts.sum()
            h_values = float(-(p * np.log2(p)).sum())
            gaps = np.diff(np.concatenate([[-1], u.indices]))
            _, gc = np.unique(gaps, return_counts=True)
            pg = gc / gc.sum()
            h_gaps = float(-(pg * np.log2(pg)).sum())
            subset_bits = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)
            rows.append((len(payload) * 8, k, h_values * k, subset_bits, h_gaps * k))
    a = np.array(rows, dtype=np.float64).mean(axis=0)
    return {"payload_bits": a[0], "nnz": a[1], "value_bits": a[2], "index_bits_subset": a[3],
            "index_bits_gaps": a[4], "updates": float(len(rows))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Flower's aggregation against fmfl's (runs in .venv-flwr)")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("aggregate")
    a.add_argument("--flower-out", type=Path, required=True)
    a.add_argument("--repeats", type=int, default=30)
    sc = sub.add_parser("scaling", help="Flower's aggregate() on N random dense updates (for the scaling plot)")
    sc.add_argument("--size", type=int, default=149_380)
    sc.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1000])
    sc.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "scaling":
        print(json.dumps(flower_scaling(args.size, args.clients, args.repeats)))
    else:
        print(json.dumps(aggregation(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
