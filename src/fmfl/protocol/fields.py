"""Typed, bounded reads of metadata fields: the schema check between parsed JSON and message dataclasses.

Unknown keys are ignored (a newer minor version may add optional keys); a missing required key or a value of
the wrong JSON type is ``bad_metadata``. ``bool`` is never accepted where a number is expected.
"""

from __future__ import annotations

import math
import re
from typing import Any

from fmfl.protocol.errors import ProtocolError, Reason
from fmfl.protocol.limits import Limits

MAX_SAFE_INT = 2**53 - 1  # exact in IEEE doubles, so JSON parsers on every platform agree
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Capability = str | int | float | bool | list[str]


def _bad(key: str, why: str) -> ProtocolError:
    return ProtocolError(Reason.BAD_METADATA, f"field {key!r}: {why}")


def check_int(key: str, value: object, low: int = 0, high: int = MAX_SAFE_INT) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(key, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise _bad(key, f"{value} outside [{low}, {high}]")
    return value


def check_float(key: str, value: object) -> float:
    """A finite number (JSON integers are accepted as floats)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(key, f"expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of 309+ digits: no float holds it, like 1e999
        raise ProtocolError(Reason.NON_FINITE, f"field {key!r} is not finite") from None
    if not math.isfinite(number):
        raise ProtocolError(Reason.NON_FINITE, f"field {key!r} is not finite")
    return number


def check_key(key: str, value: object) -> str:
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise _bad(key, f"map key {repr(value)[:80]} must be 1..64 of A-Z a-z 0-9 _ . -")
    return value


class Fields:
    """Reads fields of one metadata object under ``limits``."""

    def __init__(self, metadata: dict[str, Any], limits: Limits) -> None:
        self._metadata = metadata
        self._limits = limits

    def _get(self, key: str) -> object:
        if key not in self._metadata:
            raise _bad(key, "missing")
        return self._metadata[key]

    def optional(self, key: str) -> bool:
        """True if ``key`` is present and not null."""
        return self._metadata.get(key) is not None

    def string(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise _bad(key, f"expected a string, got {type(value).__name__}")
        if len(value.encode("utf-8", "surrogatepass")) > self._limits.max_string_bytes:
            raise ProtocolError(
                Reason.TOO_LARGE, f"field {key!r} longer than {self._limits.max_string_bytes}"
            )
        return value

    def integer(self, key: str, low: int = 0, high: int = MAX_SAFE_INT) -> int:
        return check_int(key, self._get(key), low, high)

    def optional_integer(self, key: str, low: int = 0, high: int = MAX_SAFE_INT) -> int | None:
        return self.integer(key, low, high) if self.optional(key) else None

    def number(self, key: str) -> float:
        return check_float(key, self._get(key))

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise _bad(key, f"expected true or false, got {type(value).__name__}")
        return value

    def string_list(self, key: str) -> list[str]:
        value = self._get(key)
        if not isinstance(value, list):
            raise _bad(key, f"expected a list, got {type(value).__name__}")
        self._count(key, len(value))
        return [self._item_string(key, item) for item in value]

    def number_map(self, key: str) -> dict[str, float]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise _bad(key, f"expected an object, got {type(value).__name__}")
        self._count(key, len(value))
        return {check_key(key, k): check_float(f"{key}.{k}", v) for k, v in value.items()}

    def capabilities(self, key: str) -> dict[str, Capability]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise _bad(key, f"expected an object, got {type(value).__name__}")
        self._count(key, len(value))
        out: dict[str, Capability] = {}
        for name, item in value.items():
            check_key(key, name)
            if isinstance(item, list):
                self._count(f"{key}.{name}", len(item))
                out[name] = [self._item_string(f"{key}.{name}", entry) for entry in item]
            elif isinstance(item, str):
                out[name] = self._item_string(f"{key}.{name}", item)
            elif isinstance(item, bool):
                out[name] = item
            elif isinstance(item, int):
                out[name] = check_int(f"{key}.{name}", item, -MAX_SAFE_INT, MAX_SAFE_INT)
            elif isinstance(item, float):
                out[name] = check_float(f"{key}.{name}", item)
            else:
                raise _bad(f"{key}.{name}", "a capability is a string, number, boolean or list of strings")
        return out

    def _count(self, key: str, count: int) -> None:
        if count > self._limits.max_items:
            raise ProtocolError(
                Reason.TOO_LARGE, f"field {key!r} has {count} items > {self._limits.max_items}"
            )

    def _item_string(self, key: str, item: object) -> str:
        if not isinstance(item, str):
            raise _bad(key, f"expected strings, got {type(item).__name__}")
        if len(item.encode("utf-8", "surrogatepass")) > self._limits.max_string_bytes:
            raise ProtocolError(Reason.TOO_LARGE, f"a string in {key!r} is longer than the limit")
        return item
