"""The two graphs a bundle is cut into: the frozen prefix (inference) and the trainable suffix.

Each tower is cut at its own split point ``k``: the prefix runs stages [0, k) and outputs the state at
the cut (e.g. ``encoder.hidden`` and ``encoder.attention_mask``); the suffix takes those features
(or the raw inputs, for a tower with ``k == 0``) plus the targets, and returns ``(loss, output)``.
Both wrap the same torch modules, so their composition is the unsplit model by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fmfl.models.tasks import TaskModel
from fmfl.models.towers import State, Tower


@dataclass(frozen=True)
class GraphSignature:
    """Input and output names of an exported graph, in positional order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def raw_input_names(model: TaskModel) -> tuple[str, ...]:
    names: list[str] = []
    for _, tower in model.tower_items():
        names += [n for n in tower.input_names if n not in names]
    return tuple(names)


def _towers(model: TaskModel) -> list[tuple[str, Tower]]:
    return model.tower_items()


class PrefixGraph(nn.Module):
    """Frozen trunk: raw inputs -> features at every tower's split point (towers with k == 0 are skipped)."""

    def __init__(self, model: TaskModel, points: dict[str, int], feature_keys: dict[str, tuple[str, ...]]) -> None:
        super().__init__()
        self.model = model
        self.points = points
        self.feature_keys = feature_keys
        self.input_names = tuple(
            n for n in raw_input_names(model)
            if any(points[t] > 0 and n in tower.input_names for t, tower in _towers(model))
        )

    @property
    def signature(self) -> GraphSignature:
        outs = [f"{t}.{k}" for t, keys in self.feature_keys.items() for k in keys]
        return GraphSignature(self.input_names, tuple(outs))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feed = dict(zip(self.input_names, inputs, strict=True))
        outputs: list[torch.Tensor] = []
        for tname, tower in _towers(self.model):
            k = self.points[tname]
            if k == 0:
                continue
            state = tower.run_stages({n: feed[n] for n in tower.input_names}, 0, k)
            outputs += [state[key] for key in self.feature_keys[tname]]
        return tuple(outputs)


class SuffixGraph(nn.Module):
    """Trainable part: features (or raw inputs) and targets -> (loss, task output)."""

    def __init__(self, model: TaskModel, points: dict[str, int], feature_keys: dict[str, tuple[str, ...]]) -> None:
        super().__init__()
        self.model = model
        self.points = points
        self.feature_keys = feature_keys
        names: list[str] = []
        for tname, tower in _towers(model):
            if points[tname] == 0:
                names += [n for n in tower.input_names if n not in names]
            else:
                names += [f"{tname}.{k}" for k in feature_keys[tname]]
        self.feature_names = tuple(names)
        self.target_names = tuple(model.target_names)

    @property
    def signature(self) -> GraphSignature:
        return GraphSignature(self.feature_names + self.target_names, ("loss", self.model.output_name))

    def _embeddings(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each tower's embedding from its features at the split point (or its raw inputs when unsplit)."""
        embeddings: dict[str, torch.Tensor] = {}
        for tname, tower in _towers(self.model):
            k = self.points[tname]
            if k == 0:
                state: State = {n: feed[n] for n in tower.input_names}
            else:
                state = {key: feed[f"{tname}.{key}"] for key in self.feature_keys[tname]}
            embeddings[tname] = tower.run_stages(state, k, tower.num_stages)["embedding"]
        return embeddings

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feed = dict(zip(self.feature_names + self.target_names, inputs, strict=True))
        embeddings = self._embeddings(feed)
        targets = {n: feed[n] for n in self.target_names}
        return self.model.head_forward(embeddings, targets)


class InferenceGraph(SuffixGraph):
    """The suffix without targets or loss: features -> named task outputs (logits, or embeddings)."""

    def __init__(
        self, model: TaskModel, points: dict[str, int], feature_keys: dict[str, tuple[str, ...]],
        output_names: tuple[str, ...],
    ) -> None:
        super().__init__(model, points, feature_keys)
        self.target_names = ()
        self.output_names = output_names

    @property
    def signature(self) -> GraphSignature:
        return GraphSignature(self.feature_names, self.output_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        feed = dict(zip(self.feature_names, inputs, strict=True))
        embeddings = self._embeddings(feed)
        out = self.model.infer_forward(embeddings)
        return tuple(out[n] for n in self.output_names)


def feature_keys(model: TaskModel, points: dict[str, int], example: State) -> dict[str, tuple[str, ...]]:
    """The state keys each tower hands over at its split point, found by running the prefix once."""
    keys: dict[str, tuple[str, ...]] = {}
    with torch.no_grad():
        for tname, tower in _towers(model):
            k = points[tname]
            if k == 0:
                continue
            state = tower.run_stages({n: example[n] for n in tower.input_names}, 0, k)
            keys[tname] = tuple(sorted(state))
    return keys
