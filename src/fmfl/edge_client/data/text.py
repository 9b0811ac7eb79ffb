"""Texts to the model's token tensors with the bundle's ``tokenizer.json`` (Hugging Face ``tokenizers``).

Truncation and padding are set from the manifest and override whatever the tokenizer file configures, so that
every batch has the fixed ``max_seq_len`` the exported graph was traced with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.preprocessing import TextPreprocessing


def load_tokenizer(spec: TextPreprocessing) -> Any:
    """The tokenizer of ``spec``, set to truncate and pad to ``spec.max_seq_len``."""
    path = spec.tokenizer_path
    if not path.is_file():
        raise DataError(f"{path}: tokenizer file not found (manifest preprocessing.text.tokenizer_file)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise DataError(f"{path}: not a valid tokenizers JSON file ({exc})") from exc
    tokenizer.enable_truncation(max_length=spec.max_seq_len)
    pad_token = tokenizer.id_to_token(spec.pad_id) or "[PAD]"
    tokenizer.enable_padding(length=spec.max_seq_len, pad_id=spec.pad_id, pad_token=pad_token)
    return tokenizer


def tokenize(
    texts: Sequence[str], spec: TextPreprocessing, tokenizer: Any = None
) -> dict[str, npt.NDArray[np.int64]]:
    """Encode ``texts`` in one batch into int64 [N, max_seq_len] arrays named as ``spec.input_names``."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(spec)
    encodings = tokenizer.encode_batch(list(texts))
    fields = {
        "input_ids": lambda e: e.ids,
        "attention_mask": lambda e: e.attention_mask,
        "token_type_ids": lambda e: e.type_ids,
    }
    return {
        name: np.array([fields[name](e) for e in encodings], dtype=np.int64).reshape(
            len(encodings), spec.max_seq_len
        )
        for name in spec.input_names
    }
