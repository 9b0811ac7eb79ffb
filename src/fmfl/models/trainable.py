"""Which parameters train: the ``--train`` spec, LoRA injection, and the frozen-prefix split point.

Spec grammar (parts joined by ``+``)::

    head                      the task head (classifier, or projection heads and temperature)
    last:K                    head, the tower's pooling stage and its last K blocks
    lora:r=8,alpha=16,targets=query,value,layers=2
                              LoRA adapters (Hu et al. 2021, via peft) on the named linear layers of
                              the last ``layers`` blocks (all blocks when omitted)

e.g. ``head+lora:r=8,alpha=16,targets=query,value,layers=2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from fmfl.errors import FmflError
from fmfl.models.tasks import TaskModel


class TrainSpecError(FmflError):
    """A ``--train`` spec that does not parse or matches no parameter."""


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("query", "value")
    layers: int | None = None

    def __str__(self) -> str:
        parts = [f"r={self.r}", f"alpha={self.alpha:g}", "targets=" + ",".join(self.targets)]
        if self.layers is not None:
            parts.append(f"layers={self.layers}")
        return "lora:" + ",".join(parts)


@dataclass(frozen=True)
class TrainSpec:
    head: bool = False
    last_k: int = 0
    lora: LoraSpec | None = None

    def __str__(self) -> str:
        parts = []
        if self.last_k:
            parts.append(f"last:{self.last_k}")
        elif self.head:
            parts.append("head")
        if self.lora is not None:
            parts.append(str(self.lora))
        return "+".join(parts)


def _parse_lora(body: str) -> LoraSpec:
    values: dict[str, list[str]] = {}
    key: str | None = None
    for token in filter(None, body.split(",")):
        if "=" in token:
            key, value = token.split("=", 1)
            key = key.strip()
            if key not in ("r", "alpha", "targets", "layers"):
                raise TrainSpecError(f"unknown LoRA option {key!r}; use r, alpha, targets, layers")
            values[key] = [value.strip()]
        elif key == "targets":
            values["targets"].append(token.strip())  # targets=query,value: the comma continues the list
        else:
            raise TrainSpecError(f"cannot parse LoRA option {token!r} in {body!r}")
    try:
        spec = LoraSpec(
            r=int(values.get("r", ["8"])[0]),
            alpha=float(values.get("alpha", ["16"])[0]),
            targets=tuple(values.get("targets", ["query", "value"])),
            layers=int(values["layers"][0]) if "layers" in values else None,
        )
    except ValueError as exc:
        raise TrainSpecError(f"bad LoRA value in {body!r}: {exc}") from exc
    if spec.r < 1 or spec.alpha <= 0 or (spec.layers is not None and spec.layers < 1) or not all(spec.targets):
        raise TrainSpecError(f"LoRA needs r >= 1, alpha > 0, layers >= 1 and non-empty targets: {body!r}")
    return spec


def parse_train_spec(text: str) -> TrainSpec:
    head, last_k, lora = False, 0, None
    # '+' joins parts; LoRA options use ',' so split on '+' only.
    for part in filter(None, (p.strip() for p in text.split("+"))):
        if part == "head":
            head = True
        elif part.startswith("last:"):
            try:
                last_k = int(part[5:])
            except ValueError as exc:
                raise TrainSpecError(f"last:K needs an integer K, got {part!r}") from exc
            if last_k < 1:
                raise TrainSpecError(f"last:K needs K >= 1, got {last_k}")
            head = True
        elif part == "lora" or part.startswith("lora:"):
            lora = _parse_lora(part[5:])
        else:
            raise TrainSpecError(f"unknown --train part {part!r}; use head, last:K, lora:r=..,alpha=..,targets=..")
    if not head and lora is None:
        raise TrainSpecError(f"--train {text!r} trains nothing")
    return TrainSpec(head=head, last_k=last_k, lora=lora)


def _leaf_module_names(module: nn.Module) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, m in module.named_modules() if name and not list(m.children())})


def _inject_lora(model: TaskModel, spec: LoraSpec) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    injected = 0
    for _, tower in model.tower_items():
        hf = tower.model
        leaves = set(_leaf_module_names(hf))
        targets = [t for t in spec.targets if t in leaves]
        if not targets:
            continue
        n = tower.num_blocks
        layers = list(range(n - spec.layers, n)) if spec.layers is not None else None
        if layers is not None and layers[0] < 0:
            raise TrainSpecError(f"LoRA layers={spec.layers} but the tower has only {n} blocks")
        config = LoraConfig(
            r=spec.r, lora_alpha=spec.alpha,  # type: ignore[arg-type]  # peft accepts floats
            target_modules=targets, lora_dropout=0.0, layers_to_transform=layers
        )
        inject_adapter_in_model(config, hf)
        injected += 1
    if not injected:
        names = sorted({n for _, t in model.tower_items() for n in _leaf_module_names(t)})
        raise TrainSpecError(
            f"LoRA targets {', '.join(spec.targets)} match no module; module names that exist: {', '.join(names)}"
        )


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def apply_train_spec(model: TaskModel, spec: TrainSpec) -> list[str]:
    """Inject LoRA, set ``requires_grad``, and return the trainable parameter names in model order."""
    if spec.lora is not None:
        _inject_lora(model, spec.lora)
    prefixes: list[str] = list(model.head_prefixes()) if spec.head else []
    for tname, tower in model.tower_items():
        if spec.last_k:
            n = tower.num_blocks
            if spec.last_k > n:
                raise TrainSpecError(f"last:{spec.last_k} but tower {tname!r} has only {n} blocks")
            for stage in range(n + 1 - spec.last_k, n + 2):
                prefixes += [f"towers.{tname}.{p}" for p in tower.stage_prefixes(stage)]
    names: list[str] = []
    for name, param in model.named_parameters():
        trainable = _under(name, prefixes) or (spec.lora is not None and ".lora_" in name)
        param.requires_grad_(trainable)
        if trainable:
            names.append(name)
    if not names:
        raise TrainSpecError(f"--train {spec} matches no parameter")
    return names


def split_points(model: TaskModel, trainable: list[str]) -> dict[str, int]:
    """Per tower, the first stage holding a trainable parameter (``num_stages`` when the tower is frozen).

    Stages before that point form the frozen prefix; 0 means no split for that tower. A spec that
    trains from the first block gets no split either: caching the embedding layer's output (a full
    sequence or feature map per sample) would cost more disk than the lookup it saves.
    """
    points: dict[str, int] = {}
    for tname, tower in model.tower_items():
        point = tower.num_stages
        for stage in range(tower.num_stages):
            prefixes = [f"towers.{tname}.{p}" for p in tower.stage_prefixes(stage)]
            if any(_under(n, prefixes) for n in trainable):
                point = stage if stage > 1 else 0
                break
        points[tname] = point
    return points


def module_names(model: nn.Module) -> list[str]:
    """Top-level-ish module names, for error messages that list what exists."""
    return [n for n, _ in model.named_modules() if n and re.fullmatch(r"[^.]+(\.[^.]+){0,4}", n)]
