"""Run the demo's measured configurations and write docs/results.md (one section per task).

    python -m benchmarks.demo_results [--tasks vision,text,multimodal] [--rounds R] [--no-baselines] [--quick]

For each task: the demo with its default settings (default codec) and ``--baselines`` (classic model, linear
probe, tuned centralized fine-tuning, local-only devices, personalized evaluation), then the same run with
dense updates. One table and one plot per task, and the issue-14 goals checked against what was measured.
Nothing is tuned here: the demo's defaults were chosen on validation data (``benchmarks.federated_search``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._docs import cpu_model, replace_section
from fmfl.demo.report import codec_used

DOC = Path("docs/results.md")
TITLE = "# Results: federated fine-tuning on real data (`fmfl demo`)"


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
            "shared with other jobs")


def run(task: str, codec: str | None, rounds: int | None, runs_dir: Path, extra: list[str]) -> dict[str, Any]:
    run_id = f"{task}-{codec or 'default'}-{rounds or 'r'}-{int(time.time())}"
    cmd = [sys.executable, "-m", "fmfl.cli", "demo", "--task", task, "--runs-dir", str(runs_dir), "--run-id", run_id,
           *extra]
    cmd += ["--rounds", str(rounds)] if rounds else []
    cmd += ["--codec", codec] if codec else []
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record: dict[str, Any] = json.loads((runs_dir / run_id / "run.json").read_text())
    record.update(wall_s=time.perf_counter() - start, run_dir=str(runs_dir / run_id), command=" ".join(cmd[3:]),
                  load=(load, os.getloadavg()[0]))
    return record


def accuracy_of(record: dict[str, Any]) -> dict[int, float]:
    return {int(k): float(v) for k, v in record["accuracy"].items()}


def rounds_to(accuracy: dict[int, float], target: float) -> int | None:
    """The first round whose global model reaches ``target`` (None: never)."""
    return next((r for r in sorted(accuracy) if r > 0 and accuracy[r] >= target), None)


def max_drop_after(accuracy: dict[int, float], after: int) -> float:
    """The largest fall, in points, between consecutive evaluations after round ``after``."""
    rounds = sorted(r for r in accuracy if r > after)
    return max([0.0, *(100 * (accuracy[a] - accuracy[b]) for a, b in itertools.pairwise(rounds))])


def traffic(record: dict[str, Any]) -> dict[str, float]:
    """Bytes up and down per client-round, and as a fraction of the dense fp32 trainable set.

    Down is what the devices received (their ``downlink.json``, summed by the demo: every byte of every
    model, delta, task and Ack, over the versions they held), when the run has it. The gateway's own count
    (``published``) is what it handed the broker per client-round: it includes the dense copy of every version,
    published once for devices that join or fall behind, which a device on deltas never receives.
    """
    ok = [r for r in record["rounds"] if r.get("status") == "ok"]
    client_rounds = max(1, sum(r["participants"] for r in ok))
    dense = 4 * int(record["num_trainable"])
    up = sum(r.get("bytes_up", 0) for r in ok) / client_rounds
    published = sum(r.get("bytes_down", 0) for r in ok) / client_rounds
    received = record.get("downlink") or {}
    held = sum(received.get("models", {}).get(form, 0) for form in ("delta", "dense"))
    down = sum(received["bytes"].values()) / held if held else published
    return {"up": up, "down": down, "up_fraction": up / dense, "down_fraction": down / dense, "dense": dense,
            "published": published, "down_received": bool(held)}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def task_section(task: str, default: dict[str, Any], dense: dict[str, Any], plot: str | None) -> str:
    acc_d, acc_n = accuracy_of(default), accuracy_of(dense)
    final_d, final_n = acc_d[max(acc_d)], acc_n[max(acc_n)]
    b = default.get("baselines") or {}
    cfg = default["config"]
    up = traffic(default)
    lines = [f"## {task}", "",
             f"Run on {dt.date.today()} ({machine()}; load average {default['load'][0]:.1f} at the start and "
             f"{dense['load'][1]:.1f} at the end). Commands: `fmfl {default['command']}` and "
             f"`fmfl {dense['command']}`.", "",
             f"Bundle `{Path(default['bundle']).name}`: {default['num_trainable']:,} trainable parameters of "
             f"{default['total_parameters']:,}; {cfg['clients']} clients, Dirichlet({cfg['alpha']}), seed "
             f"{cfg['seed']}, strategy {cfg['strategy']}, {len(acc_d) - 1} rounds. Test accuracy of the final model"
             + (" (zero-shot from text prompts)." if task == "multimodal" else "."), "",
             "| model | test accuracy | notes |", "|---|---:|---|"]
    if b:
        c, local = b["centralized_tuned"], b["local_only"]
        lines += [
            f"| 1. classic: {b['classic']['what']} | {_pct(b['classic']['accuracy'])} | "
            f"{b['classic']['samples']:,} samples, {b['classic']['seconds']:.0f} s |",
            f"| 2. linear probe on the frozen features | {_pct(b['linear_probe']['accuracy'])} | converged: "
            f"{b['linear_probe']['converged']}, {b['linear_probe']['seconds']:.0f} s |",
            f"| 3. centralized fine-tuning, tuned on validation | {_pct(c['accuracy'])} | lr {c['lr']:g}, "
            f"{c['epochs']} of <= {c['max_epochs']} epochs, {c['seconds']:.0f} s |",
            f"| 4. local-only, mean / worst device | {_pct(local['mean'])} / {_pct(local['worst'])} | "
            f"lr {local['lr']:g}, {local['seconds']:.0f} s for all devices |",
        ]
    lines += [
        f"| 5. federated, dense updates | {_pct(final_n)} | {traffic(dense)['up']:,.0f} B up per client-round, "
        f"{dense['federated_seconds']:.0f} s |",
        f"| 6. **federated, default codec** ({codec_used([r for r in default['rounds'] if r.get('status') == 'ok'])}) "
        f"| **{_pct(final_d)}** | {up['up']:,.0f} B up ({100 * up['up_fraction']:.2f}% of dense), "
        f"{up['down']:,.0f} B down ({100 * up['down_fraction']:.2f}%) per client-round"
        + (f" as the devices received it (the gateway published {up['published']:,.0f} B per client-round, "
           "the dense copy of each version included)" if up["down_received"] else "")
        + f"; {default['federated_seconds']:.0f} s |", ""]
    if b:
        p = b["personalized"]
        lines += ["Personalized (each device's own held-out 20%" + (", in-batch image-caption retrieval"
                  if task == "multimodal" else "") + "): global model mean / worst "
                  f"{_pct(p['global']['mean'])} / {_pct(p['global']['worst'])}; local-only "
                  f"{_pct(p['local_only']['mean'])} / {_pct(p['local_only']['worst'])}; global + 1 local epoch "
                  f"{_pct(p['global_finetuned']['mean'])} / {_pct(p['global_finetuned']['worst'])}.", ""]
    lines += goals(task, default, dense, final_d, final_n, b)
    if plot:
        lines += ["", f"![{task}]({plot})"]
    return "\n".join(lines) + "\n"


def goals(task: str, default: dict[str, Any], dense: dict[str, Any], final_d: float, final_n: float,
          b: dict[str, Any]) -> list[str]:
    acc_d, acc_n = accuracy_of(default), accuracy_of(dense)
    target = 0.95 * final_n
    r_n, r_d = rounds_to(acc_n, target), rounds_to(acc_d, target)
    ratio = None if r_n is None or r_d is None else r_d / r_n
    up = traffic(default)
    out = ["Goals (issue 14):", ""]
    if task == "vision":
        out.append(f"- accuracy >= 88.5%: {_pct(final_d)} {_met(final_d >= 0.885)}; federated part "
                   f"{default['federated_seconds']:.0f} s (< 600 s: {_met(default['federated_seconds'] < 600)})")
        drop = max_drop_after(acc_d, 20)
        out.append(f"- largest drop between consecutive evaluations after round 20: {drop:.2f} points "
                   f"(<= 2: {_met(drop <= 2)})")
    if task == "text":
        out.append(f"- default codec >= 89.3%: {_pct(final_d)} {_met(final_d >= 0.893)}")
    if task == "multimodal":
        out.append(f"- zero-shot >= 88%: {_pct(final_d)} {_met(final_d >= 0.88)}")
    out.append(f"- rounds to 95% of dense's final ({_pct(target)}): dense {r_n}, default codec {r_d}"
               + (f" ({ratio:.2f}x; <= 1.25x: {_met(ratio <= 1.25)})" if ratio is not None else " (**missed**)"))
    if b:
        gap = 100 * (final_d - b["local_only"]["mean"])
        out.append(f"- federated minus the mean local-only device: {gap:+.2f} points (>= 5: {_met(gap >= 5)})")
    out.append(f"- bytes up {100 * up['up_fraction']:.2f}% of dense (<= 2%: {_met(up['up_fraction'] <= 0.02)}); "
               f"bytes down {100 * up['down_fraction']:.2f}% (<= 10%: {_met(up['down_fraction'] <= 0.10)})")
    return out


def plot(task: str, default: dict[str, Any], dense: dict[str, Any], out_dir: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for record, label in ((dense, "federated, dense"), (default, "federated, default codec")):
        acc = accuracy_of(record)
        ax.plot(sorted(acc), [100 * acc[r] for r in sorted(acc)], label=label)
    b = default.get("baselines") or {}
    refs = [("classic", b.get("classic", {}).get("accuracy")), ("linear probe", b.get("linear_probe", {}).get(
        "accuracy")), ("centralized (tuned)", b.get("centralized_tuned", {}).get("accuracy")),
        ("local-only (mean)", b.get("local_only", {}).get("mean"))]
    for (label, value), style in zip(refs, (":", "-.", "--", ":"), strict=True):
        if value is not None:
            ax.axhline(100 * value, linestyle=style, linewidth=1, color=f"C{2 + refs.index((label, value))}",
                       label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(max(0, 100 * min(accuracy_of(default).get(1, 0), 0.5)), 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{task}: federated vs the baselines")
    fig.tight_layout()
    name = f"results_{task}.png"
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, help="default: each task's demo default")
    parser.add_argument("--tasks", default="vision,text,multimodal")
    parser.add_argument("--no-baselines", action="store_true", help="skip the baselines (on by default)")
    parser.add_argument("--quick", action="store_true", help="3 clients, 3 rounds, small slices (harness check)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/results"))
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args()
    extra = ["--clients", "3", "--max-samples", "1500"] if args.quick else []
    rounds = 3 if args.quick else args.rounds
    for task in args.tasks.split(","):
        default = run(task, None, rounds, args.runs_dir, [*extra, *([] if args.no_baselines else ["--baselines"])])
        dense = run(task, "dense", rounds, args.runs_dir, extra)
        name = plot(task, default, dense, args.out.parent)
        replace_section(args.out, f"## {task}", task_section(task, default, dense, name), title=TITLE)
        print(task, json.dumps({"default": accuracy_of(default)[max(accuracy_of(default))],
                                "dense": accuracy_of(dense)[max(accuracy_of(dense))],
                                "baselines": {k: v.get("accuracy", v.get("mean")) for k, v in
                                              (default.get("baselines") or {}).items() if k != "personalized"}}),
              flush=True)


if __name__ == "__main__":
    main()
