"""A closed round as a summary: the line printed per round and the JSON line in ``metrics.jsonl``.

Client metrics are averaged over the round's accepted updates. ``eval_*`` metrics are weighted by the
client's ``eval_samples`` metric when it sent one (an accuracy over 500 examples counts more than one
over 5), every other metric by the client's training sample count; ``eval_samples`` itself is summed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fmfl.aggregator.durable.journal import AcceptedRow
from fmfl.compat import StrEnum


class RoundStatus(StrEnum):
    """How a round ended (``status`` in ``metrics.jsonl``, the label of ``fmfl_rounds_total``)."""

    OK = "ok"  # closed with a new global version
    FAILED = "failed"  # below its quorum at the deadline: no new version
    FORWARDED = "forwarded"  # a lower tier's round, summed and sent to the parent tier


@dataclass(frozen=True)
class RoundSummary:
    """One round's outcome."""

    round: int
    version: int  # the global version the round produced (ok) or was based on (failed, forwarded)
    status: RoundStatus
    participants: int
    selected: int
    rejected_by_reason: dict[str, int]
    bytes_up: int
    bytes_down: int
    metrics: dict[str, float]
    duration_s: float
    strategy: str
    codec: str
    late_updates: int = 0
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    #: accepted updates and their message bytes (reassembled, without chunk headers) by the sender's
    #: ``capabilities.device_kind`` ("unknown" without one)
    participants_by_kind: dict[str, int] = field(default_factory=dict)
    bytes_up_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def line(self) -> str:
        """The one line printed per round."""
        acc = self.metrics.get("eval_accuracy")
        acc_text = f"eval_accuracy {acc:.4f}" if acc is not None else "eval_accuracy n/a"
        head = f"round {self.round}"
        if self.status != RoundStatus.OK:
            head += f" FAILED ({self.detail})"
        else:
            head += f" -> v{self.version}"
        eps = self.extra.get("dp_epsilon")
        dp_text = f", epsilon {eps:.4g} (delta {self.extra.get('dp_delta', 0.0):g})" if eps is not None else ""
        return (
            f"{head}: {self.participants}/{self.selected} participants, {self.rejected} rejected, "
            f"up {_kb(self.bytes_up)}, down {_kb(self.bytes_down)}, {acc_text}{dp_text}, {self.duration_s:.2f} s"
        )

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("extra")
        data.update(self.extra)
        return json.dumps(data, sort_keys=True)


def mean_metrics(rows: Iterable[AcceptedRow]) -> dict[str, float]:
    """Weighted means of the clients' metrics (see the module docstring for the weights)."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    total_eval = 0.0
    for row in rows:
        eval_samples = row.metrics.get("eval_samples")
        if eval_samples is not None:
            total_eval += eval_samples
        for key, value in row.metrics.items():
            if key == "eval_samples":
                continue
            by_eval = eval_samples is not None and key.startswith("eval_")
            w = float(eval_samples if by_eval and eval_samples is not None else row.num_samples)
            sums[key] = sums.get(key, 0.0) + w * value
            weights[key] = weights.get(key, 0.0) + w
    out = {k: sums[k] / weights[k] for k in sorted(sums) if weights[k] > 0}
    if total_eval:
        out["eval_samples"] = total_eval
    return out


UNKNOWN_KIND = "unknown"


def by_device_kind(rows: Iterable[AcceptedRow], kind_of: Callable[[str], str | None]) -> tuple[
        dict[str, int], dict[str, int]]:
    """Accepted updates and their bytes per device kind (``kind_of(client_id)``, None: ``unknown``)."""
    count: dict[str, int] = {}
    nbytes: dict[str, int] = {}
    for row in rows:
        kind = kind_of(row.client_id) or UNKNOWN_KIND
        count[kind] = count.get(kind, 0) + 1
        nbytes[kind] = nbytes.get(kind, 0) + row.bytes
    return dict(sorted(count.items())), dict(sorted(nbytes.items()))


class MetricsLog:
    """Appends one JSON line per round to ``metrics.jsonl`` (flushed and fsynced: it is small)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, summary: RoundSummary) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(summary.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def rounds_logged(self) -> set[int]:
        """Round numbers already in the file (a resume uses it to write a lost line once)."""
        if not self.path.exists():
            return set()
        out = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.add(int(json.loads(line)["round"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a crash mid-write
        return out


def _kb(n: int) -> str:
    if n >= 10 * 2**20:
        return f"{n / 2**20:.1f} MB"
    return f"{n / 1024:.1f} KB"
