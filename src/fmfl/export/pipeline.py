"""``fmfl export``: build the model, cut it, export the prefix and the train-step graphs, gate them, write the bundle.

The bundle is assembled in a temporary sibling folder and renamed into place at the end, so an
interrupted export never leaves a half-written bundle behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

import fmfl
from fmfl.bundle.graph_ops import check_standard_ops
from fmfl.bundle.manifest import MANIFEST_FILE, SCHEMA, SIGNATURE_FILE, Manifest, TrainableTensor
from fmfl.bundle.onnx_scan import has_external_data
from fmfl.bundle.signing import load_private_key, sign
from fmfl.bundle.verify import sha256_file
from fmfl.edge_client.optimizers import ADAMW_DEFAULTS, SGD_DEFAULTS
from fmfl.errors import FmflError
from fmfl.export.gradient_gate import ATOL, RTOL, check_graphs
from fmfl.export.graphs import InferenceGraph, PrefixGraph, SuffixGraph, feature_keys, raw_input_names
from fmfl.export.onnx_graph import OPSET, export_onnx
from fmfl.export.train_step import export_step_graph, grad_name
from fmfl.models.registry import BuildOptions, BuiltModel, build_model
from fmfl.models.tasks import Classifier, TaskModel
from fmfl.models.trainable import TrainSpec, apply_train_spec, parse_train_spec, split_points

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
PREFIX_FILE, TRAIN_STEP_FILE, EVAL_FILE = "prefix.onnx", "train_step.onnx", "eval.onnx"
INFERENCE_FILE = "inference.onnx"
#: the oldest onnxruntime the device extras allow (pyproject.toml) and that the tests run
MIN_ONNXRUNTIME = "1.20.0"
#: batch sizes of the traced example and of the gate's second batch (the graphs' batch axis is dynamic)
EXPORT_BATCH, GATE_BATCH = 4, 3
#: ONNX initializer names are the torch names under the wrapper's ``model`` attribute
ONNX_PREFIX = "model."


class ExportError(FmflError):
    """An export that cannot proceed (bad options, output folder in the way, graph problems)."""


@dataclass(frozen=True)
class ExportConfig:
    model: str
    task: str
    train: str
    out: Path
    labels: tuple[str, ...] | None = None
    num_labels: int | None = None
    max_seq_len: int = 64
    image_size: int | None = None
    optimizer: str = "adamw"
    lr: float = 1e-3
    sign_key: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest: Manifest
    seconds: float

    @property
    def total_bytes(self) -> int:
        return sum(int(m["size"]) for m in self.manifest.files.values())

    @property
    def device_bytes(self) -> int:
        """What a device must hold: every file but the inference model's duplicate of the suffix."""
        skip = {self.manifest.artifacts.get("inference_model")}
        return sum(int(m["size"]) for n, m in self.manifest.files.items() if n not in skip)


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line; blank lines ignored; duplicates refused."""
    try:
        labels = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    except OSError as exc:
        raise ExportError(f"cannot read --labels {path}: {exc}") from exc
    if len(labels) < 2:
        raise ExportError(f"--labels {path} must list at least 2 labels, one per line")
    if len(set(labels)) != len(labels):
        raise ExportError(f"--labels {path} lists a label twice")
    return labels


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ExportError(f"--out {out} exists and is not empty; pass --force to replace it")


def _example_inputs(built: BuiltModel, model: TaskModel, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ex: dict[str, torch.Tensor] = {}
    image = built.preprocessing.get("image")
    if image:
        ex["pixel_values"] = torch.randn(batch, 3, image["size"], image["size"], generator=gen)
    text = built.preprocessing.get("text")
    if text:
        length = int(text["max_seq_len"])
        ex["input_ids"] = torch.randint(100, 1000, (batch, length), generator=gen)
        mask = torch.ones(batch, length, dtype=torch.int64)
        mask[0, length // 2 :] = 0
        ex["attention_mask"] = mask
        ex["token_type_ids"] = torch.zeros(batch, length, dtype=torch.int64)
    if isinstance(model, Classifier):
        ex["labels"] = torch.randint(0, model.num_labels, (batch,), generator=gen)
    return ex


def _spec_info(cfg: ExportConfig) -> TrainSpec:
    if cfg.optimizer not in OPTIMIZERS:
        raise ExportError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if not 0 < cfg.lr < 10:
        raise ExportError(f"--lr must be in (0, 10), got {cfg.lr}")
    return parse_train_spec(cfg.train)


def export_bundle(cfg: ExportConfig) -> ExportResult:
    import onnxruntime

    # The training build logs every graph transformer at INFO; keep warnings and errors.
    onnxruntime.set_default_logger_severity(3)
    start = time.perf_counter()
    spec = _spec_info(cfg)
    _check_out(cfg.out, cfg.force)
    num_labels = len(cfg.labels) if cfg.labels else cfg.num_labels
    built = build_model(cfg.model, BuildOptions(cfg.task, num_labels, cfg.image_size, cfg.max_seq_len))
    model = built.model.eval()
    trainable = apply_train_spec(model, spec)
    points = split_points(model, trainable)
    example = _example_inputs(built, model, batch=EXPORT_BATCH)
    keys = feature_keys(model, points, example)

    tmp = cfg.out.parent / f".{cfg.out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        manifest = _write_bundle(cfg, spec, built, model, trainable, points, keys, example, tmp)
        if cfg.out.exists():
            shutil.rmtree(cfg.out)
        os.replace(tmp, cfg.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(cfg.out, manifest, time.perf_counter() - start)


def _write_bundle(
    cfg: ExportConfig, spec: TrainSpec, built: BuiltModel, model: TaskModel, trainable: list[str],
    points: dict[str, int], keys: dict[str, tuple[str, ...]], example: dict[str, torch.Tensor], tmp: Path,
) -> Manifest:
    artifacts: dict[str, str | None] = {"prefix_model": None}
    features: list[dict[str, Any]] = []

    suffix_feed = _suffix_feed(model, points, keys, example)
    if any(points.values()):
        prefix = PrefixGraph(model, points, keys)
        sig = prefix.signature
        export_onnx(prefix, tuple(example[n] for n in sig.inputs), sig, tmp / PREFIX_FILE)
        artifacts["prefix_model"] = PREFIX_FILE
        for name in sig.outputs:
            tensor = suffix_feed[name]
            features.append({"name": name, "shape": list(tensor.shape[1:]), "dtype": _dtype(tensor)})

    suffix = SuffixGraph(model, points, keys)
    onnx_names = [ONNX_PREFIX + n for n in trainable]
    params = dict(model.named_parameters())
    second = _suffix_feed(model, points, keys, _example_inputs(built, model, batch=GATE_BATCH, seed=1))
    step_graph, opset = _train_graphs(suffix, onnx_names, [params[n] for n in trainable], suffix_feed, second, tmp)
    artifacts.update(train_step_model=TRAIN_STEP_FILE, eval_model=EVAL_FILE)

    infer_outputs = ("logits",) if isinstance(model, Classifier) else ("image_embeds", "text_embeds")
    infer = InferenceGraph(model, points, keys, infer_outputs)
    isig = infer.signature
    export_onnx(infer, tuple(suffix_feed[n] for n in isig.inputs), isig, tmp / INFERENCE_FILE)
    artifacts["inference_model"] = INFERENCE_FILE

    tensors, offset, flat = [], 0, []
    for name, onnx_name in zip(trainable, onnx_names, strict=True):
        value = params[name].detach().numpy().astype(np.float32)
        tensors.append(TrainableTensor(onnx_name, tuple(value.shape), "float32", offset))
        offset += value.size
        flat.append(value.ravel())
    np.save(tmp / "initial_weights.npy", np.concatenate(flat))
    artifacts["initial_weights"] = "initial_weights.npy"
    for name, src in built.assets.items():
        shutil.copyfile(src, tmp / name)
    for graph in sorted(tmp.glob("*.onnx")):
        # Devices refuse external-data references (verify_bundle); never sign a bundle they would refuse.
        if has_external_data(graph):
            raise ExportError(f"{graph.name} stores tensors as external data (a graph over 2 GB?); not supported")

    manifest = _manifest(cfg, spec, built, model, points, features, suffix, tensors, artifacts, step_graph, opset, tmp)
    (tmp / MANIFEST_FILE).write_bytes(manifest.to_json())
    if cfg.sign_key is not None:
        (tmp / SIGNATURE_FILE).write_bytes(sign(load_private_key(cfg.sign_key), manifest.to_json()))
    return manifest


def _train_graphs(
    suffix: SuffixGraph, onnx_names: list[str], values: list[torch.Tensor], feed: dict[str, torch.Tensor],
    second: dict[str, torch.Tensor], tmp: Path,
) -> tuple[dict[str, Any], int]:
    """Export the train-step and eval graphs, check their operators, run the gradient gate on two batches
    (the traced one and ``second``, smaller: a batch size frozen into a graph fails too); returns the manifest's
    ``graph.train_step`` section and the graphs' ai.onnx opset."""
    names = suffix.signature.inputs
    batch = tuple(feed[n] for n in names)
    step_path, eval_path = tmp / TRAIN_STEP_FILE, tmp / EVAL_FILE
    export_step_graph(suffix, onnx_names, values, batch, step_path, with_grads=True)
    export_step_graph(suffix, onnx_names, values, batch, eval_path, with_grads=False)
    step_ops = check_standard_ops(step_path)
    check_standard_ops(eval_path)
    gate = check_graphs(suffix, onnx_names, values, [batch, tuple(second[n] for n in names)], step_path, eval_path)
    log.info("gradient gate passed at batch sizes %s: largest |difference| %s = %.3g", gate.batch_sizes, *gate.worst)
    return {
        "inputs": list(names),
        "outputs": list(suffix.signature.outputs),
        "gradients": [grad_name(n) for n in onnx_names],
        "gate": {"batch_sizes": list(gate.batch_sizes), "rtol": RTOL, "atol": ATOL,
                 "max_abs_diff": float(gate.worst[1])},
    }, step_ops.onnx_opset


