"""The protocol's golden vectors in a real headless Chromium (Debian's, driven by puppeteer-core): golden.html runs
every vector of golden_vectors.json, golden_1_2.json and golden_downlink.json and the signed-update vector
(WebCrypto Ed25519) through js/protocol, as the web device loads it (ES modules, fzstd through the import map)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.web_protocol_cases import reference_cases

from fmfl.web.server import SiteServer

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "protocol"
FILES = ("golden_vectors.json", "golden_1_2.json", "golden_downlink.json")


@pytest.fixture
def golden_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app folder, fzstd where the import map points, and the golden files, served on loopback."""
    root = tmp_path / "site"
    shutil.copytree(REPO / "src" / "fmfl" / "web" / "app", root)
    fzstd = REPO / "web" / "node_modules" / "fzstd" / "esm" / "index.mjs"
    if not fzstd.is_file():
        pytest.fail("web/node_modules lacks fzstd (scripts/install.sh web)")
    (root / "vendor" / "fzstd").mkdir(parents=True)
    shutil.copyfile(fzstd, root / "vendor" / "fzstd" / "index.mjs")
    (root / "golden").mkdir()
    for name in FILES:
        shutil.copyfile(GOLDEN / name, root / "golden" / name)
    with SiteServer(root) as server:
        yield server.url, root


def _run_golden(browser: Any, url: str, files: list[str], oracle: str | None = None) -> dict[str, Any]:
    query = "&".join(f"vectors=golden/{name}" for name in files)
    if oracle is not None:
        query += f"&oracle=golden/{oracle}"
    report = browser.run_page(f"{url}golden.html?{query}", wait="window.__goldenResult !== undefined",
                              result="window.__goldenResult", timeout_s=90)
    assert not report["page_errors"], report
    result: dict[str, Any] = report["result"]
    return result


@pytest.mark.web
def test_every_golden_vector_passes_in_chromium(browser: Any, golden_site: tuple[str, Path]) -> None:
    url, _ = golden_site
    result = _run_golden(browser, url, list(FILES))
    assert result["failures"] == []
    assert result["ok"]
    assert result["kinds"] == ["1.1", "1.2", "downlink"]
    # 15 + 4 payload vectors (2-3 checks each), 14 message checks, 4 downlink, signature and 4 SHA-256 lengths.
    assert result["checks"] >= 70
    assert result["passed"] == result["checks"]
    assert "Chrome/" in result["userAgent"]
    assert "Headless" in result["userAgent"]


@pytest.mark.web
def test_the_golden_page_reports_a_tampered_vector(browser: Any, golden_site: tuple[str, Path]) -> None:
    # Prepare: one payload byte of one 1.1 vector changed: the page must say which check failed.
    url, root = golden_site
    vectors = json.loads((root / "golden" / "golden_vectors.json").read_text())
    payload = vectors["vectors"][3]["payload_hex"]
    vectors["vectors"][3]["payload_hex"] = payload[:-2] + ("00" if payload[-2:] != "00" else "01")
    (root / "golden" / "tampered.json").write_text(json.dumps(vectors))
    # Execute
    result = _run_golden(browser, url, ["tampered.json"])
    # Assert
    assert not result["ok"]
    assert result["kinds"] == ["1.1"]
    assert any(f.startswith("1.1 #3 topk:0.25+int8 decodes") for f in result["failures"]), result["failures"]
    assert any(f.startswith("1.1 #3 topk:0.25+int8 bytes") for f in result["failures"])
    assert result["passed"] == result["checks"] - len(result["failures"]) > 40


@pytest.mark.web
def test_random_chains_encode_to_the_reference_bytes_in_chromium(browser: Any, golden_site: tuple[str, Path]) -> None:
    # Prepare: 60 random chains (all stages, sr, ef, zstd, per_tensor) with 1-3 rounds, written by the reference.
    url, root = golden_site
    cases = reference_cases(seed=777, count=60)
    (root / "golden" / "oracle.json").write_text(json.dumps(cases))
    # Execute
    result = _run_golden(browser, url, [], oracle="oracle.json")
    # Assert: payload bytes (zstd: decoded values), sent values and residual, every round of every case.
    rounds = sum(len(c["rounds"]) for c in cases)
    assert result["failures"] == []
    assert result["kinds"] == ["oracle"]
    assert result["checks"] >= 2 * rounds + len(cases)
