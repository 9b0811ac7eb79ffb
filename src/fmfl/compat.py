"""Backports for the oldest Python fmfl supports (3.10: JetPack 6's system Python on Jetson devices)."""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - exercised by the Python 3.10 device test

    class StrEnum(str, enum.Enum):
        """``enum.StrEnum`` of Python 3.11: members are strings, and ``str()``/``format()`` give the value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str(self.value).__format__(spec)


__all__ = ["StrEnum"]
