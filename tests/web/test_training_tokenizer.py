"""tokenizer.js against the Python device's tokenizer (Hugging Face ``tokenizers`` with the bundle's
tokenizer.json, truncation and fixed padding as src/fmfl/edge_client/data/text.py sets them): the same ids and
attention masks for real WordNet glosses and for the edge cases of BERT normalisation (accents, CJK, controls,
special tokens in the text, over-long words, a final capital sigma)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.web_training_node import run_js

from fmfl.datasets.wordnet import load_wordnet_glosses

EDGE_CASES = ["Héllo, wörld! 日本語のテキスト [SEP] x [MASK]y", "", "   ", "a" * 150, "supercalifragilistic" * 6,
              "don't stop-believing... 3.14 $5 #tag @user", "naïve café résumé Ⅳ ﬁ", "\u0000ctrl\u200bzero\ttab\nnl",
              "İstanbul ΣΑΣ straße", "emoji 😀 and \ufffd replacement", "x" * 200 + " tail"]
ENCODE = """
  const t = new device.WordPieceTokenizer(JSON.parse(readFileSync(input.path, "utf8")));
  const r = t.encodeBatch(input.texts, input.max_len, 0);
  output({ids: Array.from(r.input_ids, Number), mask: Array.from(r.attention_mask, Number)});
"""


@pytest.mark.parametrize("max_len", [64, 16])
def test_ids_and_masks_equal_hugging_face_tokenizers(minilm_tokenizer: Path, max_len: int) -> None:
    from tokenizers import Tokenizer

    glosses = list(load_wordnet_glosses().train_texts[:2000])
    texts = glosses + EDGE_CASES
    tokenizer = Tokenizer.from_file(str(minilm_tokenizer))
    tokenizer.enable_truncation(max_length=max_len)
    tokenizer.enable_padding(length=max_len, pad_id=0, pad_token="[PAD]")
    want = tokenizer.encode_batch(texts)
    got = run_js(ENCODE, {"path": str(minilm_tokenizer), "texts": texts, "max_len": max_len})
    for i, (text, enc) in enumerate(zip(texts, want, strict=True)):
        row = slice(i * max_len, (i + 1) * max_len)
        assert got["ids"][row] == enc.ids, text
        assert got["mask"][row] == enc.attention_mask, text


def test_other_tokenizer_types_are_refused(tmp_path: Path) -> None:
    got = run_js("""
      const msg = (f) => { try { f(); return null; } catch (e) { return [e.name, e.message]; } };
      output([msg(() => new device.WordPieceTokenizer({model: {type: "BPE", vocab: {}}})),
              msg(() => new device.WordPieceTokenizer({model: {type: "WordPiece", vocab: {"[UNK]": 0}},
                                                       normalizer: {type: "NFKC"}}))]);
    """)
    assert got[0] == ["DataError", 'tokenizer.json: tokenizer model "BPE" is not supported in the browser (WordPiece)']
    assert got[1] == ["DataError", 'tokenizer.json: normalizer "NFKC" is not supported in the browser (BertNormalizer)']
