"""The bundle manifest's ``preprocessing`` section, parsed and validated into frozen settings.

Schema (written by the export step)::

    {"image": {"size": 64, "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
               "input_name": "pixel_values"},
     "text": {"tokenizer_file": "tokenizer.json", "tokenizer_path": "/abs/bundle/tokenizer.json",
              "max_seq_len": 64, "input_names": ["input_ids", "attention_mask"], "pad_id": 0}}

Either part may be absent (a text-only or image-only model). ``tokenizer_path`` is ``tokenizer_file`` resolved
against the bundle folder by the bundle loader. Unknown keys are ignored, so that a newer manifest with extra
settings still loads on an older client.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmfl.edge_client.data.errors import DataError

TEXT_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize to ``size`` x ``size`` (Pillow bilinear), scale to [0, 1], ``(x - mean) / std``, NCHW."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_name: str = "pixel_values"

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 4096:
            raise DataError(f"manifest preprocessing.image.size must be in 1..4096, got {self.size}")
        if self.channels not in (1, 3):
            raise DataError(f"manifest preprocessing.image.channels must be 1 or 3, got {self.channels}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != self.channels or not all(math.isfinite(v) for v in values):
                raise DataError(
                    f"manifest preprocessing.image.{name} must hold {self.channels} finite numbers, "
                    f"got {values}"
                )
        if not all(v > 0 for v in self.std):
            raise DataError(f"manifest preprocessing.image.std must be positive, got {self.std}")
        if not self.input_name:
            raise DataError("manifest preprocessing.image.input_name is empty")


@dataclass(frozen=True)
class TextPreprocessing:
    """Tokenize with ``tokenizer_path`` (a ``tokenizers`` JSON), truncate and pad to ``max_seq_len``."""

    tokenizer_path: Path
    max_seq_len: int
    input_names: tuple[str, ...] = TEXT_INPUT_NAMES[:2]
    pad_id: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_seq_len <= 65536:
            raise DataError(
                f"manifest preprocessing.text.max_seq_len must be in 1..65536, got {self.max_seq_len}"
            )
        unknown = [name for name in self.input_names if name not in TEXT_INPUT_NAMES]
        if not self.input_names or unknown or len(set(self.input_names)) != len(self.input_names):
            raise DataError(
                "manifest preprocessing.text.input_names must be distinct names among "
                f"{list(TEXT_INPUT_NAMES)}, "
                f"got {list(self.input_names)}"
            )
        if self.pad_id < 0:
            raise DataError(f"manifest preprocessing.text.pad_id must be >= 0, got {self.pad_id}")


@dataclass(frozen=True)
class Preprocessing:
    """What the model's inputs need: image settings, text settings, or both (a dual encoder)."""

    image: ImagePreprocessing | None = None
    text: TextPreprocessing | None = None

    @classmethod
    def from_manifest(cls, section: Mapping[str, Any]) -> Preprocessing:
        """Parse the manifest's ``preprocessing`` dict; a :class:`DataError` names the first bad field."""
        if not isinstance(section, Mapping):
            raise DataError(f"manifest preprocessing must be an object, got {type(section).__name__}")
        image = _section(section, "image")
        text = _section(section, "text")
        if image is None and text is None:
            raise DataError("manifest preprocessing has neither 'image' nor 'text': the model takes no input")
        return cls(
            image=None if image is None else _parse_image(image),
            text=None if text is None else _parse_text(text),
        )


def _section(section: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DataError(f"manifest preprocessing.{key} must be an object, got {type(value).__name__}")
    return value


def _field(section: Mapping[str, Any], where: str, key: str, kind: type, default: Any = None) -> Any:
    value = section.get(key, default)
    if value is None:
        raise DataError(f"manifest preprocessing.{where} lacks '{key}'")
    # bool is an int subclass; a 'true' size is a manifest bug, not a size of 1.
    numbers_ok = kind is float and isinstance(value, int | float) and not isinstance(value, bool)
    if not (numbers_ok or (isinstance(value, kind) and not isinstance(value, bool))):
        raise DataError(f"manifest preprocessing.{where}.{key} must be {kind.__name__}, got {value!r}")
    return value


def _floats(section: Mapping[str, Any], key: str) -> tuple[float, ...]:
    values = section.get(key)
    if not isinstance(values, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise DataError(f"manifest preprocessing.image.{key} must be a list of numbers, got {values!r}")
    return tuple(float(v) for v in values)


def _parse_image(section: Mapping[str, Any]) -> ImagePreprocessing:
    return ImagePreprocessing(
        size=_field(section, "image", "size", int),
        channels=_field(section, "image", "channels", int, 3),
        mean=_floats(section, "mean"),
        std=_floats(section, "std"),
        input_name=_field(section, "image", "input_name", str, "pixel_values"),
    )


def _parse_text(section: Mapping[str, Any]) -> TextPreprocessing:
    path_value = section.get("tokenizer_path")
    if path_value is None:
        # A bare tokenizer_file is usable only when already absolute; a relative one needs the bundle folder.
        path_value = section.get("tokenizer_file")
        if not (isinstance(path_value, str) and Path(path_value).is_absolute()):
            raise DataError(
                "manifest preprocessing.text lacks 'tokenizer_path' (tokenizer_file resolved against the "
                f"bundle folder), got tokenizer_file={path_value!r}"
            )
    if not isinstance(path_value, str | Path):
        raise DataError(f"manifest preprocessing.text.tokenizer_path must be a path, got {path_value!r}")
    names = section.get("input_names", list(TEXT_INPUT_NAMES[:2]))
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise DataError(f"manifest preprocessing.text.input_names must be a list of names, got {names!r}")
    return TextPreprocessing(
        tokenizer_path=Path(path_value),
        max_seq_len=_field(section, "text", "max_seq_len", int),
        input_names=tuple(names),
        pad_id=_field(section, "text", "pad_id", int, 0),
    )
