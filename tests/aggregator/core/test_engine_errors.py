"""Operator and input errors inside the gateway's loop are FmflErrors with a clear message, or are survived."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import SIZE, Harness, frames, make_update

from fmfl.protocol import split_message

# Long (valid, at most 64 characters) ids: 40 of them cannot all be named in a task of one 1,024-byte packet.
IDS = [f"sensor-{i:02d}-" + "x" * 50 for i in range(40)]


def test_a_selection_too_large_for_one_packet_runs_a_smaller_round(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path, rounds=1, clients_per_round=40, min_clients=2, max_packet_bytes=1024)
    h.register(*IDS)
    with caplog.at_level(logging.WARNING, logger="fmfl.aggregator.core.outbound"):
        h.tick()  # raised TaskTooLarge out of tick() before: the gateway stopped mid-run

    task = h.task()
    assert 2 <= len(task.selected) < len(IDS)
    assert set(task.selected) <= set(IDS)
    assert len(split_message(task.to_bytes(), 1024, run=task.run)) == 1
    assert f"a task naming all 40 selected clients does not fit one packet of 1024 bytes; selected " \
           f"{len(task.selected)} instead (raise --max-packet-bytes" in caplog.text

    # The smaller round runs to the end: every selected device's update counts and the round closes.
    for cid in task.selected:
        update, _ = make_update(task, cid, np.full(SIZE, 0.01, np.float32), num_samples=5)
        assert [a.accepted for a in h.send(cid, frames(update))] == [True]
    h.tick()
    assert h.engine.finished
    assert h.engine.version == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--clients-per-round", "0"], "clients_per_round must be a positive integer, got 0"),
        (["--require", "memory"], "requirement 'memory' must look like KEY>=NUMBER"),
        (["--upstream-federation", "up", "--upstream-id", "bad id"], "invalid_id: upstream client id 'bad id'"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    # The config objects raise ConfigError (an FmflError): the CLI needs no translation and shows no traceback.
    from fmfl.cli import main

    args = ["aggregator", "--bundle", str(tmp_path), "--broker", "mqtt://127.0.0.1:1", "--rounds", "1",
            "--clients-per-round", "2", "--state-dir", str(tmp_path / "state"), "--lr", "0.1", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmfl aggregator: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "state").exists()  # nothing written


def test_config_and_worker_message_errors_are_fmfl_errors_and_still_value_errors() -> None:
    from fmfl.aggregator.core.round_config import RoundConfig
    from fmfl.aggregator.topology.messages import PartialError, Progress
    from fmfl.errors import ConfigError, FmflError

    with pytest.raises(ConfigError, match="over_select must be >= 1") as info:
        RoundConfig(rounds=1, clients_per_round=2, min_clients=1, round_timeout=1.0, local_epochs=1, over_select=0.5)
    assert isinstance(info.value, ValueError)  # callers that caught ValueError still do
    with pytest.raises(PartialError) as bad:
        Progress.from_bytes(b"not json")
    assert isinstance(bad.value, FmflError)
