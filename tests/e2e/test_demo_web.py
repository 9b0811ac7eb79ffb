"""``fmfl demo --web-clients N``: browser devices beside Python ones in one run, and the refusals that come first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e.test_demo import children_of, demo

from fmfl.cli import main


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.web
def test_mixed_demo_counts_python_and_web_devices_every_round(tmp_path: Path, cache: Path) -> None:
    pytest.importorskip("torch", reason="the demo exports its bundle on first use (workstation extra)")
    assert main(demo(tmp_path, cache, "--task", "vision", "--clients", "1", "--web-clients", "1", "--rounds", "2",
                     "--max-samples", "1000", "--round-timeout", "300")) == 0
    run = tmp_path / "runs" / "r"
    record = json.loads((run / "run.json").read_text())
    ok = [r for r in record["rounds"] if r["status"] == "ok"]
    assert len(ok) == 2
    for r in ok:  # the web device's update was accepted and counted in every round, beside the Python one
        assert r["participants_by_kind"] == {"python": 1, "web": 1}, r
        assert r["bytes_up_by_kind"]["web"] > 0
    assert "**Devices by kind**: python 2 client-rounds" in (run / "report.md").read_text()
    events = [json.loads(line) for line in (run / "logs" / "web.log").read_text().splitlines()
              if line.startswith("{")]
    assert {e["type"] for e in events if e.get("client") == "w00"} >= {"joined", "trained", "acked"}
    assert children_of(run) == []  # the browser went down with the demo


@pytest.mark.parametrize(("extra", "message"), [
    (("--broker-kind", "amqtt"), "needs the demo's own Mosquitto"),
    (("--broker", "mqtt://127.0.0.1:1883"), "needs the demo's own Mosquitto"),
])
def test_web_clients_refused_without_the_demos_mosquitto(tmp_path: Path, cache: Path, extra: tuple[str, ...],
                                                         message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(demo(tmp_path, cache, "--web-clients", "1", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs" / "r").exists()  # refused before anything was exported or written


def test_a_run_needs_at_least_one_device(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(demo(tmp_path, cache, "--clients", "0")) == 2
    assert "at least one device" in capsys.readouterr().err
