"""The web device's text data (js/device/text.js, data.js) against the Python device's readers and tokenizer:
the same token tensors and labels from a JSONL and a CSV file of real WordNet glosses, and each refusal
(bad JSON, missing field, missing column, short row, empty label, unknown label, wrong file type) naming the
file and line."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from support.web_training_node import run_js

from fmfl.datasets.wordnet import load_wordnet_glosses
from fmfl.edge_client.data import read_local_data

READ = """
  const file = new File([Buffer.from(input.b64, "base64")], input.name);
  const tokenizer = readFileSync(input.tokenizer);
  const bundle = { file: () => new Uint8Array(tokenizer) };
  const manifest = { labels: input.labels, preprocessing: { text: { tokenizer_file: "tokenizer.json",
    max_seq_len: 24, input_names: ["input_ids", "attention_mask", "token_type_ids"], pad_id: 0 } } };
  try {
    const data = await device.readLocalData({ kind: "text", file }, manifest, bundle);
    const out = { labels: Array.from(data.labels, Number) };
    for (const [k, t] of Object.entries(data.inputs)) out[k] = Array.from(t.data, Number);
    output(out);
  } catch (e) { output({ error: e.name, message: e.message }); }
"""


def _read(path: Path, tokenizer: Path, labels: list[str]) -> dict[str, object]:
    payload = {"b64": base64.b64encode(path.read_bytes()).decode(), "name": path.name, "tokenizer": str(tokenizer),
               "labels": labels}
    return run_js(READ, payload)  # type: ignore[no-any-return]


def _python(path: Path, tokenizer: Path, labels: list[str]) -> dict[str, np.ndarray]:
    spec = {"text": {"tokenizer_path": str(tokenizer), "max_seq_len": 24,
                     "input_names": ["input_ids", "attention_mask", "token_type_ids"], "pad_id": 0}}
    data = read_local_data(path, spec, labels)
    assert data.labels is not None
    return {**data.inputs, "labels": data.labels}


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_texts_tokenize_and_label_like_the_python_device(minilm_tokenizer: Path, tmp_path: Path, kind: str) -> None:
    glosses = load_wordnet_glosses()
    names = list(glosses.label_names)
    texts, labels = list(glosses.train_texts[:300]), [int(x) for x in glosses.train_labels[:300]]
    texts[3] = 'quoted "words", commas,\nand a newline'
    path = tmp_path / f"texts.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": names[y] if i % 2 else y}) + "\n"
                                for i, (t, y) in enumerate(zip(texts, labels, strict=True))) + "\n")
    else:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "text", "label"])
            for i, (t, y) in enumerate(zip(texts, labels, strict=True)):
                writer.writerow([i, t, names[y] if i % 2 else str(y)])
    got = _read(path, minilm_tokenizer, names)
    want = _python(path, minilm_tokenizer, names)
    assert got["labels"] == want["labels"].tolist() == labels
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert got[name] == want[name].ravel().tolist(), name


@pytest.mark.parametrize(("name", "content", "message"), [
    ("a.jsonl", '{"text": "x", "label": 0}\n{oops\n', "a.jsonl:2: not valid JSON"),
    ("a.jsonl", '{"text": "x"}\n', 'a.jsonl:1: record lacks field \'label\' (fields: ["text"])'),
    ("a.jsonl", '{"text": 3, "label": 0}\n', "a.jsonl:1: field 'text' must be str, got 3"),
    ("a.jsonl", '{"text": "x", "label": "Dog"}\n', 'a.jsonl:1: label "Dog" is not one of the model\'s labels'),
    ("a.jsonl", "\n\n", "a.jsonl: holds no records"),
    ("b.csv", "text,category\nx,0\n", 'b.csv: CSV header ["text","category"] lacks ["label"]'),
    ("b.csv", "text,label\nonly one field\n", "b.csv:2: row has 1 fields, fewer than the header's 2"),
    ("b.csv", "text,label\nx, \n", "b.csv:2: empty label"),
    ("b.csv", 'text,label\n"never closed,0\n', "b.csv: malformed CSV"),
    ("c.txt", "hello\n", "c.txt: unsupported file type"),
])
def test_bad_text_files_are_refused_naming_file_and_line(minilm_tokenizer: Path, tmp_path: Path, name: str,
                                                          content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    got = _read(path, minilm_tokenizer, ["a", "b"])
    assert got["error"] == "DataError", got
    assert str(got["message"]).startswith(message), got
