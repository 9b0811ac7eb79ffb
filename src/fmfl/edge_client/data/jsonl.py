"""JSON Lines (https://jsonlines.org): one JSON object per line; blank lines are skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fmfl.edge_client.data.errors import DataError


def iter_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)``; a line that is not a JSON object is a :class:`DataError`."""
    try:
        with path.open(encoding="utf-8-sig") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                yield number, record
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def first_record(path: Path) -> dict[str, Any] | None:
    """The first object of the file, or None when it holds none (for format detection)."""
    for _, record in iter_records(path):
        return record
    return None


def require(record: dict[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    """``record[key]``, checked to be one of ``kinds`` (bool never counts as int)."""
    if key not in record:
        raise DataError(f"{where}: record lacks field '{key}' (fields: {sorted(record)})")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise DataError(f"{where}: field '{key}' must be {names}, got {value!r}")
    return value
