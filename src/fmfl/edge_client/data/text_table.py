"""Labelled texts: JSON Lines (``{"text": ..., "label": ...}``) or CSV with ``text`` and ``label`` columns.

A label is a class name or an integer index into the model's labels (in CSV every value is a string, so a
digit string counts as an index when it is not itself a class name). Extra fields or columns are ignored.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.jsonl import iter_records, require
from fmfl.edge_client.data.labels import RawLabel
from fmfl.edge_client.data.samples import RawSamples


def read_text_jsonl(path: Path) -> RawSamples:
    """Read ``{"text": str, "label": str | int}`` records."""
    texts: list[str] = []
    labels: list[RawLabel] = []
    origins: list[str] = []
    for number, record in iter_records(path):
        where = f"{path}:{number}"
        texts.append(require(record, "text", (str,), where))
        labels.append(require(record, "label", (str, int), where))
        origins.append(where)
    if not texts:
        raise DataError(f"{path}: holds no records")
    return RawSamples(source=path, texts=texts, labels=labels, label_origins=origins)


def read_text_csv(path: Path) -> RawSamples:
    """Read a CSV file whose header has ``text`` and ``label`` columns."""
    texts: list[str] = []
    labels: list[RawLabel] = []
    origins: list[str] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            columns = reader.fieldnames or []
            missing = [name for name in ("text", "label") if name not in columns]
            if missing:
                raise DataError(
                    f"{path}: CSV header {list(columns)} lacks {missing}; expected columns 'text' and 'label'"
                )
            for row in reader:
                where = f"{path}:{reader.line_num}"
                text, label = row["text"], row["label"]
                if text is None or label is None:
                    # DictReader pads a short row with None; count what the row really held.
                    held = sum(1 for key, value in row.items() if key is not None and value is not None)
                    raise DataError(f"{where}: row has {held} fields, fewer than the header's {len(columns)}")
                if not label.strip():
                    raise DataError(f"{where}: empty label")
                texts.append(text)
                labels.append(label.strip())
                origins.append(where)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not texts:
        raise DataError(f"{path}: holds no rows after the header")
    return RawSamples(source=path, texts=texts, labels=labels, label_origins=origins)
