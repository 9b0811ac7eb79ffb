"""``runs/<id>/report.md`` and its plots: accuracy per round, and bytes per round against dense fp32."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any


def _plots(run_dir: Path, record: Any) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    versions = sorted(record.accuracy)
    if versions:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(versions, [100 * record.accuracy[v] for v in versions], marker="o", label="federated (global model)")
        if record.centralized.get("accuracy") is not None:
            ax.axhline(100 * record.centralized["accuracy"], color="gray", linestyle="--", label="centralized")
        for (label, value), style in zip(baseline_lines(record.baselines), (":", "-.", "--", ":"), strict=False):
            ax.axhline(100 * value, linestyle=style, linewidth=1, label=label, color=None)
        ax.set_xlabel("global model version (round)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "accuracy.png", dpi=120)
        plt.close(fig)
        made.append("accuracy.png")
    ok = [r for r in record.rounds if r.get("status") == "ok"]
    if ok:
        rounds = [r["round"] for r in ok]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(rounds, [r["bytes_up"] for r in ok], marker="o", label="fmfl uplink (all clients)")
        ax.plot(rounds, [4 * record.num_trainable * r["participants"] for r in ok], label="dense fp32, trainable set")
        if record.total_parameters:
            full = [4 * record.total_parameters * r["participants"] for r in ok]
            ax.plot(rounds, full, label="dense fp32, full model")
        ax.set_yscale("log")
        ax.set_xlabel("round")
        ax.set_ylabel("bytes uploaded per round")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "bytes.png", dpi=120)
        plt.close(fig)
        made.append("bytes.png")
    return made


def _downlink_lines(record: Any, ok: list[dict[str, Any]]) -> list[str]:
    """Bytes down per client-round as the Python devices counted them (docs/protocol.md 2b).

    A client-round is one global version a device held: devices that joined late count only the versions
    they were there for (each version is taken once, as a delta or dense).
    """
    down = getattr(record, "downlink", None) or {}
    taken = down.get("models", {})
    client_rounds = taken.get("delta", 0) + taken.get("dense", 0)
    if not ok or not client_rounds:
        return []
    received = down["bytes"]
    models = received.get("global", 0) + received.get("delta", 0)
    total = sum(received.values())
    dense = 4 * record.num_trainable
    delta_sizes = [r["downlink_delta_bytes"] for r in ok if r.get("downlink_delta_bytes")]
    return [f"**Downlink**: {total / client_rounds:,.0f} bytes per client-round received on average "
            f"({down['devices']} devices, {client_rounds:,} versions held), of which global models "
            f"{models / client_rounds:,.0f} = {100 * models / client_rounds / dense:.2f}% of dense fp32 of the "
            f"trainable set, the rest tasks and Acks; {taken.get('delta', 0):,} versions taken as deltas, "
            f"{taken.get('dense', 0):,} dense"
            + (f", {taken['refused_delta']:,} deltas refused" if taken.get("refused_delta") else "")
            + (f"; one delta {sum(delta_sizes) / len(delta_sizes):,.0f} bytes on average, one dense model "
               f"{ok[-1].get('downlink_dense_bytes', 0):,}." if delta_sizes else ".")]


def codec_used(rounds: list[dict[str, Any]]) -> str:
    """The uplink codec of the completed rounds as a schedule spec (``"A@5,B"`` for a warm-up), "" if none ran."""
    runs = [(codec, len(list(group))) for codec, group in itertools.groupby(r.get("codec", "") for r in rounds)]
    return ",".join([*(f"{codec}@{n}" for codec, n in runs[:-1]), runs[-1][0]]) if runs else ""


def write_report(run_dir: Path, record: Any) -> Path:
    plots = _plots(run_dir, record)
    cfg = record.config
    ok = [r for r in record.rounds if r.get("status") == "ok"]
    lines = [
        f"# fmfl demo: {cfg['task']}",
        "",
        f"- clients {cfg['clients']}, rounds {cfg['rounds']} ({len(ok)} completed), Dirichlet alpha {cfg['alpha']}, "
        f"strategy {cfg['strategy']}, codec {codec_used(ok) or cfg['codec']}",
        f"- bundle `{record.bundle}` (id {record.bundle_id}): {record.num_trainable:,} trainable parameters"
        + (f" of {record.total_parameters:,}" if record.total_parameters else ""),
        f"- broker {record.broker}; wall time {record.seconds:.0f} s, federated part {record.federated_seconds:.0f} s"
        + (f" (of which export {record.export_seconds:.0f} s)" if record.export_seconds else ""),
        "",
    ]
    if record.accuracy:
        last = max(record.accuracy)
        lines += [f"**Test accuracy**: {100 * record.accuracy[0]:.2f}% before, {100 * record.accuracy[last]:.2f}% "
                  f"after {last} rounds (global model v{last})."]
    if record.centralized:
        c = record.centralized
        last = max(record.accuracy) if record.accuracy else 0
        gap = 100 * (record.accuracy.get(last, float("nan")) - c["accuracy"])
        lines += [f"**Centralized** (same trainable set, pooled {c['samples']:,} samples, {c['sample_passes']:,} "
                  f"sample passes): {100 * c['accuracy']:.2f}%; federated minus centralized: {gap:+.2f} points."]
    lines += baselines_section(record.baselines, record.accuracy, getattr(record, "baselines_seconds", 0.0))
    if ok:
        up = sum(r["bytes_up"] for r in ok) / sum(r["participants"] for r in ok)
        dense = 4 * record.num_trainable
        lines += [f"**Uplink**: {up:,.0f} bytes per client-round on average, {100 * up / dense:.2f}% of dense fp32 "
                  f"of the trainable set ({dense:,} bytes)"
                  + (f" and {100 * up / (4 * record.total_parameters):.4f}% of the full model."
                     if record.total_parameters else ".")]
    lines += kinds_lines(ok)
    lines += _downlink_lines(record, ok)
    lines += ["", "| round | status | participants | test accuracy | bytes up | bytes down | duration (s) |",
              "|---:|---|---:|---:|---:|---:|---:|"]
    for r in record.rounds:
        acc = r.get("test_accuracy")
        kinds = r.get("participants_by_kind") or {}
        by_kind = f" ({', '.join(f'{k} {n}' for k, n in kinds.items())})" if len(kinds) > 1 else ""
        lines.append(f"| {r.get('round')} | {r.get('status')} | {r.get('participants')}/{r.get('selected')}{by_kind} | "
                     f"{'' if acc is None else f'{100 * acc:.2f}%'} | {r.get('bytes_up', 0):,} | "
                     f"{r.get('bytes_down', 0):,} | {r.get('duration_s', 0):.1f} |")
    lines += [""] + [f"![{p}]({p})" for p in plots]
    if record.events:
        lines += ["", "## Events", ""] + [f"- {e}" for e in record.events]
    if not record.completed:
        lines += ["", "_The run did not complete every round; the report covers what did._"]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def kinds_lines(ok: list[dict[str, Any]]) -> list[str]:
    """Who took part by device kind (the hello's ``device_kind``: python, web, ...), when more than one did."""
    rounds: dict[str, int] = {}
    nbytes: dict[str, int] = {}
    for r in ok:
        for kind, n in (r.get("participants_by_kind") or {}).items():
            rounds[kind] = rounds.get(kind, 0) + n
            nbytes[kind] = nbytes.get(kind, 0) + (r.get("bytes_up_by_kind") or {}).get(kind, 0)
    if len(rounds) < 2:
        return []
    parts = [f"{kind} {n} client-rounds, {nbytes[kind] / n:,.0f} bytes up each" for kind, n in sorted(rounds.items())]
    return [f"**Devices by kind**: {'; '.join(parts)}."]


def baseline_lines(baselines: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, test accuracy) of each measured baseline, for the plot and the table."""
    if not baselines:
        return []
    return [(f"classic: {baselines['classic']['what']}", baselines["classic"]["accuracy"]),
            ("linear probe (frozen features)", baselines["linear_probe"]["accuracy"]),
            ("centralized fine-tuning, tuned on validation", baselines["centralized_tuned"]["accuracy"]),
            ("local-only, mean device", baselines["local_only"]["mean"])]


def baselines_section(baselines: dict[str, Any], accuracy: dict[int, float], seconds: float) -> list[str]:
    """The report's baseline table (test set) and personalized table (each device's held-out split)."""
    if not baselines:
        return []
    final = accuracy[max(accuracy)]
    c, local, pers = baselines["centralized_tuned"], baselines["local_only"], baselines["personalized"]
    lines = ["", f"## Baselines (same training data, same test set; measured in {seconds:.0f} s)", "",
             "| model | test accuracy | federated (this run) minus it |", "|---|---:|---:|"]
    for label, value in baseline_lines(baselines):
        lines.append(f"| {label} | {100 * value:.2f}% | {100 * (final - value):+.2f} |")
    lines += [f"| local-only, worst device | {100 * local['worst']:.2f}% | {100 * (final - local['worst']):+.2f} |",
              f"| **federated, this run** | **{100 * final:.2f}%** | |", "",
              f"Centralized: lr {c['lr']:g}, {c['epochs']} epochs (of at most {c['max_epochs']}), chosen on a "
              f"{c['samples']:,}-sample training part's held-out validation split (validation accuracy "
              f"{100 * c['validation_accuracy']:.2f}%). Local-only: lr {local['lr']:g}, epochs chosen on a tenth of "
              f"each device's own training split.", "",
              "### Personalized: each device's own held-out split", "",
              "| model | mean device | worst device |", "|---|---:|---:|"]
    names = {"global": "global model", "local_only": "local-only model",
             "global_finetuned": "global model + 1 local epoch"}
    for key, label in names.items():
        lines.append(f"| {label} | {100 * pers[key]['mean']:.2f}% | {100 * pers[key]['worst']:.2f}% |")
    return [*lines, ""]
