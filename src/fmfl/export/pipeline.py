"""``fmfl export``: build the model, cut it, export both halves, generate ORT artifacts, write the bundle.

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
from fmfl.bundle.manifest import MANIFEST_FILE, SCHEMA, SIGNATURE_FILE, Manifest, TrainableTensor
from fmfl.bundle.onnx_scan import has_external_data
from fmfl.bundle.signing import load_private_key, sign
from fmfl.bundle.verify import sha256_file
from fmfl.errors import FmflError
from fmfl.export.artifacts import generate_training_artifacts
from fmfl.export.graphs import InferenceGraph, PrefixGraph, SuffixGraph, feature_keys, raw_input_names
from fmfl.export.onnx_graph import OPSET, export_onnx
from fmfl.models.registry import BuildOptions, BuiltModel, build_model
from fmfl.models.tasks import Classifier, TaskModel
from fmfl.models.trainable import TrainSpec, apply_train_spec, parse_train_spec, split_points

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
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


def _example_inputs(built: BuiltModel, model: TaskModel, batch: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
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
    example = _example_inputs(built, model, batch=2)
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
    scratch = tmp / ".scratch"
    scratch.mkdir()
    artifacts: dict[str, str | None] = {"prefix_model": None}
    features: list[dict[str, Any]] = []

    suffix_feed = dict(example)
    if any(points.values()):
        prefix = PrefixGraph(model, points, keys)
        sig = prefix.signature
        ex = tuple(example[n] for n in sig.inputs)
        export_onnx(prefix, ex, sig, tmp / "prefix.onnx")
        artifacts["prefix_model"] = "prefix.onnx"
        with torch.no_grad():
            outs = prefix(*ex)
        for name, tensor in zip(sig.outputs, outs, strict=True):
            suffix_feed[name] = tensor
            features.append({"name": name, "shape": list(tensor.shape[1:]), "dtype": _dtype(tensor)})

    suffix = SuffixGraph(model, points, keys)
    sig = suffix.signature
    square = ("logits_per_image",) if model.output_name == "logits_per_image" else ()
    suffix_path = scratch / "suffix.onnx"
    suffix_proto = export_onnx(suffix, tuple(suffix_feed[n] for n in sig.inputs), sig, suffix_path, square)
    onnx_names = [ONNX_PREFIX + n for n in trainable]
    missing = sorted(set(onnx_names) - {i.name for i in suffix_proto.graph.initializer})
    if missing:
        raise ExportError(f"trainable parameters missing from the exported graph (tied or folded?): {missing[:5]}")
    generate_training_artifacts(suffix_proto, onnx_names, model.output_name, cfg.optimizer, tmp)
    artifacts.update(
        training_model="training_model.onnx", eval_model="eval_model.onnx",
        optimizer_model="optimizer_model.onnx", checkpoint="checkpoint",
    )

    infer_outputs = ("logits",) if isinstance(model, Classifier) else ("image_embeds", "text_embeds")
    infer = InferenceGraph(model, points, keys, infer_outputs)
    isig = infer.signature
    export_onnx(infer, tuple(suffix_feed[n] for n in isig.inputs), isig, tmp / "inference.onnx")
    artifacts["inference_model"] = "inference.onnx"

    params = dict(model.named_parameters())
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
    shutil.rmtree(scratch)
    for graph in sorted(tmp.glob("*.onnx")):
        # Devices refuse external-data references (verify_bundle); never sign a bundle they would refuse.
        if has_external_data(graph):
            raise ExportError(f"{graph.name} stores tensors as external data (a graph over 2 GB?); not supported")

    manifest = _manifest(cfg, spec, built, model, points, features, suffix, tensors, artifacts, tmp)
    (tmp / MANIFEST_FILE).write_bytes(manifest.to_json())
    if cfg.sign_key is not None:
        (tmp / SIGNATURE_FILE).write_bytes(sign(load_private_key(cfg.sign_key), manifest.to_json()))
    return manifest


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _manifest(
    cfg: ExportConfig, spec: TrainSpec, built: BuiltModel, model: TaskModel, points: dict[str, int],
    features: list[dict[str, Any]], suffix: SuffixGraph, tensors: list[TrainableTensor],
    artifacts: dict[str, str | None], root: Path,
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
        optimizer={"name": cfg.optimizer, "lr": cfg.lr},
        split={"mode": mode, "towers": towers, "features": features},
        graph={
            "inputs": list(raw_input_names(model)),
            "train_inputs": list(suffix.feature_names),
            "targets": list(suffix.target_names),
            "outputs": ["loss", model.output_name],
        },
        preprocessing=built.preprocessing,
        trainable=tuple(tensors),
        artifacts=artifacts,
        versions={
            "opset": OPSET, "onnx": onnx.__version__,  # type: ignore[attr-defined]
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__, "fmfl": fmfl.__version__, "schema": SCHEMA,
        },
        files=files,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        extra={"total_parameters": sum(p.numel() for p in model.parameters())},
    )
    return Manifest(**{**draft.__dict__, "bundle_id": draft.derive_bundle_id()})
