"""Export benchmark: time and size of every preset and train spec's bundle.

Run: ``.venv/bin/python -m benchmarks.export_sizes [--repeats N] [--no-write]``. Rewrites the
``## Measured`` section of docs/export.md (the prose above it is left alone).

Each export runs in a fresh process, so every row pays the same imports and weight loading: the
``export`` column is ``export_bundle``'s own clock (build the model, cut it, export both halves,
generate the ORT artifacts, hash, write), the ``process`` column adds interpreter start and the
torch/transformers/onnx imports. Exports of different rows are interleaved across repeats.
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
    per_sample = sum(
        DTYPE_BYTES[str(f["dtype"])] * _prod(f["shape"]) for f in manifest.split.get("features", [])
    )
    return {
        "export_s": result.seconds, "imports_s": imports, "verify_s": verify,
        "total": result.total_bytes, "device": result.device_bytes, "files": files,
        "checkpoint": files.get(str(art["checkpoint"]), 0),
        "prefix": files.get(str(art.get("prefix_model")), 0) if art.get("prefix_model") else 0,
        "training": sum(files.get(str(art[k]), 0) for k in ("training_model", "eval_model",
                                                             "optimizer_model")),
        "inference": files.get(str(art.get("inference_model")), 0),
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


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("torch", "transformers", "peft", "onnx", "onnxruntime-training-cpu"))
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), shared with other developers' work; "
            f"Python {platform.python_version()}, {versions}")


def mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def spread(ts: list[float]) -> str:
    return f"{min(ts):.1f} / {statistics.median(ts):.1f} / {max(ts):.1f}"


def render(results: dict[str, list[dict[str, Any]]], repeats: int) -> list[str]:
    lines = [
        SECTION, "",
        f"Written by `python -m benchmarks.export_sizes` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine()}.",
        f"Each bundle exported {repeats} times, each time in a fresh process, rows interleaved; times are "
        "min / median / max in seconds. **export** is `export_bundle`'s own clock (build the model and load "
        "its weights, cut it, export prefix, suffix and inference graphs, generate the ORT artifacts, hash "
        "and write); **process** adds interpreter start and the torch / transformers / onnx imports. "
        "Sizes in MB (10^6 bytes). **device** = what a device must hold: every file but `inference.onnx` "
        "(the suffix again, for serving). Trainable % is of the whole model's parameters (LoRA adapters "
        "included). Feature cache = bytes the device stores per local sample (the prefix's outputs).",
        "",
        "| bundle | export s | process s | total MB | device MB | checkpoint MB | prefix.onnx MB | "
        "training graphs MB | inference.onnx MB | trainable | % of model | split point | "
        "feature cache per sample |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, reports in results.items():
        r = reports[-1]  # sizes are the same every time: the export is deterministic in content
        points = ", ".join(f"{t} {p}/{n}" for t, (p, n) in r["points"].items())
        lines.append(
            f"| {name} | {spread([x['export_s'] for x in reports])} | "
            f"{spread([x['process_s'] for x in reports])} | {mb(r['total'])} | {mb(r['device'])} | "
            f"{mb(r['checkpoint'])} | {mb(r['prefix'])} | {mb(r['training'])} | {mb(r['inference'])} | "
            f"{r['trainable']:,} | {100 * r['trainable'] / r['model_params']:.2f}% of "
            f"{r['model_params']:,} | "
            f"{points} | {r['feature_bytes']:,} B |")
    sizes_same = all(len({x["total"] for x in reports}) == 1 for reports in results.values())
    lines += ["", "Split point: stage where the trainable suffix starts / number of stages of the tower "
              "(embedding, blocks, pooling); the prefix runs the stages before it. Bundle sizes were "
              + ("identical" if sizes_same else "NOT identical") + " across the repeats."]
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
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        row = next(r for r in ROWS if r.name == args.child)
        print("REPORT " + json.dumps(child(row, args.out)), flush=True)
        return 0
    rows = [r for r in ROWS if not args.only or args.only in r.name]
    results: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rows}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fmfl-export-sizes-") as tmp:
        for rep in range(args.repeats):
            for i, row in enumerate(rows):
                results[row.name].append(run_child(row, Path(tmp) / f"b{i}"))
                print(f"[{time.perf_counter() - start:.0f} s] repeat {rep + 1}: {row.name} "
                      f"{results[row.name][-1]['export_s']:.1f} s", flush=True)
    lines = render(results, args.repeats)
    print("\n".join(lines))
    if not args.no_write:
        write_section(lines)
        print(f"wrote {SECTION!r} in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
