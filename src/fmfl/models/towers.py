"""Encoders seen as a sequence of stages, so the export can cut them at any block boundary.

A tower runs ``embed`` (stage 0), then its blocks (stages 1..n), then ``pool`` (stage n+1, which may
hold parameters such as a final LayerNorm or a conv head). The state passed between stages is a small
dict of tensors (``hidden`` plus whatever later stages need, e.g. the text attention mask); the
frozen-prefix split exports stages [0, k) as an inference model whose outputs are that state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from operator import attrgetter
from typing import Any

import torch
from torch import nn

State = dict[str, torch.Tensor]


class Tower(nn.Module, ABC):
    """An encoder cut into stages. Subclasses name their inputs, blocks and pooled embedding size."""

    input_names: tuple[str, ...]
    embed_dim: int
    #: the wrapped encoder (a Hugging Face model or our EfficientNet); untyped, as HF models are
    model: Any
    #: module names inside ``model``: the embedding stage's, the block list's, and the pool stage's
    embed_modules: tuple[str, ...]
    blocks_path: str
    pool_modules: tuple[str, ...] = ()

    def __init__(self, model: Any, embed_dim: int) -> None:
        super().__init__()
        self.model = model
        self.embed_dim = embed_dim

    @property
    def blocks(self) -> Any:
        """The encoder's block list (``nn.ModuleList``)."""
        return attrgetter(self.blocks_path)(self.model)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def stage_prefixes(self, stage: int) -> list[str]:
        """Module-name prefixes (relative to the tower) whose parameters belong to ``stage``."""
        if stage == 0:
            names: tuple[str, ...] = self.embed_modules
        elif stage <= self.num_blocks:
            names = (f"{self.blocks_path}.{stage - 1}",)
        else:
            names = self.pool_modules
        return [f"model.{name}" for name in names]

    @abstractmethod
    def embed(self, inputs: State) -> State: ...

    @abstractmethod
    def run_block(self, index: int, state: State) -> State: ...

    @abstractmethod
    def pool(self, state: State) -> torch.Tensor: ...

    @property
    def num_stages(self) -> int:
        return self.num_blocks + 2

    def run_stages(self, state: State, start: int, stop: int) -> State:
        """Run stages [start, stop); stage ``num_stages - 1`` (pool) yields ``{"embedding": ...}``."""
        for stage in range(start, stop):
            if stage == 0:
                state = self.embed(state)
            elif stage <= self.num_blocks:
                state = self.run_block(stage - 1, state)
            else:
                state = {"embedding": self.pool(state)}
        return state

    def forward(self, inputs: State) -> torch.Tensor:
        return self.run_stages(inputs, 0, self.num_stages)["embedding"]


def additive_attention_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, L] 0/1 mask -> [B, 1, 1, L] additive mask (0 keep, dtype-min drop), as HF's eager attention expects."""
    keep = mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * torch.finfo(dtype).min


