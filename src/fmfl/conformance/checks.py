"""One check's verdict, and the report the kit prints: a PASS or FAIL line per check with what it
expected and what it saw, so a device developer learns what to fix without the kit's source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def say(line: str) -> None:
    """Print at once: a person (or a test) waits for the kit's "start the device now" line."""
    print(line, flush=True)


@dataclass(frozen=True)
class Check:
    """``name`` is stable (tests and docs refer to it); ``expected`` and ``saw`` are for people."""

    name: str
    passed: bool
    expected: str
    saw: str

    def lines(self) -> list[str]:
        return [f"{'PASS' if self.passed else 'FAIL'} {self.name}", f"     expected: {self.expected}",
                f"     saw:      {self.saw}"]


@dataclass
class Report:
    """The checks in the order they were decided; ``emit`` prints each as it is added."""

    checks: list[Check] = field(default_factory=list)
    emit: Callable[[str], None] = say

    def add(self, name: str, passed: bool, expected: str, saw: str) -> Check:
        check = Check(name, passed, expected, saw)
        self.checks.append(check)
        for line in check.lines():
            self.emit(line)
        return check

    def note(self, text: str) -> None:
        self.emit(f"---- {text}")

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failed

    def summary(self) -> str:
        bad = self.failed
        head = f"{len(self.checks) - len(bad)} of {len(self.checks)} checks passed"
        return head if not bad else f"{head}; failed: {', '.join(c.name for c in bad)}"
