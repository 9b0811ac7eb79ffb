"""Each round's participants and uplink bytes by device kind (the hello's ``capabilities.device_kind``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from support.gateway_harness import SIZE, Harness, frames, make_update

from fmfl.aggregator.durable.journal import AcceptedRow
from fmfl.aggregator.durable.round_report import by_device_kind


def _row(cid: str, nbytes: int) -> AcceptedRow:
    return AcceptedRow(update_id=cid, round=1, client_id=cid, update_round=1, bytes=nbytes, num_samples=1,
                       metrics={})


def test_by_device_kind_counts_and_sums_bytes() -> None:
    kinds = {"a": "python", "b": "web", "c": "python"}
    count, nbytes = by_device_kind([_row("a", 10), _row("b", 7), _row("c", 5), _row("d", 1)], kinds.get)
    assert count == {"python": 2, "unknown": 1, "web": 1}
    assert nbytes == {"python": 15, "unknown": 1, "web": 7}


def test_metrics_line_says_how_many_of_each_kind_took_part(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.register("py-1", "py-2", device_kind="python")
    h.register("phone-1", device_kind="web")
    h.register("old-1")  # a device that states no kind
    h.tick()
    task = h.task()
    sizes = {}
    for cid in ("py-1", "py-2", "phone-1", "old-1"):
        update, _ = make_update(task, cid, np.full(SIZE, 0.01, np.float32))
        sizes[cid] = len(update.to_bytes())  # the update message, as reassembled (chunk headers not counted)
        assert [a.accepted for a in h.send(cid, frames(update))] == [True]
    line = json.loads((tmp_path / "state" / "metrics.jsonl").read_text().splitlines()[0])
    assert line["participants"] == 4
    assert line["participants_by_kind"] == {"python": 2, "unknown": 1, "web": 1}
    assert line["bytes_up_by_kind"] == {"python": sizes["py-1"] + sizes["py-2"], "unknown": sizes["old-1"],
                                        "web": sizes["phone-1"]}
