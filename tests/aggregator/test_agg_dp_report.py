"""DP numbers in the round line, the metrics.jsonl object and the Prometheus gauge."""

from __future__ import annotations

import json

import prometheus_client as prom

from fmfl.aggregator.app.prometheus import PrometheusObserver
from fmfl.aggregator.durable.round_report import RoundSummary


def _summary(**extra: float) -> RoundSummary:
    return RoundSummary(
        round=3, version=3, status="ok", participants=4, selected=4, rejected_by_reason={}, bytes_up=10,
        bytes_down=20, metrics={"eval_accuracy": 0.5}, duration_s=1.0, strategy="dp-fedavg", codec="dense",
        extra=dict(extra),
    )  # fmt: skip


def test_epsilon_is_in_the_line_and_at_the_top_level_of_the_json() -> None:
    s = _summary(dp_epsilon=12.345678, dp_delta=1e-5)
    assert "eval_accuracy 0.5000, epsilon 12.35 (delta 1e-05)," in s.line()
    data = json.loads(s.to_json())
    assert data["dp_epsilon"] == 12.345678
    assert data["dp_delta"] == 1e-5
    assert "extra" not in data
    assert "epsilon" not in _summary().line()


def test_prometheus_exports_the_epsilon_gauge() -> None:
    observer = PrometheusObserver(0, addr="127.0.0.1")
    try:
        observer.round_closed(_summary())
        assert b"fmfl_dp_epsilon 0.0" in prom.generate_latest(observer.registry)
        observer.round_closed(_summary(dp_epsilon=7.5, dp_delta=1e-5))
        assert b"fmfl_dp_epsilon 7.5" in prom.generate_latest(observer.registry)
    finally:
        observer.close()
