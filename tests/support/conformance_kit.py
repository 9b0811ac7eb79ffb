"""The conformance kit run in a thread of the test process, its lines collected."""

from __future__ import annotations

import threading

from fmfl.conformance.checks import Report
from fmfl.conformance.scenarios import Conformance, KitConfig


class KitThread:
    """The kit playing the gateway in this process; ``ready`` is set once it waits for the device's hello."""

    def __init__(self, cfg: KitConfig) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.report = Report(emit=self._emit)
        self.kit = Conformance(cfg, self.report)
        self.thread = threading.Thread(target=self.kit.run, daemon=True)

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        if "start (or restart) the device now" in line:
            self.ready.set()

    def start(self) -> KitThread:
        self.thread.start()
        assert self.ready.wait(30), "\n".join(self.lines)
        return self

    def join(self, timeout: float) -> Report:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the kit did not finish:\n" + "\n".join(self.lines)
        return self.report

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
