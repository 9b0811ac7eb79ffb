"""WordNet glosses on the real database, plus tiny hand-written data.noun files for the edge cases."""

import re
from pathlib import Path

import numpy as np
import pytest
from support.debian_data import require_debian_data

from fmfl.datasets import DatasetCorrupt, DatasetUnavailable, load_wordnet_glosses, wordnet_category_counts
from fmfl.datasets.wordnet import SYSTEM_DIR, WordnetGlosses, read_noun_glosses, strip_examples

needs_wordnet = pytest.mark.debian_data(SYSTEM_DIR / "data.noun", "wordnet-base")
HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2   \n"


def _synset(offset: int, filenum: int, word: str, gloss: str) -> str:
    return f"{offset:08d} {filenum:02d} n 01 {word} 0 000 | {gloss}  \n"


@pytest.fixture(autouse=True)
def _no_env_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMFL_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def real_split() -> WordnetGlosses:
    require_debian_data(SYSTEM_DIR / "data.noun", "wordnet-base")
    return load_wordnet_glosses()


@needs_wordnet
def test_category_counts_of_wordnet_3_0() -> None:
    counts = wordnet_category_counts()

    assert len(counts) == 26
    assert list(counts.items())[:3] == [
        ("noun.artifact", 11587),
        ("noun.person", 11087),
        ("noun.plant", 8030),
    ]
    assert sum(counts.values()) == 82115  # every noun synset has a non-empty definition


def test_real_split_is_stratified_and_disjoint(real_split: WordnetGlosses) -> None:
    train_texts, train_labels, test_texts, test_labels, names = real_split

    assert names == tuple(sorted(names))
    assert len(names) == 10
    assert "noun.artifact" in names
    assert "noun.cognition" not in names
    assert len(train_texts) == len(train_labels)
    assert len(test_texts) == len(test_labels)
    assert len(train_texts) + len(test_texts) == 63_245
    fractions = np.bincount(test_labels) / (np.bincount(test_labels) + np.bincount(train_labels))
    np.testing.assert_allclose(fractions, 0.2, atol=0.001)
    assert not any(re.search(r'"[^"]*"$', text) for text in train_texts + test_texts)


@needs_wordnet
def test_split_is_deterministic_in_the_seed(real_split: WordnetGlosses) -> None:
    again = load_wordnet_glosses(seed=0)
    other = load_wordnet_glosses(seed=1)

    assert again.test_texts == real_split.test_texts
    np.testing.assert_array_equal(again.test_labels, real_split.test_labels)
    assert other.test_texts != real_split.test_texts


@pytest.mark.parametrize(
    ("gloss", "definition"),
    [
        ('an entity; "it was full of rackets, balls and other objects"', "an entity"),
        ('act of assembling for war: "mobilization of the troops"', "act of assembling for war"),
        ('progress (as in "make strides"); "made strides"', 'progress (as in "make strides")'),
        ('a region; "a; b"; "c"', "a region"),
        ('swimming; "it was swimming": "a short swim"', "swimming"),
        ('depth; "of his sighs," "of his emotion"', "depth"),
        ("a plain definition", "a plain definition"),
    ],
)  # fmt: skip
def test_strip_examples(gloss: str, definition: str) -> None:
    assert strip_examples(gloss) == definition


def _tiny_wordnet(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.noun").write_text(HEADER + "".join(lines), encoding="utf-8")
    return folder


def test_tiny_database_labels_and_examples(tmp_path: Path) -> None:
    lines = [_synset(i, 6, f"tool{i}", f'a tool number {i}; "use it"') for i in range(10)]
    lines += [_synset(100 + i, 18, f"man{i}", f"a person {i}") for i in range(5)]
    lines += [_synset(200, 5, "cat", "a feline"), _synset(201, 9, "idea", '"only an example"')]
    root = _tiny_wordnet(tmp_path, lines)

    split = load_wordnet_glosses(root, num_categories=2, test_fraction=0.2)
    kept_texts, _ = read_noun_glosses(root, keep_examples=True)

    assert split.label_names == ("noun.artifact", "noun.person")
    assert len(split.test_texts) == 3
    assert len(split.train_texts) == 12
    assert all('"' not in text for text in split.train_texts + split.test_texts)
    assert kept_texts[0] == 'a tool number 0; "use it"'
    assert (
        len(kept_texts) == 17
    )
    assert (
        len(read_noun_glosses(root)[0]) == 16
    )


def test_env_dir_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_wordnet(tmp_path / "wordnet", [_synset(i, 6, "x", f"thing {i}") for i in range(5)])
    monkeypatch.setenv("FMFL_DATA_DIR", str(tmp_path))

    assert wordnet_category_counts() == {"noun.artifact": 5}


def test_missing_database_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="apt-get install wordnet-base") as info:
        load_wordnet_glosses(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("00001740 03 n 01 entity 0 000 no gloss separator\n", "not a WordNet noun synset line"),
        ("00001740 xx n 01 entity 0 000 | a gloss\n", "not a WordNet noun synset line"),
        ("00001740 03 v 01 run 0 000 | a verb\n", "not a WordNet noun synset line"),
        ("00001740 31 n 01 think 0 000 | a verb category\n", "lex_filenum 31 is not a noun category"),
    ],
)
def test_corrupt_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    root = _tiny_wordnet(tmp_path, [_synset(1, 6, "ok", "fine"), line])

    with pytest.raises(DatasetCorrupt, match=message) as info:
        read_noun_glosses(root)
    assert f"{root / 'data.noun'}:4" in str(info.value)


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_categories"):
        load_wordnet_glosses(tmp_path, num_categories=0)
    with pytest.raises(ValueError, match="test_fraction"):
        load_wordnet_glosses(tmp_path, test_fraction=1.0)
