"""Task models: a tower with a classification head, or two towers trained contrastively.

Both expose their towers by name, so the export can cut every tower at its own split point and
feed the frozen prefixes' outputs to one trainable suffix.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from fmfl.models.towers import State, Tower


class TaskModel(nn.Module):
    """Common shape: ``towers`` (name -> Tower) and ``head_forward(embeddings, targets) -> (loss, output)``."""

    towers: nn.ModuleDict
    #: names of the graph inputs that are targets, not features (e.g. ``labels``)
    target_names: tuple[str, ...] = ()
    output_name: str = "logits"

    def head_forward(self, embeddings: dict[str, torch.Tensor], targets: State) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def tower_items(self) -> list[tuple[str, Tower]]:
        """The towers by name, typed (``nn.ModuleDict`` hands out plain ``nn.Module``)."""
        return [(name, cast(Tower, tower)) for name, tower in self.towers.items()]

    def head_prefixes(self) -> list[str]:
        """Module names (relative to this model) of the parameters ``head`` trains."""
        raise NotImplementedError

    def infer_forward(self, embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inference outputs by name (no targets, no loss)."""
        raise NotImplementedError


class Classifier(TaskModel):
    """Tower embedding -> linear classifier, trained with cross-entropy."""

    target_names = ("labels",)
    output_name = "logits"

    def __init__(self, tower: Tower, num_labels: int) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {num_labels}")
        self.towers = nn.ModuleDict({"encoder": tower})
        self.head = nn.Linear(tower.embed_dim, num_labels)
        self.num_labels = num_labels

    def head_forward(self, embeddings: dict[str, torch.Tensor], targets: State) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(embeddings["encoder"])
        return F.cross_entropy(logits, targets["labels"]), logits

    def head_prefixes(self) -> list[str]:
        return ["head"]

    def infer_forward(self, embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.head(embeddings["encoder"])}


class DualEncoder(TaskModel):
    """Image and text towers joined by projection heads, trained with the symmetric contrastive loss of CLIP
    (Radford et al. 2021); with frozen towers and trainable heads this is LiT-style tuning (Zhai et al. 2022).

    The output is the image-to-text similarity matrix scaled by the learned temperature; classification
    is done by comparing image embeddings to the embeddings of text prompts, one per class.
    """

    target_names = ()
    output_name = "logits_per_image"

    def __init__(
        self,
        image_tower: Tower,
        text_tower: Tower,
        image_proj: nn.Module,
        text_proj: nn.Module,
        logit_scale: float = math.log(1 / 0.07),
    ) -> None:
        super().__init__()
        self.towers = nn.ModuleDict({"image": image_tower, "text": text_tower})
        self.image_proj = image_proj
        self.text_proj = text_proj
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)))

    def embed_images(self, image_embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(image_embedding), dim=-1)

    def embed_texts(self, text_embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(text_embedding), dim=-1)

    def head_forward(self, embeddings: dict[str, torch.Tensor], targets: State) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.embed_images(embeddings["image"])
        text = self.embed_texts(embeddings["text"])
        # Clamp as CLIP does (scale <= 100) so a device's local steps cannot blow the temperature up.
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * image @ text.t()
        target = torch.arange(logits.shape[0])
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        return loss, logits

    def head_prefixes(self) -> list[str]:
        return ["image_proj", "text_proj", "logit_scale"]

    def infer_forward(self, embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Towers may be fed different batch sizes here (images vs. class prompts for zero-shot).
        return {
            "image_embeds": self.embed_images(embeddings["image"]),
            "text_embeds": self.embed_texts(embeddings["text"]),
        }
