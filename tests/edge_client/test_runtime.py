"""Execution providers and the runtime version check of the device (``fmfl.edge_client.runtime``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmfl.bundle import verify_bundle
from fmfl.edge_client import runtime
from fmfl.edge_client.device import capabilities
from fmfl.edge_client.trainer import Trainer


def test_cuda_is_asked_for_first_when_the_runtime_offers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU here: a stand-in for what onnxruntime-gpu reports on a CUDA box (the only mock in this file).
    ort = runtime.onnxruntime_module()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert runtime.providers() == ["CPUExecutionProvider"]


def test_the_hello_reports_the_providers_really_in_use(vit_bundle: Path) -> None:
    trainer = Trainer(vit_bundle, verify_bundle(vit_bundle))
    assert trainer.providers == list(trainer.step_session.get_providers())
    caps = capabilities(None, trainer.providers)
    assert caps["training_providers"] == trainer.providers
    assert caps["training_device"] == ("cuda" if trainer.providers[0] == "CUDAExecutionProvider" else "cpu")


@pytest.mark.parametrize(("text", "parsed"), [("1.32.0", (1, 32, 0)), ("1.21.0+cu124", (1, 21, 0)),
                                              ("1.22.0rc1", (1, 22, 0)), ("1.20", (1, 20))])
def test_version_tuple(text: str, parsed: tuple[int, ...]) -> None:
    assert runtime.version_tuple(text) == parsed