def mean_pool(state: State) -> torch.Tensor:
    """Mean of the hidden states over real (unpadded) tokens, as sentence-transformers pools."""
    mask = state["attention_mask"].to(state["hidden"].dtype).unsqueeze(-1)
    pooled: torch.Tensor = (state["hidden"] * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return pooled


class BertTower(Tower):
    """BERT-family text encoder (BERT, MiniLM, ...) with mean pooling over real tokens (sentence-transformers)."""

    input_names = ("input_ids", "attention_mask", "token_type_ids")

    embed_modules = ("embeddings",)
    blocks_path = "encoder.layer"

    def __init__(self, model: Any) -> None:
        super().__init__(model, int(model.config.hidden_size))

    def embed(self, inputs: State) -> State:
        hidden = self.model.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"])
        return {"hidden": hidden, "attention_mask": inputs["attention_mask"]}

    def run_block(self, index: int, state: State) -> State:
        hidden = state["hidden"]
        mask = additive_attention_mask(state["attention_mask"], hidden.dtype)
        out = self.blocks[index](hidden, attention_mask=mask)
        return {"hidden": out[0] if isinstance(out, tuple) else out, "attention_mask": state["attention_mask"]}

    def pool(self, state: State) -> torch.Tensor:
        return mean_pool(state)


class DistilBertTower(Tower):
    """DistilBERT text encoder (no token types; its eager attention takes the [B, L] 0/1 mask), mean pooled."""

    input_names = ("input_ids", "attention_mask")

    embed_modules = ("embeddings",)
    blocks_path = "transformer.layer"

    def __init__(self, model: Any) -> None:
        super().__init__(model, int(model.config.dim))

    def embed(self, inputs: State) -> State:
        return {"hidden": self.model.embeddings(inputs["input_ids"]), "attention_mask": inputs["attention_mask"]}

    def run_block(self, index: int, state: State) -> State:
        out = self.blocks[index](state["hidden"], attn_mask=state["attention_mask"])
        return {"hidden": out[-1], "attention_mask": state["attention_mask"]}

    def pool(self, state: State) -> torch.Tensor:
        return mean_pool(state)


class ViTTower(Tower):
    """ViT / DeiT image encoder; the embedding is the final-LayerNorm CLS token."""

    input_names = ("pixel_values",)

    embed_modules = ("embeddings",)
    blocks_path = "encoder.layer"
    pool_modules = ("layernorm",)

    def __init__(self, model: Any) -> None:
        super().__init__(model, int(model.config.hidden_size))

    def embed(self, inputs: State) -> State:
        return {"hidden": self.model.embeddings(inputs["pixel_values"])}

    def run_block(self, index: int, state: State) -> State:
        out = self.blocks[index](state["hidden"])
        return {"hidden": out[0] if isinstance(out, tuple) else out}

    def pool(self, state: State) -> torch.Tensor:
        pooled: torch.Tensor = self.model.layernorm(state["hidden"])[:, 0]
        return pooled


class ClipVisionTower(Tower):
    """CLIP's vision transformer up to the post-LayerNorm CLS token (the projection is the model's head)."""

    input_names = ("pixel_values",)

    embed_modules = ("embeddings", "pre_layrnorm")
    blocks_path = "encoder.layers"
    pool_modules = ("post_layernorm",)

    def __init__(self, model: Any) -> None:
        super().__init__(model, int(model.config.hidden_size))

    def embed(self, inputs: State) -> State:
        return {"hidden": self.model.pre_layrnorm(self.model.embeddings(inputs["pixel_values"]))}

    def run_block(self, index: int, state: State) -> State:
        out = self.blocks[index](state["hidden"], None, None)
        return {"hidden": out[0] if isinstance(out, tuple) else out}

    def pool(self, state: State) -> torch.Tensor:
        pooled: torch.Tensor = self.model.post_layernorm(state["hidden"][:, 0])
        return pooled


class ClipTextTower(Tower):
    """CLIP's causal text transformer, pooled at the end-of-text token (the highest token id, as in CLIP)."""

    input_names = ("input_ids", "attention_mask")

    embed_modules = ("embeddings",)
    blocks_path = "encoder.layers"
    pool_modules = ("final_layer_norm",)

    def __init__(self, model: Any) -> None:
        super().__init__(model, int(model.config.hidden_size))

    def embed(self, inputs: State) -> State:
        return {
            "hidden": self.model.embeddings(input_ids=inputs["input_ids"]),
            "attention_mask": inputs["attention_mask"],
            "input_ids": inputs["input_ids"],
        }

    def run_block(self, index: int, state: State) -> State:
        hidden = state["hidden"]
        length = hidden.shape[1]
        causal = torch.full((length, length), torch.finfo(hidden.dtype).min, dtype=hidden.dtype).triu(1)
        causal = causal[None, None, :, :]
        mask = additive_attention_mask(state["attention_mask"], hidden.dtype)
        out = self.blocks[index](hidden, mask, causal)
        return {**state, "hidden": out[0] if isinstance(out, tuple) else out}

    def pool(self, state: State) -> torch.Tensor:
        hidden = self.model.final_layer_norm(state["hidden"])
        # ORT's CPU ArgMax has no int64 kernel; token ids fit int32.
        eot = state["input_ids"].to(torch.int32).argmax(dim=-1)
        pooled: torch.Tensor = hidden[torch.arange(hidden.shape[0]), eot]
        return pooled


class EfficientNetTower(Tower):
    """EfficientNet-Lite0 trunk; the conv head (1x1 conv to 1280, BN, ReLU6, pooling) is the pool stage."""

    input_names = ("pixel_values",)

    embed_modules = ("_conv_stem", "_bn0")
    blocks_path = "_blocks"
    pool_modules = ("_conv_head", "_bn1")

    def __init__(self, model: Any) -> None:
        super().__init__(model, 1280)

    def embed(self, inputs: State) -> State:
        return {"hidden": self.model.stem(inputs["pixel_values"])}

    def run_block(self, index: int, state: State) -> State:
        return {"hidden": self.blocks[index](state["hidden"])}

    def pool(self, state: State) -> torch.Tensor:
        pooled: torch.Tensor = self.model.head_features(state["hidden"])
        return pooled