def min_onnxruntime(opset: int) -> str:
    """The oldest onnxruntime that runs ai.onnx ``opset`` and that fmfl supports (ORT's compatibility table)."""
    for version, top in ((MIN_ONNXRUNTIME, 21), ("1.21.0", 22), ("1.22.0", 23)):
        if opset <= top:
            return version
    raise ExportError(f"the exported graphs use ai.onnx opset {opset}, newer than any onnxruntime fmfl knows")


def _optimizer(cfg: ExportConfig) -> dict[str, Any]:
    """The optimizer section of the manifest: what the device's numpy optimizer runs (torch's formulas)."""
    defaults = ADAMW_DEFAULTS if cfg.optimizer == "adamw" else SGD_DEFAULTS
    return {"name": cfg.optimizer, "lr": cfg.lr, **defaults}


def _suffix_feed(
    model: TaskModel, points: dict[str, int], keys: dict[str, tuple[str, ...]], example: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """The suffix's inputs for a raw example batch: the frozen prefix's features (by torch), raw inputs, targets."""
    feed = dict(example)
    if any(points.values()):
        prefix = PrefixGraph(model, points, keys)
        with torch.no_grad():
            outs = prefix(*(example[n] for n in prefix.signature.inputs))
        feed.update(zip(prefix.signature.outputs, outs, strict=True))
    return feed


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _manifest(
    cfg: ExportConfig, spec: TrainSpec, built: BuiltModel, model: TaskModel, points: dict[str, int],
    features: list[dict[str, Any]], suffix: SuffixGraph, tensors: list[TrainableTensor],
    artifacts: dict[str, str | None], step_graph: dict[str, Any], opset: int, root: Path,
) -> Manifest:
    import onnxruntime

    files = {
        p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(root.rglob("*")) if p.is_file()
    }
    labels = list(cfg.labels) if cfg.labels else (
        [str(i) for i in range(model.num_labels)] if isinstance(model, Classifier) else None
    )
    towers = {
        t: {"point": points[t], "num_stages": tower.num_stages, "num_blocks": tower.num_blocks}
        for t, tower in model.tower_items()
    }
    mode = "prefix" if any(points.values()) else "none"
    draft = Manifest(
        model={"id": built.model_id, "revision": built.revision, "family": built.family, "ref": cfg.model},
        task={"kind": cfg.task, "labels": labels, "output": model.output_name},
        train_spec=str(spec),
        optimizer=_optimizer(cfg),
        split={"mode": mode, "towers": towers, "features": features},
        graph={
            "inputs": list(raw_input_names(model)),
            "train_inputs": list(suffix.feature_names),
            "targets": list(suffix.target_names),
            "outputs": ["loss", model.output_name],
            "train_step": step_graph,
        },
        preprocessing=built.preprocessing,
        trainable=tuple(tensors),
        artifacts=artifacts,
        versions={
            "opset": opset, "prefix_opset": OPSET, "min_onnxruntime": min_onnxruntime(opset),
            "onnx": onnx.__version__,  # type: ignore[attr-defined]
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__, "fmfl": fmfl.__version__, "schema": SCHEMA,
        },
        files=files,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        extra={"total_parameters": sum(p.numel() for p in model.parameters())},
    )
    return Manifest(**{**draft.__dict__, "bundle_id": draft.derive_bundle_id()})
