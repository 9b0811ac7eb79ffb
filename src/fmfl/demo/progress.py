"""Progress on the terminal: a rounds bar with rich when it is installed, plain lines otherwise."""

from __future__ import annotations

from typing import Any


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


class Progress:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._bar: Any = None
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("[bold]federated rounds"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), transient=False)
            self._task = self._bar.add_task("rounds", total=rounds)
            self._bar.start()
        except ImportError:
            self._bar = None

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.log(text)
        else:
            print(text, flush=True)

    def round(self, entry: dict[str, Any]) -> None:
        status = entry.get("status", "?")
        acc = entry.get("test_accuracy")
        text = (
            f"round {entry.get('round')}: {status}, {entry.get('participants')}/{entry.get('selected')} participants, "
            f"test accuracy {acc:.4f}, " if acc is not None else
            f"round {entry.get('round')}: {status}, {entry.get('participants')}/{entry.get('selected')} participants, "
        )
        text += f"up {_kb(entry.get('bytes_up', 0))}, down {_kb(entry.get('bytes_down', 0))}, " \
                f"{entry.get('duration_s', 0):.1f} s"
        self.note(text)
        if self._bar is not None and status == "ok":
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
