"""Tiny BERT, ViT and CLIP checkpoints written with ``save_pretrained``, so tests load them through
the same ``from_pretrained`` path a real hub model takes, in seconds and offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="export tests need the workstation extra (torch)")
transformers = pytest.importorskip("transformers")

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "bert"
    config = transformers.BertConfig(vocab_size=30522, max_position_embeddings=128, **TINY)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(path)
    shutil.copy(minilm_tokenizer, path / "tokenizer.json")
    return path


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "distilbert"
    config = transformers.DistilBertConfig(vocab_size=30522, max_position_embeddings=128, dim=32, n_layers=2, n_heads=2,
                                           hidden_dim=64)
    transformers.DistilBertModel(config).save_pretrained(path)
    shutil.copy(minilm_tokenizer, path / "tokenizer.json")
    return path


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "vit"
    config = transformers.ViTConfig(image_size=32, patch_size=8, **TINY)
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "clip"
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 30522, "max_position_embeddings": 64, **TINY},
        vision_config={"image_size": 32, "patch_size": 8, **TINY},
        projection_dim=16,
    )
    transformers.CLIPModel(config).save_pretrained(path)
    shutil.copy(minilm_tokenizer, path / "tokenizer.json")
    return path
