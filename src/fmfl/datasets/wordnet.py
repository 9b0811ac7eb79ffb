"""WordNet 3.0 noun glosses labelled with their lexicographer category: a real text classification task.

Every synset line of ``data.noun`` (Fellbaum 1998; format in ``wndb(5WN)``) carries the number of the
lexicographer file it came from (``lex_filenum``, e.g. 06 = ``noun.artifact``, 18 = ``noun.person``; names in
``lexnames(5WN)``) and a gloss after ``|``. The task: predict the category from the gloss, restricted to the
largest categories.

Example sentences are stripped from glosses by default (``keep_examples=False``): they are usage quotes such
as ``"he wore a worsted suit"``, not part of the definition, and they make a tenth of the glosses much longer
(hence truncated at a model's sequence length). A quote inside the definition, e.g. ``(especially in the
phrase "make strides")``, is kept. Glosses left empty by stripping are dropped.

The files are looked for in ``root``, else ``$FMFL_DATA_DIR/wordnet``, else ``/usr/share/wordnet``
(Debian package ``wordnet-base``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fmfl.datasets.errors import DatasetCorrupt, DatasetUnavailable

SYSTEM_DIR = Path("/usr/share/wordnet")

LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
)  # fmt: skip
"""Lexicographer file names indexed by ``lex_filenum``, from WordNet 3.0's ``lexnames`` file."""

# Quoted examples ending a ';'-separated segment, with the separators that introduced them; a few glosses
# join their examples with ':' or ',' or nothing instead of ';'.
_EXAMPLE = re.compile(r'\s*[:;,]?\s*"[^"]*"(?:\s*[:;,]?\s*"[^"]*")*\s*(?=;|$)')


class WordnetGlosses(NamedTuple):
    """A stratified train/test split of glosses; labels index ``label_names`` (sorted category names)."""

    train_texts: list[str]
    train_labels: npt.NDArray[np.int64]
    test_texts: list[str]
    test_labels: npt.NDArray[np.int64]
    label_names: tuple[str, ...]


def strip_examples(gloss: str) -> str:
    """Remove quoted example sentences from a WordNet gloss, keeping the definition."""
    stripped = _EXAMPLE.sub("", gloss)
    return "; ".join(part.strip() for part in stripped.split(";") if part.strip())


def read_noun_glosses(
    root: str | os.PathLike[str] | None = None, *, keep_examples: bool = False
) -> tuple[list[str], list[str]]:
    """Every noun synset's gloss and lexicographer category name, in file order.

    Raises:
        DatasetUnavailable: ``data.noun`` is not found.
        DatasetCorrupt: a synset line is malformed.
    """
    path = _find_data_noun(root)
    texts: list[str] = []
    categories: list[str] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                # The license header lines start with two spaces; synset lines start with an offset.
                if line.startswith("  ") or not line.strip():
                    continue
                fields, sep, gloss = line.partition(" | ")
                parts = fields.split(" ", 3)
                if not sep or len(parts) < 3 or not parts[1].isdigit() or parts[2] != "n":
                    raise DatasetCorrupt(f"{path}:{number}: not a WordNet noun synset line: {line[:80]!r}")
                filenum = int(parts[1])
                if not 3 <= filenum <= 28:
                    raise DatasetCorrupt(f"{path}:{number}: lex_filenum {filenum} is not a noun category")
                gloss = gloss.strip()
                text = gloss if keep_examples else strip_examples(gloss)
                if text:
                    texts.append(text)
                    categories.append(LEXNAMES[filenum])
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetCorrupt(f"{path}: cannot read ({exc})") from exc
    return texts, categories


def wordnet_category_counts(
    root: str | os.PathLike[str] | None = None, *, keep_examples: bool = False
) -> dict[str, int]:
    """Number of (non-empty) glosses per noun category, largest first."""
    _, categories = read_noun_glosses(root, keep_examples=keep_examples)
    return dict(sorted(Counter(categories).items(), key=lambda item: (-item[1], item[0])))


def load_wordnet_glosses(
    root: str | os.PathLike[str] | None = None,
    num_categories: int = 10,
    seed: int = 0,
    test_fraction: float = 0.2,
    *,
    keep_examples: bool = False,
) -> WordnetGlosses:
    """Noun glosses of the ``num_categories`` largest categories, split per category (stratified).

    The split is a deterministic function of ``seed``: each category's glosses are permuted and
    ``round(test_fraction * count)`` of them go to the test set; both sets keep file order.

    Raises:
        ValueError: ``num_categories`` outside 1..26 or ``test_fraction`` outside (0, 1).
        DatasetUnavailable, DatasetCorrupt: as :func:`read_noun_glosses`.
    """
    if not 1 <= num_categories <= 26:
        raise ValueError(
            f"num_categories must be in 1..26 (WordNet has 26 noun categories), got {num_categories}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    texts, categories = read_noun_glosses(root, keep_examples=keep_examples)
    counts = Counter(categories)
    # Ties broken by name so that the choice never depends on dict order.
    largest = sorted(counts, key=lambda name: (-counts[name], name))[:num_categories]
    label_names = tuple(sorted(largest))
    index = {name: i for i, name in enumerate(label_names)}
    kept = [i for i, name in enumerate(categories) if name in index]
    labels = np.array([index[categories[i]] for i in kept], dtype=np.int64)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(kept), dtype=bool)
    for label in range(len(label_names)):
        members = np.flatnonzero(labels == label)
        chosen = rng.permutation(members)[: round(test_fraction * len(members))]
        is_test[chosen] = True
    train = np.flatnonzero(~is_test)
    test = np.flatnonzero(is_test)
    return WordnetGlosses(
        train_texts=[texts[kept[i]] for i in train],
        train_labels=labels[train],
        test_texts=[texts[kept[i]] for i in test],
        test_labels=labels[test],
        label_names=label_names,
    )


def _find_data_noun(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        folders = [Path(root)]
    else:
        env = os.environ.get("FMFL_DATA_DIR")
        folders = ([Path(env) / "wordnet"] if env else []) + [SYSTEM_DIR]
    for folder in folders:
        # Some distributions put the database in a dict/ subfolder.
        for candidate in (folder / "data.noun", folder / "dict" / "data.noun"):
            if candidate.is_file():
                return candidate
    where = ", ".join(str(folder) for folder in folders)
    raise DatasetUnavailable(
        f"WordNet 3.0 not found (no data.noun in {where}). Install it with `apt-get install wordnet-base`, "
        "or put the WordNet 3.0 database files (data.noun, from https://wordnet.princeton.edu/download) "
        "in $FMFL_DATA_DIR/wordnet or pass root=."
    )
