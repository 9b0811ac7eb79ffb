"""``fmfl demo`` refuses half-given DP options before it exports or writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmfl.cli import main
from fmfl.demo.run import DemoConfig, _dp_args


def test_half_given_central_dp_is_refused_before_the_run_folder_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--dp-clip", "0.5"]
    assert main(argv) == 2
    assert "--dp-noise-multiplier and --dp-clip go together" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "cache").exists()


def test_dp_flags_for_the_aggregator() -> None:
    args = _dp_args(DemoConfig(clients=7, dp_noise_multiplier=1.5, dp_clip=0.2, dp_adaptive_clip=True))
    assert args == ["--dp-noise-multiplier", "1.5", "--dp-clip", "0.2", "--dp-fleet-size", "7",
                    "--strategy", "dp-fedavg", "--dp-adaptive-clip"]  # fmt: skip
    assert _dp_args(DemoConfig()) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--local-dp-clip", "0.5"], "--local-dp-clip and --local-dp-noise-multiplier go together"),
        (["--dp-adaptive-clip"], "--dp-adaptive-clip needs --dp-noise-multiplier and --dp-clip"),
    ],
)
def test_half_given_local_dp_or_a_lone_adaptive_clip_is_refused_before_the_run_folder_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    argv = ["demo", "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "cache").exists()
