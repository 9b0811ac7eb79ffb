"""The gateway names each round's codec from a density warm-up schedule, and refuses a bad schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import SIZE, Harness, frames, make_update

from fmfl.errors import ConfigError


def test_round_tasks_follow_the_schedule_and_the_metrics_record_each_rounds_codec(tmp_path: Path) -> None:
    # Prepare: two rounds at top-k 50%, then top-k 25%
    h = Harness(tmp_path, rounds=3, codec="topk:0.5+int8@2,topk:0.25+int8")
    ids = ["dev-a", "dev-b", "dev-c", "dev-d"]
    h.register(*ids)
    h.tick()

    # Execute
    codecs = []
    for rnd in (1, 2, 3):
        task = h.task()
        codecs.append(task.codec)
        for cid in ids:
            update, _ = make_update(task, cid, np.full(SIZE, 0.01 * rnd, np.float32))  # encoded with task.codec
            assert [a.accepted for a in h.send(cid, frames(update))] == [True]

    # Assert
    assert codecs == ["topk:0.5+int8", "topk:0.5+int8", "topk:0.25+int8"]
    lines = [json.loads(x) for x in (tmp_path / "state" / "metrics.jsonl").read_text().splitlines()]
    assert [m["codec"] for m in lines] == codecs
    assert lines[2]["bytes_up"] < lines[1]["bytes_up"]  # half the coordinates once the warm-up is over


@pytest.mark.parametrize(("codec", "message"), [("topk:0.5+int8@2", "must end with the steady codec"),
                                                ("topk:0.5+int8@0,dense", "ROUNDS >= 1"),
                                                ("bogus@2,dense", "unknown stage")])
def test_a_bad_schedule_is_a_config_error_before_anything_is_written(tmp_path: Path, codec: str,
                                                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Harness(tmp_path, codec=codec)
    assert not (tmp_path / "state" / "metrics.jsonl").exists()
