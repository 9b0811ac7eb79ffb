"""``fmfl.failpoints``: the spec parser, its refusals, and a real SIGKILL at the N-th hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fmfl.failpoints import ENV, parse

PROGRAM = """
from fmfl.failpoints import failpoint
for i in range(1, 6):
    print(i, flush=True)
    failpoint("test.loop")
"""


def test_parse_reads_names_and_hit_counts() -> None:
    assert parse("") == {}
    assert parse("a.b, c@3,") == {"a.b": 1, "c": 3}


@pytest.mark.parametrize("spec", ["@2", "a@", "a@0", "a@x", "a@-1"])
def test_parse_refuses_a_malformed_entry(spec: str) -> None:
    with pytest.raises(ValueError, match=f"{ENV}: bad entry"):
        parse(spec)


@pytest.mark.parametrize(("spec", "printed", "code"), [("", "1 2 3 4 5", 0), ("test.loop@3", "1 2 3", -9),
                                                       ("other.point", "1 2 3 4 5", 0)])
def test_an_armed_failpoint_sigkills_its_process_at_the_nth_hit(spec: str, printed: str, code: int) -> None:
    proc = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60,
                          env={**os.environ, ENV: spec})
    assert proc.returncode == code
    assert code in (0, -signal.SIGKILL)
    assert proc.stdout.split() == printed.split()
