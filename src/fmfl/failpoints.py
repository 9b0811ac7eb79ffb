"""Named crash points for the fault-injection tests: SIGKILL this process at a chosen line.

The technique of etcd's gofail and TiKV's ``fail-rs``: a ``failpoint("name")`` call at a phase boundary
does nothing unless the environment variable ``FMFL_FAILPOINTS`` arms that name, in which case the
process SIGKILLs itself there - no ``finally``, no atexit, no flush, exactly what a power cut or the
OOM killer leaves behind. ``tests/faults`` restarts the process and checks that nothing acknowledged
was lost or counted twice.

``FMFL_FAILPOINTS`` is a comma-separated list of ``name`` (fire on the first hit) or ``name@N`` (fire
on the N-th hit, counted per process), e.g. ``aggregator.after_save_version@2,client.train_step@3``.
The variable is read once at import; when it is unset (production) ``failpoint`` costs one lookup in
an empty dict. The names in use are listed in docs/aggregator.md and docs/devices.md.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "FMFL_FAILPOINTS"


def parse(spec: str) -> dict[str, int]:
    """``"a,b@3"`` -> ``{"a": 1, "b": 3}``; raises ``ValueError`` on a malformed entry."""
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, at, nth = item.partition("@")
        if not name or (at and (not nth.isdigit() or int(nth) < 1)):
            raise ValueError(f"{ENV}: bad entry {item!r} (expected NAME or NAME@N with N >= 1)")
        armed[name] = int(nth) if nth else 1
    return armed


_ARMED: dict[str, int] = parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}


def armed(name: str) -> bool:
    """Whether ``name`` may still fire in this process (lets a caller make the moment before it exact)."""
    return name in _ARMED


def failpoint(name: str, *, settle_s: float = 0.0) -> None:
    """SIGKILL this process if ``name`` is armed and this is its N-th hit; otherwise return at once.

    ``settle_s``: when it fires, first let other threads finish what they were sending (e.g. paho's
    PUBACKs of what was handled before), so the crash lands exactly after them; unarmed, no wait.
    """
    if name not in _ARMED:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _ARMED[name]:
        if settle_s > 0:
            time.sleep(settle_s)
        os.kill(os.getpid(), signal.SIGKILL)
