"""Prometheus metrics for ``--metrics-port`` (prometheus-client, in the gateway extra).

Names follow Prometheus conventions (``_total`` counters, base units). The registry is private to
the run, so tests can start several gateways in one process.
"""

from __future__ import annotations

from typing import Any

from fmfl.aggregator.core.observer import RoundObserver
from fmfl.aggregator.durable.round_report import RoundStatus, RoundSummary
from fmfl.errors import FmflError


class PrometheusObserver(RoundObserver):
    """Exports the engine's hooks as Prometheus metrics over HTTP on ``port``."""

    def __init__(self, port: int, *, addr: str = "0.0.0.0") -> None:
        try:
            import prometheus_client as prom
        except ModuleNotFoundError as exc:
            raise FmflError("--metrics-port needs prometheus-client: pip install 'fmfl[gateway]'") from exc
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.rounds = prom.Counter("fmfl_rounds", "Rounds closed, by status", ["status"], registry=r)
        self.round_number = prom.Gauge("fmfl_round", "The current (or last) round number", registry=r)
        self.version = prom.Gauge("fmfl_global_version", "The latest global model version", registry=r)
        self.online = prom.Gauge("fmfl_clients_online", "Clients whose last status was online", registry=r)
        self.selected = prom.Gauge("fmfl_round_selected", "Clients selected in the current round", registry=r)
        self.accepted = prom.Counter(
            "fmfl_updates_accepted", "Updates accepted, by kind (on time, late)", ["kind"], registry=r
        )
        self.rejected = prom.Counter("fmfl_updates_rejected", "Updates rejected, by reason", ["reason"], registry=r)
        self.bytes_up = prom.Counter("fmfl_bytes_received", "Bytes received on update topics", registry=r)
        self.bytes_down = prom.Counter("fmfl_bytes_sent", "Bytes published (model, task, acks)", registry=r)
        self.duration = prom.Histogram(
            "fmfl_round_duration_seconds",
            "Wall time from a round's task to its close",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.participants = prom.Gauge("fmfl_round_participants", "Updates aggregated last round", registry=r)
        self.dp_epsilon = prom.Gauge(
            "fmfl_dp_epsilon", "Client-level DP epsilon spent so far, at the run's delta (dp-fedavg)", registry=r
        )
        try:
            self.server: Any = prom.start_http_server(port, addr=addr, registry=r)
        except OSError as exc:
            raise FmflError(f"cannot serve metrics on port {port}: {exc}") from exc

    def round_started(self, round: int, version: int, selected: int) -> None:
        self.round_number.set(round)
        self.version.set(version)
        self.selected.set(selected)

    def round_closed(self, summary: RoundSummary) -> None:
        self.rounds.labels(summary.status).inc()
        self.duration.observe(summary.duration_s)
        self.participants.set(summary.participants)
        if summary.status == RoundStatus.OK:
            self.version.set(summary.version)
        if "dp_epsilon" in summary.extra:
            self.dp_epsilon.set(summary.extra["dp_epsilon"])

    def update_accepted(self, nbytes: int, *, late: bool) -> None:
        self.accepted.labels("late" if late else "on_time").inc()

    def update_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def bytes_in(self, nbytes: int) -> None:
        self.bytes_up.inc(nbytes)

    def bytes_out(self, nbytes: int) -> None:
        self.bytes_down.inc(nbytes)

    def clients_online(self, count: int) -> None:
        self.online.set(count)

    def close(self) -> None:
        server = self.server[0] if isinstance(self.server, tuple) else self.server
        if server is not None and hasattr(server, "shutdown"):
            server.shutdown()
