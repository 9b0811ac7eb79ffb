"""One aggregator run, wired: bundle -> strategy -> engine -> MQTT adapter, with signals and printing.

Kept apart from ``cli.py`` so that tests and the benchmark can start a gateway in-process from a
settings value, and so that ``cli.py`` imports nothing but argparse.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from fmfl.aggregation.catalog import make_strategy
from fmfl.aggregation.sparse import Float32Array
from fmfl.aggregation.strategy import Strategy
from fmfl.aggregation.validation import UpdateLimits
from fmfl.aggregator.app.mqtt_gateway import MqttGateway
from fmfl.aggregator.core.engine import RoundEngine
from fmfl.aggregator.core.ingest import SignatureCheck
from fmfl.aggregator.core.observer import Observers, RoundObserver
from fmfl.aggregator.core.round_config import RoundConfig
from fmfl.aggregator.durable.round_report import RoundSummary
from fmfl.aggregator.durable.run_identity import read_prior_run
from fmfl.aggregator.topology.tier import UpstreamConfig
from fmfl.aggregator.topology.worker import WorkerEngine
from fmfl.bundle import verify_bundle
from fmfl.errors import FmflError
from fmfl.mqtt import MqttOptions
from fmfl.protocol import Limits, Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Everything ``fmfl aggregator`` was told, already parsed."""

    bundle: Path
    broker: MqttOptions
    state_dir: Path
    round: RoundConfig
    strategy: str = "fedavg"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    max_norm: float | None = None
    trust_key: Path | None = None
    resume: bool = False
    metrics_port: int | None = None
    share_group: str | None = None
    client_id: str | None = None
    workers: tuple[str, ...] = ()
    partial_timeout: float = 30.0
    worker_id: str | None = None  # set: run as an aggregation worker, not as the coordinator
    upstream: UpstreamConfig | None = None  # set: a lower tier, one client of a parent gateway
    device_registry: Path | None = None  # set: every update must be signed by an active device in it


class PrintObserver(RoundObserver):
    """The one line per round on stdout."""

    def round_closed(self, summary: RoundSummary) -> None:
        print(summary.line(), flush=True)


def load_initial_weights(bundle: Path, trust_key: Path | None) -> tuple[str, Float32Array]:
    """``(bundle_id, version-0 weights)`` of a verified bundle; torch-free."""
    manifest = verify_bundle(bundle, trust_key)
    name = manifest.artifacts.get("initial_weights")
    if not name:
        raise FmflError(f"bundle {bundle} has no initial_weights artifact (re-export it with this fmfl)")
    weights = np.load(bundle / name, allow_pickle=False)
    if weights.dtype != np.float32 or weights.shape != (manifest.num_trainable,):
        raise FmflError(
            f"bundle {bundle}: {name} holds {weights.dtype} {weights.shape}, "
            f"expected float32 ({manifest.num_trainable},)"
        )
    if not bool(np.isfinite(weights).all()):
        raise FmflError(f"bundle {bundle}: {name} holds NaN or infinity")
    return manifest.bundle_id, weights


def build_strategy(name: str, options: dict[str, Any], max_norm: float | None) -> Strategy:
    try:
        return make_strategy(name, limits=UpdateLimits(max_norm=max_norm), **options)
    except ValueError as exc:
        raise FmflError(f"--strategy {name}: {exc}") from exc


def build_verifier(settings: ServerSettings) -> SignatureCheck | None:
    """The signed-update check of ``--device-registry`` (cryptography is imported only then)."""
    if settings.device_registry is None:
        return None
    from fmfl.trust.update_signing import UpdateVerifier

    return UpdateVerifier(settings.device_registry, federation=settings.round.federation)


def build_engine(settings: ServerSettings, observer: RoundObserver) -> RoundEngine:
    bundle_id, weights = load_initial_weights(settings.bundle, settings.trust_key)
    strategy = build_strategy(settings.strategy, settings.strategy_options, settings.max_norm)
    topics, limits = Topics(settings.round.federation), Limits.for_vector_size(int(weights.shape[0]))
    return RoundEngine(
        config=settings.round,
        bundle_id=bundle_id,
        initial_weights=weights,
        strategy=strategy,
        state_dir=settings.state_dir,
        resume=settings.resume,
        observer=observer,
        workers=settings.workers,
        partial_timeout=settings.partial_timeout,
        upstream=settings.upstream,
        verifier=build_verifier(settings),
        # Read only when a new run starts (after every other check): what earlier runs left retained.
        prior=lambda: read_prior_run(settings.broker, topics, limits),
    )


def build_worker(settings: ServerSettings, observer: RoundObserver) -> WorkerEngine:
    assert settings.worker_id is not None
    bundle_id, weights = load_initial_weights(settings.bundle, settings.trust_key)
    strategy = build_strategy(settings.strategy, settings.strategy_options, settings.max_norm)  # fail early
    if not strategy.supports_partial_rounds:
        raise FmflError(f"--strategy {strategy.name} cannot split rounds: it cannot run on a worker")
    return WorkerEngine(
        config=settings.round,
        worker_id=settings.worker_id,
        bundle_id=bundle_id,
        size=int(weights.shape[0]),
        make_strategy=lambda: build_strategy(settings.strategy, settings.strategy_options, settings.max_norm),
        state_dir=settings.state_dir,
        observer=observer,
        verifier=build_verifier(settings),
    )


def serve(settings: ServerSettings, stop: threading.Event | None = None) -> int:
    """Run until ``--rounds`` are done (a worker: until stopped) or SIGTERM/SIGINT; returns 0."""
    stop = stop or threading.Event()
    observers: list[RoundObserver] = [PrintObserver()]
    prom = None
    if settings.metrics_port is not None:
        from fmfl.aggregator.app.prometheus import PrometheusObserver

        prom = PrometheusObserver(settings.metrics_port)
        observers.append(prom)
    engine: RoundEngine | WorkerEngine
    if settings.worker_id is not None:
        engine = build_worker(settings, Observers(*observers))
    else:
        engine = build_engine(settings, Observers(*observers))
    gateway = MqttGateway(engine, settings.broker, client_id=settings.client_id, share_group=settings.share_group)
    restore = _on_signals(stop)
    try:
        gateway.run(stop)
    finally:
        restore()
        engine.close()
        if prom is not None:
            prom.close()
    if isinstance(engine, WorkerEngine):
        print(f"worker {settings.worker_id} stopped", flush=True)
    elif settings.upstream is not None:
        print(f"lower-tier gateway stopped at parent version {engine.version}", flush=True)
    elif stop.is_set() and not engine.finished:
        print(f"stopped at global version {engine.version}; run again with --resume to continue", flush=True)
    else:
        print(f"done: global version {engine.version} in {settings.state_dir / 'models'}", flush=True)
    return 0


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop``; the loop finishes the message in hand (its WAL write) first."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("signal %d: finishing the current message, then disconnecting", signum)
        print("stopping (signal received)", file=sys.stderr, flush=True)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
