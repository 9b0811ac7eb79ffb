"""Capability requirements a client must meet to be selected (``--require memory_bytes>=2e9``).

A device states its capabilities in its ClientHello (free-form keys: ``memory_bytes``, ``cores``,
``execution_providers``, ...). Selection skips devices that cannot run the round, as production
cross-device FL does (Bonawitz et al., "Towards Federated Learning at Scale", SysML 2019, section 2:
devices check in and the server picks among eligible ones). A device that does not state a required
capability does not fit: guessing would invite out-of-memory failures mid-round.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from fmfl.errors import ConfigError
from fmfl.protocol.fields import Capability

Op = Literal[">=", "<=", "="]
_FORM = re.compile(r"^([A-Za-z0-9_.-]{1,64})(>=|<=|=)(.+)$")


@dataclass(frozen=True)
class Requirement:
    """``key >= number``, ``key <= number`` or ``key = value`` (for a list capability: contains value)."""

    key: str
    op: Op
    value: str

    @classmethod
    def parse(cls, text: str) -> Requirement:
        match = _FORM.match(text.strip())
        if match is None:
            raise ConfigError(f"requirement {text!r} must look like KEY>=NUMBER, KEY<=NUMBER or KEY=VALUE")
        key, op, value = match.groups()
        if op != "=":
            number = _number(value)
            if number is None:
                raise ConfigError(f"requirement {text!r}: {value!r} is not a finite number")
        return cls(key, op, value)  # type: ignore[arg-type]  # op is one of the three by the regex

    def fits(self, capabilities: dict[str, Capability]) -> bool:
        have = capabilities.get(self.key)
        if have is None:
            return False
        if self.op == "=":
            if isinstance(have, list):
                return self.value in have
            if isinstance(have, bool):
                return self.value.lower() == str(have).lower()
            if isinstance(have, int | float):
                return _number(self.value) == float(have)
            return have == self.value
        if isinstance(have, bool) or not isinstance(have, int | float):
            return False
        bound = _number(self.value)
        assert bound is not None  # checked in parse
        return float(have) >= bound if self.op == ">=" else float(have) <= bound

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
