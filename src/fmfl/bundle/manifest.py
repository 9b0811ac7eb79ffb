"""``manifest.json``: what a bundle holds, in a versioned schema.

The trainable tensors are listed in update order: an update (and the device's weight vector) is one flat
float32 vector with the tensors one after another, and ``offset`` says where each starts. The train-step
and eval graphs take each tensor as an input of that name (``graph.train_step``).

Schema history: ``fmfl.bundle/1`` bundles held onnxruntime-training artifacts (training, eval and
optimizer graphs, a checkpoint); ``fmfl.bundle/2`` holds plain ``ai.onnx`` train-step and eval graphs that
the standard onnxruntime runs, and the optimizer's hyperparameters. A device refuses /1 with a re-export hint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fmfl.errors import FmflError

SCHEMA = "fmfl.bundle/2"
#: schemas this fmfl recognises but can no longer run, with what to do about them
RETIRED_SCHEMAS = {
    "fmfl.bundle/1": "it holds onnxruntime-training artifacts, and fmfl now trains with the standard onnxruntime: "
                     "re-export the model with this fmfl (`fmfl export`) to get train-step graphs",
}
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
#: a manifest larger than this is refused before parsing (a real one is a few tens of KB)
MAX_MANIFEST_BYTES = 8 * 1024 * 1024


class ManifestError(FmflError):
    """manifest.json is missing fields, has the wrong schema or is inconsistent."""


@dataclass(frozen=True)
class TrainableTensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Manifest:
    model: dict[str, str]
    task: dict[str, Any]
    train_spec: str
    optimizer: dict[str, Any]
    split: dict[str, Any]
    graph: dict[str, Any]
    preprocessing: dict[str, Any]
    trainable: tuple[TrainableTensor, ...]
    artifacts: dict[str, str | None]
    versions: dict[str, Any]
    files: dict[str, dict[str, Any]]
    created: str = ""
    bundle_id: str = ""
    schema: str = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_trainable(self) -> int:
        return sum(t.size for t in self.trainable)

    @property
    def labels(self) -> list[str] | None:
        labels = self.task.get("labels")
        return list(labels) if labels is not None else None

    @property
    def has_prefix(self) -> bool:
        return bool(self.artifacts.get("prefix_model"))

    def train_step(self) -> dict[str, list[str]]:
        """The train-step graph's batch inputs, outputs and gradient outputs (what a training device needs;
        a gateway never asks)."""
        for role in ("train_step_model", "eval_model"):
            if not self.artifacts.get(role):
                raise ManifestError(f"artifacts.{role} is missing: this bundle cannot be trained on")
        step = self.graph.get("train_step")
        keys = ("inputs", "outputs", "gradients")
        if not isinstance(step, dict) or not all(isinstance(step.get(k), list) for k in keys):
            raise ManifestError("graph.train_step must list the train-step graph's inputs, outputs and gradients")
        if len(step["gradients"]) != len(self.trainable):
            raise ManifestError(f"graph.train_step lists {len(step['gradients'])} gradients for "
                                f"{len(self.trainable)} trainable tensors")
        return {k: [str(v) for v in step[k]] for k in keys}

    def identity_fields(self) -> dict[str, Any]:
        """Everything the bundle id is derived from: the content, not when or where it was written."""
        data = self.to_dict()
        for key in ("bundle_id", "created"):
            data.pop(key)
        return data

    def derive_bundle_id(self) -> str:
        canonical = json.dumps(self.identity_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trainable"] = [
            {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "offset": t.offset, "size": t.size}
            for t in self.trainable
        ]
        return data

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest.json is {len(raw)} bytes, above the {MAX_MANIFEST_BYTES} byte limit")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"manifest.json is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError("manifest.json must hold a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any], check: bool = True) -> Manifest:
        """A manifest from its parsed JSON; ``check=False`` skips ``check_consistency`` (for tools that re-derive)."""
        schema = data.get("schema")
        if schema in RETIRED_SCHEMAS:
            raise ManifestError(f"this bundle has manifest schema {schema!r}, which this fmfl cannot run: "
                                f"{RETIRED_SCHEMAS[schema]}")
        if schema != SCHEMA:
            raise ManifestError(f"manifest schema {schema!r} is not supported (this fmfl reads {SCHEMA!r})")
        try:
            tensors = tuple(
                TrainableTensor(str(t["name"]), tuple(int(d) for d in t["shape"]), str(t["dtype"]), int(t["offset"]))
                for t in data["trainable"]
            )
            manifest = cls(
                model=dict(data["model"]),
                task=dict(data["task"]),
                train_spec=str(data["train_spec"]),
                optimizer=dict(data["optimizer"]),
                split=dict(data["split"]),
                graph=dict(data["graph"]),
                preprocessing=dict(data["preprocessing"]),
                trainable=tensors,
                artifacts=dict(data["artifacts"]),
                versions=dict(data["versions"]),
                files={str(k): dict(v) for k, v in data["files"].items()},
                created=str(data.get("created", "")),
                bundle_id=str(data["bundle_id"]),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest.json is missing or has a malformed field: {exc!r}") from exc
        if check:
            manifest.check_consistency()
        return manifest

    def check_consistency(self) -> None:
        offset = 0
        for t in self.trainable:
            if t.offset != offset or any(d < 0 for d in t.shape):
                raise ManifestError(f"trainable tensor {t.name!r} has offset {t.offset}, expected {offset}")
            offset += t.size
        if self.bundle_id != self.derive_bundle_id():
            raise ManifestError("bundle_id does not match the manifest's content")
        for role, name in self.artifacts.items():
            if name is not None and name not in self.files:
                raise ManifestError(f"artifact {role} ({name}) is not listed in files")

