"""Export benchmark: time and size of every preset and train spec's bundle.

Run: ``.venv/bin/python -m benchmarks.export_sizes [--repeats N] [--no-write]``. Rewrites the
``## Measured`` section of docs/export.md (the prose above it is left alone).

Each export runs in a fresh process, so every row pays the same imports and weight loading: the
``export`` column is ``export_bundle``'s own clock (build the model, cut it, export the prefix, the
train-step and eval graphs and the inference graph, run the numeric gradient gate, hash, write), the
``process`` column adds interpreter start and the torch/transformers/onnx imports. Exports of different rows
are interleaved across repeats. The second table reads each graph's opset and operator counts from the file
(``fmfl.bundle.graph_ops``) and the gradient gate's result from the manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._docs import replace_section

DOC = Path(__file__).resolve().parent.parent / "docs" / "export.md"
SECTION = "## Measured"
LORA = "head+lora:r=8,alpha=16,targets=query,value,layers=2"
DTYPE_BYTES = {"float32": 4, "int64": 8, "int32": 4, "float16": 2}


@dataclass(frozen=True)
class Row:
    name: str
    model: str
    task: str
    spec: str
    image_size: int | None = None
    num_labels: int | None = 10


ROWS = (
    Row("minilm head", "minilm", "classify", "head"),
    Row("minilm last:1", "minilm", "classify", "last:1"),
    Row("minilm LoRA r=8 q,v x2 + head", "minilm", "classify", LORA),
    Row("effnet-lite0 head, 64 px", "effnet-lite0", "classify", "head", 64),
    Row("effnet-lite0 last:1, 64 px", "effnet-lite0", "classify", "last:1", 64),
    Row("effnet-lite0 head, 224 px", "effnet-lite0", "classify", "head", 224),
    Row("dual-encoder head, 64 px", "dual-encoder", "contrastive", "head", 64, None),
)


def child(row: Row, out: Path) -> dict[str, Any]:
    """Export one bundle in this (fresh) process and describe it."""
    t0 = time.perf_counter()
    from fmfl.bundle import verify_bundle
    from fmfl.bundle.graph_ops import graph_ops
    from fmfl.export.pipeline import ExportConfig, export_bundle
    from fmfl.models.registry import BuildOptions, build_model
    from fmfl.models.trainable import apply_train_spec, parse_train_spec

    imports = time.perf_counter() - t0
    result = export_bundle(ExportConfig(model=row.model, task=row.task, train=row.spec, out=out,
                                        num_labels=row.num_labels, image_size=row.image_size, force=True))
    t_verify = time.perf_counter()
    manifest = verify_bundle(out)
    verify = time.perf_counter() - t_verify
    # The whole model's parameter count (LoRA adapters included), for the trainable share.
    built = build_model(row.model, BuildOptions(row.task, row.num_labels, row.image_size, 64))
    apply_train_spec(built.model, parse_train_spec(row.spec))
    total_params = sum(p.numel() for p in built.model.parameters())
    files = {n: int(m["size"]) for n, m in manifest.files.items()}
    art = manifest.artifacts
    graphs = {}
    for key in ("prefix_model", "train_step_model", "eval_model", "inference_model"):
        if art.get(key):
            found = graph_ops(out / str(art[key]))
            top = sorted(found.ops.items(), key=lambda x: (-x[1], x[0][1]))[:6]
            graphs[key] = {"bytes": files.get(str(art[key]), 0), "opset": found.onnx_opset,
                           "nodes": found.num_nodes, "op_types": len(found.ops),
                           "top": [[t, c] for (_, t), c in top]}
    per_sample = sum(
        DTYPE_BYTES[str(f["dtype"])] * _prod(f["shape"]) for f in manifest.split.get("features", [])
    )
    return {
        "export_s": result.seconds, "imports_s": imports, "verify_s": verify,
        "total": result.total_bytes, "device": result.device_bytes, "files": files,
        "graphs": graphs, "weights": files.get(str(art.get("initial_weights")), 0),
        "gate": manifest.graph.get("train_step", {}).get("gate"),
        "trainable": manifest.num_trainable, "model_params": total_params, "feature_bytes": per_sample,
        "split": manifest.split["mode"],
        "points": {t: (i["point"], i["num_stages"]) for t, i in manifest.split["towers"].items()},
    }


def _prod(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def run_child(row: Row, out: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.export_sizes", "--child", row.name, "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent, timeout=900,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"export of {row.name} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("REPORT "))
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    report["process_s"] = wall
    return report


def run_old(row: Row, out: Path, python: Path) -> dict[str, Any]:
    """The same export by the old fmfl (commit ``bench_envs.OLD_COMMIT``: ORT training artifacts), in its venv."""
    from benchmarks.bench_envs import ROOT

    config = {"model": row.model, "task": row.task, "train": row.spec, "num_labels": row.num_labels,
              "image_size": row.image_size}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), "-I", str(ROOT / "benchmarks" / "client_ortt.py"), "export",
                           json.dumps(config), str(out), "--force"], capture_output=True, text=True, env=env,
                          timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"old export of {row.name} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("REPORT "))
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    report["process_s"] = wall
    return report


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("torch", "transformers", "peft", "onnx", "onnxscript", "onnxruntime"))
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), shared with other developers' work; "
            f"Python {platform.python_version()}, {versions}")


def mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def spread(ts: list[float]) -> str:
    return f"{min(ts):.1f} / {statistics.median(ts):.1f} / {max(ts):.1f}"


def graph_mb(r: dict[str, Any], key: str) -> str:
    return mb(r["graphs"][key]["bytes"]) if key in r["graphs"] else "-"


def graph_nodes(graphs: dict[str, Any], key: str) -> str:
    return f"{graphs[key]['nodes']:,}" if key in graphs else "-"


def render(results: dict[str, list[dict[str, Any]]], repeats: int,
           old: dict[str, list[dict[str, Any]]] | None = None) -> list[str]:
    from benchmarks.bench_envs import OLD_COMMIT

    old_text = ("" if not old else
                f" **old** = the same export by the old fmfl (commit {OLD_COMMIT}: ONNX Runtime training artifacts, "
                "onnxruntime-training-cpu 1.19.2, onnx 1.17, the TorchScript exporter), in its own venv "
                "(`benchmarks/bench_envs.py`), interleaved with the new exports; its device MB counts its "
                "checkpoint and training, eval and optimizer graphs.")
    lines = [
        SECTION, "",
        f"Written by `python -m benchmarks.export_sizes` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine()}.",
        f"Each bundle exported {repeats} times, each time in a fresh process, rows interleaved; times are "
        "min / median / max in seconds. **export** is `export_bundle`'s own clock (build the model and load "
        "its weights, cut it, export the prefix, the train-step and eval graphs and the inference graph, run the "
        "numeric gradient gate against torch, hash and write); **process** adds interpreter start and the torch / "
        "transformers / onnx imports. Sizes in MB (10^6 bytes). **device** = what a device must hold: every file "
        "but `inference.onnx` (the suffix again, for serving). Trainable % is of the whole model's parameters "
        "(LoRA adapters included). Feature cache = bytes the device stores per local sample (the prefix's "
        "outputs)." + old_text,
        "",
        "| bundle | export s | process s | old export s | total MB | device MB | old device MB | prefix.onnx MB | "
        "train_step.onnx MB | eval.onnx MB | inference.onnx MB | initial weights MB | trainable | % of model | "
        "split point | feature cache per sample |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, reports in results.items():
        r = reports[-1]  # sizes are the same every time: the export is deterministic in content
        points = ", ".join(f"{t} {p}/{n}" for t, (p, n) in r["points"].items())
        lines.append(
            f"| {name} | {spread([x['export_s'] for x in reports])} | "
            f"{spread([x['process_s'] for x in reports])} | "
            f"{spread([x['seconds'] for x in old[name]]) if old else '-'} | {mb(r['total'])} | {mb(r['device'])} | "
            f"{mb(old[name][-1]['device']) if old else '-'} | "
            f"{graph_mb(r, 'prefix_model')} | {graph_mb(r, 'train_step_model')} | {graph_mb(r, 'eval_model')} | "
            f"{graph_mb(r, 'inference_model')} | {mb(r['weights'])} | "
            f"{r['trainable']:,} | {100 * r['trainable'] / r['model_params']:.2f}% of "
            f"{r['model_params']:,} | "
            f"{points} | {r['feature_bytes']:,} B |")
    sizes_same = all(len({x["total"] for x in reports}) == 1 for reports in results.values())
    lines += ["", "Split point: stage where the trainable suffix starts / number of stages of the tower "
              "(embedding, blocks, pooling); the prefix runs the stages before it. Bundle sizes were "
              + ("identical" if sizes_same else "NOT identical") + " across the repeats.", "",
              "Graphs: ai.onnx opset and number of nodes of each graph (every graph uses the standard `ai.onnx` "
              "domain only; `check_standard_ops` refuses anything else), the most frequent operators of the "
              "train-step graph, and the export's gradient gate (the train-step graph's loss and gradients "
              "against torch's at two batch sizes): the largest absolute difference it saw.", "",
              "| bundle | prefix opset, nodes | train_step opset, nodes (op types) | eval nodes | inference nodes | "
              "train_step's most frequent ops | gate: batch sizes, max abs diff |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for name, reports in results.items():
        g = reports[-1]["graphs"]

        prefix = f"{g['prefix_model']['opset']}, {g['prefix_model']['nodes']:,}" if "prefix_model" in g else "-"
        step = g["train_step_model"]
        top = ", ".join(f"{t} {c}" for t, c in step["top"])
        gate = reports[-1].get("gate") or {}
        gate_cell = (f"{', '.join(str(b) for b in gate.get('batch_sizes', []))}: {gate['max_abs_diff']:.1e}"
                     if "max_abs_diff" in gate else "-")
        lines.append(f"| {name} | {prefix} | {step['opset']}, {step['nodes']:,} ({step['op_types']}) | "
                     f"{graph_nodes(g, 'eval_model')} | {graph_nodes(g, 'inference_model')} | {top} | {gate_cell} |")
    return lines


def write_section(lines: list[str]) -> None:
    """Replace (or append) the ``## Measured`` section of docs/export.md, nothing else."""
    replace_section(DOC, SECTION, "\n".join(lines), title="# Exporting a model: `fmfl export`")



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="export only the rows whose name contains this text")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/export.md alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-old", action="store_true", help="skip the old fmfl's exports (no separate venv)")
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        row = next(r for r in ROWS if r.name == args.child)
        print("REPORT " + json.dumps(child(row, args.out)), flush=True)
        return 0
    rows = [r for r in ROWS if not args.only or args.only in r.name]
    results: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rows}
    old: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rows}
    old_python = None
    if not args.no_old:
        from benchmarks.bench_envs import ortt_export

        old_python = ortt_export()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fmfl-export-sizes-") as tmp:
        for rep in range(args.repeats):
            for i, row in enumerate(rows):
                sides = ["new", "old"] if old_python is not None else ["new"]
                for side in sides[rep % len(sides) :] + sides[: rep % len(sides)]:
                    if side == "new":
                        results[row.name].append(run_child(row, Path(tmp) / f"b{i}"))
                    else:
                        assert old_python is not None
                        old[row.name].append(run_old(row, Path(tmp) / f"old{i}", old_python))
                print(f"[{time.perf_counter() - start:.0f} s] repeat {rep + 1}: {row.name} "
                      f"{results[row.name][-1]['export_s']:.1f} s"
                      + (f", old {old[row.name][-1]['seconds']:.1f} s" if old_python is not None else ""), flush=True)
    lines = render(results, args.repeats, old if old_python is not None else None)
    print("\n".join(lines))
    if not args.no_write:
        write_section(lines)
        print(f"wrote {SECTION!r} in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
