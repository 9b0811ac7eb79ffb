"""Missing Debian data skips a test on a developer's machine and fails it under CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.debian_data import require_debian_data


@pytest.mark.parametrize("ci", ["1", "true"])
def test_missing_data_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="apt-get install wordnet-base; CI is set"):
        require_debian_data(tmp_path / "data.noun", "wordnet-base")


@pytest.mark.parametrize("ci", [None, "0", "false"])
def test_missing_data_skips_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="Debian package wordnet-base is not installed"):
        require_debian_data(tmp_path / "data.noun", "wordnet-base")


def test_present_data_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    (tmp_path / "data.noun").write_text("x")
    require_debian_data(tmp_path / "data.noun", "wordnet-base")  # neither skips nor fails

