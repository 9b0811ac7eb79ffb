"""The ``## fmfl vs Flower`` section of docs/benchmarks.md, rendered from what ``benchmarks.run`` measured.

Every cell of a comparison is min / median / max over the repeats named in its row; ratios are ratios of
medians; accuracy differences are in percentage points.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from benchmarks.run_plan import (
    ALPHA,
    BATCH,
    GOAL_ACC,
    GOAL_AGG,
    GOAL_COLD_S,
    GOAL_RSS,
    GOAL_STEP,
    GOAL_UP,
    IMAGE,
    LR,
    SEED,
    Plan,
    fmt,
    goal,
)


def fmfl_rounds(fm: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in fm["record"]["rounds"] if r.get("status") == "ok"]


def many(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def med(xs: list[float]) -> float:
    return float(statistics.median(xs))


class Table:
    """A markdown comparison table whose every row names its repeats on each side."""

    def __init__(self, left: str, right: str) -> None:
        self.rows = [f"| figure | {left} | {right} | {left} / {right} (medians) | repeats ({left} / {right}) | "
                     "goal (issue) | |", "|---|---:|---:|---:|---|---|---|"]

    def row(self, name: str, a: list[float] | None, b: list[float] | None, scale: float, digits: int, repeats: str,
            goal_text: str = "-", ok: bool | None = None) -> None:
        ratio = f"{med(a) / med(b):.3g}" if a and b and med(b) else "-"
        self.rows.append(f"| {name} | {fmt(a, scale, digits) if a else '-'} | "
                         f"{fmt(b, scale, digits) if b else 'not run'} | {ratio} | {repeats} | {goal_text} | "
                         f"{'' if ok is None else goal(ok)} |")


def client_rows(run: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every client-round's metrics of a Flower run (its ClientApp's own record)."""
    return [c for r in (run["server"]["rounds"] if run else []) for c in r["clients"] if "error" not in c]


def comparison_rows(plan: Plan, fm: dict[str, Any], fl: dict[str, Any] | None, fl_cached: dict[str, Any] | None,
                    cached: dict[str, Any] | None, cold: dict[str, Any], agg: dict[str, Any] | None,
                    dense_bytes: int) -> list[str]:
    rounds = fmfl_rounds(fm)
    n_r = len(rounds)
    up = [r["bytes_up"] / r["participants"] for r in rounds]
    down = [float(r["bytes_down"]) for r in rounds[1:]] or [float(rounds[0]["bytes_down"])]
    f_step = [r["metrics"]["train_seconds"] / r["metrics"]["steps"] for r in rounds]
    f_round = [float(r["duration_s"]) for r in rounds]
    t = Table("fmfl", "Flower")
    cl = client_rows(fl)
    n_cl = f"{n_r} rounds (mean per round) / {len(cl)} client-rounds"
    fl_up = [float(c["arrayrecord-bytes"]) for c in cl] or None
    n_cr = plan.clients * plan.deployed_rounds
    wire_up = [fl["wire_up"] / n_cr] if fl else None
    wire_down = [fl["wire_down"] / n_cr] if fl else None
    t.row("bytes up per client-round: update message (fmfl ClientUpdate / Flower ArrayRecord)", up, fl_up, 1, 0,
          n_cl, f"<= 1% of dense fp32 ({dense_bytes:,} B) (#6); fmfl: {med(up) / dense_bytes:.2%}",
          med(up) <= GOAL_UP * dense_bytes)
    t.row("bytes up per client-round on the wire (Flower: relay count incl. HTTP, polling, heartbeats)", up,
          wire_up, 1, 0, f"{n_r} rounds / 1 run (total / client-rounds)",
          "fmfl column: message bytes (MQTT/TCP framing not counted)")
    t.row("bytes down per client-round: global model message (fmfl: one published copy each client receives)", down,
          fl_up, 1, 0, n_cl, "none set; fmfl sends the global dense")
    t.row("bytes down per client-round on the wire (Flower: relay count incl. FAB download)", down, wire_down, 1, 0,
          f"{many(len(down), 'round')} / 1 run (total / client-rounds)")
    fl_step = [c["train-seconds"] / c["steps"] for c in cl] or None
    t.row("client step in the federation, ms (Flower as deployed: trunk + head)", f_step, fl_step, 1e3, 2, n_cl,
          "<= 0.6x PyTorch (#4)", bool(fl_step) and med(f_step) <= GOAL_STEP * med(fl_step or [1.0]))
    cd = client_rows(fl_cached)
    d_step = [c["train-seconds"] / c["steps"] for c in cd] or None
    t.row("client step in the federation, ms (Flower + cached features, deployed: the same head-only work as "
          "fmfl)", f_step, d_step, 1e3, 3, f"{n_r} rounds (mean per round) / {len(cd)} client-rounds",
          "<= 0.6x PyTorch (#4)", bool(d_step) and med(f_step) <= GOAL_STEP * med(d_step or [1.0]))
    cc = client_rows(cached)
    c_step = [c["train-seconds"] / c["steps"] for c in cc] or None
    t.row("client step in the federation, ms (Flower + cached features, simulated)", f_step, c_step, 1e3, 3,
          f"{n_r} rounds (mean per round) / {len(cc):,} client-rounds", "<= 0.6x PyTorch (#4)",
          bool(c_step) and med(f_step) <= GOAL_STEP * med(c_step or [1.0]))
    s_fm = [t_ for c in cold["fmfl"] for t_ in c["steps"]]
    s_fl = [t_ for c in cold["flower"] for t_ in c["steps"]] or None
    t.row("client step alone, ms (fresh process, 8 steps after the first; Flower: trunk + head)", s_fm, s_fl, 1e3, 2,
          f"{len(s_fm)} / {len(s_fl or [])} steps in {plan.repeats} process(es) per side", "<= 0.6x PyTorch (#4)",
          bool(s_fl) and med(s_fm) <= GOAL_STEP * med(s_fl or [1.0]))
    rss = fm["client_rss"]
    fl_app = [float(c["vmhwm-mb"]) for c in cl] or None
    t.row("client peak RSS in the federation, MB (fmfl client / Flower ClientApp)", rss, fl_app, 1, 0,
          f"{len(rss)} client processes / {len(fl_app or [])} ClientApp processes (one per client-round)",
          "<= 0.4x PyTorch (#4)", bool(fl_app) and med(rss) <= GOAL_RSS * med(fl_app or [1.0]))
    if fl:
        device = device_rss(fl)
        t.row("client device peak RSS, MB (Flower: SuperNode + SuperExec + ClientApp)", rss, device, 1, 0,
              f"{len(rss)} clients / {len(device)} SuperNodes", "<= 0.4x PyTorch (#4)",
              med(rss) <= GOAL_RSS * med(device))
    if fl_cached:
        app = [float(c["vmhwm-mb"]) for c in cd]
        t.row("client peak RSS in the federation, MB (Flower + cached features, deployed: ClientApp)", rss, app, 1,
              0, f"{len(rss)} client processes / {len(app)} ClientApp processes", "<= 0.4x PyTorch (#4)",
              med(rss) <= GOAL_RSS * med(app))
        device = device_rss(fl_cached)
        t.row("client device peak RSS, MB (Flower + cached features, deployed: SuperNode + SuperExec + ClientApp)",
              rss, device, 1, 0, f"{len(rss)} clients / {len(device)} SuperNodes", "<= 0.4x PyTorch (#4)",
              med(rss) <= GOAL_RSS * med(device))
    c_fm = [c["cold_s"] for c in cold["fmfl"]]
    c_re = [c["cold_s"] for c in cold["fmfl_restart"]]
    c_fl = [c["cold_s"] for c in cold["flower"]] or None
    n_cold = f"{len(c_fm)} / {len(c_fl or [])} fresh processes, sides alternating"
    t.row("cold start to first step, s (fmfl: empty feature cache)", c_fm, c_fl, 1, 2, n_cold, "< 1 s (#4)",
          med(c_fm) < GOAL_COLD_S)
    t.row("cold start to first step, s (fmfl: restart, features cached)", c_re, c_fl, 1, 2, n_cold, "< 1 s (#4)",
          med(c_re) < GOAL_COLD_S)
    fl_round = [r["t_aggregated"] - r["t_configure"] for r in fl["server"]["rounds"]] if fl else None
    t.row("wall time per round, s (Flower as deployed)", f_round, fl_round, 1, 2,
          f"{n_r} / {many(len(fl_round or []), 'round')}", "none set")
    d_round = ([r["t_aggregated"] - r["t_configure"] for r in fl_cached["server"]["rounds"][1:]] or None
               if fl_cached else None)
    t.row("wall time per round, s, rounds 2 on (Flower + cached features, deployed)", f_round[1:] or f_round,
          d_round, 1, 2, f"{max(n_r - 1, 1)} / {many(len(d_round or []), 'round')}", "none set")
    c_round = [r["t_aggregated"] - r["t_configure"] for r in cached["server"]["rounds"][1:]] if cached else None
    t.row("wall time per round, s, rounds 2 on (Flower + cached features, Simulation Engine)", f_round[1:] or f_round,
          c_round, 1, 3, f"{max(n_r - 1, 1)} / {many(len(c_round or []), 'round')}", "none set")
    t.row(f"whole federation incl. start-up, s, {plan.rounds} rounds (Flower + cached features)", [fm["wall_s"]],
          [cached["wall_s"]] if cached else None, 1, 1, "1 run / 1 run",
          "none here (#6's < 10 min is for the 60,000-sample demo, docs/results.md)")
    for label, run in (("Flower as deployed", fl), ("Flower + cached features, deployed", fl_cached)):
        t.row(f"whole federation incl. start-up, s ({label}: {many(plan.deployed_rounds, 'round')} only)", None,
              [run["wall_s"]] if run else None, 1, 1, "- / 1 run", f"fmfl's {plan.rounds} rounds: above")
    if agg:
        ta = agg["times"]
        n_agg = f"{len(ta['fmfl'])} / {len(ta['flower_aggregate'])} interleaved calls"
        t.row(f"server aggregation, ms ({agg['clients']} real updates; Flower: legacy aggregate())", ta["fmfl"],
              ta["flower_aggregate"], 1e3, 3, n_agg, ">= 10x faster than Flower (#5)",
              med(ta["flower_aggregate"]) >= GOAL_AGG * med(ta["fmfl"]))
        t.row("server aggregation, ms (Flower: aggregate_arrayrecords, what 1.42's FedAvg runs)", ta["fmfl"],
              ta["flower_arrayrecords"], 1e3, 3, n_agg, ">= 10x faster than Flower (#5)",
              med(ta["flower_arrayrecords"]) >= GOAL_AGG * med(ta["fmfl"]))
    return t.rows


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def points(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{(a - b) * 100:+.2f}"


def accuracy_rows(plan: Plan, acc: dict[str, dict[int, float]], fm: dict[str, Any],
                  dense: dict[str, Any] | None, dense_bytes: int) -> list[str]:
    """Test accuracy of every run's global after the same rounds, and the default codec's cost against dense."""
    def get(side: str, r: int) -> float | None:
        return acc.get(side, {}).get(r)

    rows = ["| after round | fmfl default codec | fmfl `--codec dense` | Flower + cached features | Flower as "
            "deployed | default - Flower (points) | dense - Flower (points) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in plan.checkpoints:
        ref = get("flower_cached", r) if get("flower_cached", r) is not None else get("flower", r)
        rows.append(f"| {r} | {pct(get('fmfl', r))} | {pct(get('fmfl_dense', r))} | {pct(get('flower_cached', r))} | "
                    f"{pct(get('flower', r))} | {points(get('fmfl', r), ref)} | {points(get('fmfl_dense', r), ref)} |")
    if dense is None:
        return rows
    up = [r["bytes_up"] / r["participants"] for r in fmfl_rounds(fm)]
    up_dense = [r["bytes_up"] / r["participants"] for r in fmfl_rounds(dense)]
    gap = acc["fmfl"][plan.rounds] - acc["fmfl_dense"][plan.rounds]
    rows += [
        "",
        "fmfl's default codec against the same fmfl run with `--codec dense` (goals of issue 6):",
        "",
        "| figure | fmfl default codec | fmfl `--codec dense` | default / dense | repeats | goal (issue) | |",
        "|---|---:|---:|---:|---|---|---|",
        f"| bytes up per client-round | {fmt(up, 1, 0)} | {fmt(up_dense, 1, 0)} | {med(up) / med(up_dense):.4f} | "
        f"{len(up)} / {len(up_dense)} rounds | <= 1% of dense fp32 ({dense_bytes:,} B) (#6) | "
        f"{goal(med(up) <= GOAL_UP * dense_bytes)} |",
        f"| test accuracy after {plan.rounds} rounds | {pct(acc['fmfl'][plan.rounds])} | "
        f"{pct(acc['fmfl_dense'][plan.rounds])} | {gap * 100:+.2f} points | 1 run each | within 1 point of dense "
        f"updates (#6) | {goal(gap >= -GOAL_ACC)} |",
    ]
    return rows


def device_rss(fl: dict[str, Any]) -> list[float]:
    """Per SuperNode: its own peak + its SuperExec's + its largest ClientApp's (they run side by side)."""
    per: dict[int, dict[str, float]] = {}
    for p in fl["rss"]:
        kind = ("clientapp" if "flwr-clientapp" in p["cmd"] else "superexec" if "superexec" in p["cmd"]
                else "supernode" if "supernode" in p["cmd"] else "")
        if kind:
            d = per.setdefault(int(p["node"]), {})
            d[kind] = max(d.get(kind, 0.0), float(p["peak_mb"]))
    return [sum(d.values()) for d in per.values()]


def limits_rows(agg: dict[str, Any] | None, cold: dict[str, Any], flops: dict[str, float],
                matmul: dict[str, float]) -> list[str]:
    rows = ["| figure | measured | limit on this machine | fraction | how |", "|---|---:|---:|---:|---|"]
    if agg:
        copy_dense, copy_enc = min(agg["copy"]["dense"]), min(agg["copy"]["encoded"])
        for side, key, nbytes, copy in (("Flower aggregate()", "flower_aggregate", agg["dense_bytes"], copy_dense),
                                        ("fmfl decode + accumulate", "fmfl", agg["encoded_bytes"], copy_enc)):
            t = statistics.median(agg["times"][key])
            rows.append(f"| {side}: bytes read per second ({nbytes:,} B of updates) | {nbytes / t / 1e9:.3f} GB/s | "
                        f"{nbytes / copy / 1e9:.2f} GB/s | {copy / t:.1%} | numpy copy of the same bytes (min of "
                        f"{len(agg['copy']['dense'])}) |")
        t = statistics.median(agg["times"]["fmfl"])
        rows.append(f"| fmfl, dense-equivalent throughput | {agg['dense_bytes'] / t / 1e9:.3f} GB/s | "
                    f"{agg['dense_bytes'] / copy_dense / 1e9:.2f} GB/s | {copy_dense / t:.1%} | as if the updates "
                    "were dense fp32 |")
    one = matmul["1"]
    for side, key, fl in (("fmfl step (head on cached features)", "fmfl", flops["head"]),
                          ("Flower step (trunk forward + head)", "flower", flops["trunk"] + flops["head"])):
        steps = [t for c in cold[key] for t in c["steps"]]
        if steps:
            rate = fl / statistics.median(steps) / 1e9
            rows.append(f"| {side}: {fl / 1e6:,.1f} MFLOP per step | {rate:.2f} GFLOP/s | {one:.1f} GFLOP/s "
                        f"(1 thread) | {rate / one:.1%} | FlopCounterMode count / median step; numpy 1024^3 "
                        "float32 matmul |")
    if agg:
        e = agg["entropy"]
        bound = e["value_bits"] + e["index_bits_subset"]
        rows.append(f"| encoded update: {e['payload_bits'] / 8:,.0f} B for {e['nnz']:.0f} values | "
                    f"{e['payload_bits'] / 8:,.0f} B | {bound / 8:,.0f} B (values {e['value_bits'] / 8:,.0f} + "
                    f"indices {e['index_bits_subset'] / 8:,.0f}) | {bound / e['payload_bits']:.1%} | empirical "
                    f"entropy of the int8 values + log2 C(n, k), mean over {e['updates']:.0f} real updates "
                    f"(gap entropy: {e['index_bits_gaps'] / 8:,.0f} B) |")
    return rows


def report_body(plan: Plan, quick: bool, machine: str, why: str, fm: dict[str, Any], dense: dict[str, Any] | None,
                fl: dict[str, Any] | None, fl_cached: dict[str, Any] | None, cached: dict[str, Any] | None,
                cold: dict[str, Any],
                agg: dict[str, Any] | None, acc: dict[str, dict[int, float]], flops: dict[str, float],
                matmul: dict[str, float], same_data: bool | None, steps: list[tuple[str, int, list[float]]],
                figures: list[str], dense_bytes: int, loads: tuple[str, str], seconds: float,
                stages: list[tuple[str, float, str]]) -> list[str]:
    mode = " --quick" if quick else ""
    deployed_round = dur(round_medians(fm, {"deployed": fl})["deployed_round"], digits=0)
    engine = ("a real SuperLink and one SuperNode per client on loopback (Deployment Engine, `flwr run`), "
              "each SuperNode's ClientApp launched by its SuperExec in a subprocess" if fl else f"not run: {why}")
    sim = ("Flower's Simulation Engine (`flwr.simulation.run_simulation`, Ray backend, one CPU per virtual client "
           f"so two client actors at a time on {os.cpu_count()} cores)" if cached else f"not run: {why}")
    lines = [
        f"Written by `python -m benchmarks.run{mode}` on {time.strftime('%Y-%m-%d')} in {seconds:.0f} s "
        "(bundles already exported in `.fmfl-cache`, `.venv-flwr` already created).",
        f"Machine: {machine}. Shared with other developers' jobs: load average {loads[0]} at the start, "
        f"{loads[1]} at the end ({os.cpu_count()} cores), so read medians and ratios, not absolute times."
        + ("" if not stages else " Each stage's time and the load average (1, 5, 15 min) when it ended: "
           + "; ".join(f"{name} {t:.0f} s ({load})" for name, t, load in stages) + "."),
        "",
        f"Task: `fmfl demo --task vision` settings with {plan.clients} clients, {plan.max_samples:,} Fashion-MNIST "
        f"training samples (`--max-samples`; the default demo uses 60,000), Dirichlet({ALPHA}) label skew, seed "
        f"{SEED}, 20% of each shard held out for local evaluation, 1 local epoch, batch {BATCH}, lr {LR:g}, FedAvg "
        f"weighted by local training samples, every client in every round. Trainable set: a linear head 1280->10 "
        f"on the {IMAGE}x{IMAGE} EfficientNet-Lite0 embedding ({dense_bytes // 4:,} floats, {dense_bytes:,} bytes "
        f"fp32). {plan.rounds} rounds for fmfl and for Flower + cached features: the demo's default for vision, "
        "where the default codec has caught up with dense updates in docs/results.md (it needs about 200; at 40 "
        "rounds it trailed by 18 points); chosen from that document's curve, not from this run's test accuracy.",
        "",
        "Four configurations:",
        "",
        "- **fmfl**: `fmfl demo` itself (aggregator + one `fmfl client` process per client, `--threads 1`, MQTT "
        "broker on loopback), default codec `topk:0.01+int8+ef`, and the same run with `--codec dense`; clients "
        "train the head with ONNX Runtime's AdamW (the Hugging Face variant, `adam_mode=1`) on the trunk features "
        "they cache on first start.",
        f"- **Flower as deployed** (1.42, {plan.deployed_rounds} rounds): {engine}. The ClientApp is what Flower's "
        "PyTorch quickstart leads to: the frozen trunk (`requires_grad` off) recomputed every step, "
        "`torch.optim.AdamW(lr=1e-3)` on the head (torch's AdamW, not the HF variant; fresh every round, as fmfl's "
        "client), `torch.set_num_threads(1)`, and the head's dense fp32 `state_dict` sent back. Only the "
        "trainable head travels; the full model would be 18.7 MB per message. Same shards, same 80/20 split and "
        "batch order" + (f"; client 0's training tensors hash identically on both sides: {same_data}"
                          if same_data is not None else "") + f". A round costs {deployed_round} here (a "
        f"fresh ClientApp process per client and round, and the trunk every step), so it runs "
        f"{many(plan.deployed_rounds, 'round')}: its rows give per-round cost, bytes, RSS and cold start.",
        f"- **Flower + cached features, deployed** ({many(plan.deployed_rounds, 'round')}): what a Flower user "
        "fine-tuning only a head would also do: the same deployment and ClientApp except that the trunk runs "
        "once per client (first round, features kept on disk) and each round trains the same torch head with "
        "the same AdamW on the cached features, sending the same dense fp32 head; Flower's `FedAvg`, "
        "unchanged. It separates what the trunk costs Flower from what its process-per-round isolation "
        "costs.",
        f"- **Flower + cached features, simulated** ({plan.rounds} rounds): the same ClientApp code under {sim}. "
        f"Deployed, every round still starts a fresh ClientApp process per client, which does not fit "
        f"{plan.rounds} rounds in this benchmark's budget; the Simulation Engine keeps its actors. This "
        "configuration answers \"what accuracy does Flower reach after the same rounds\"; its round times are a "
        "simulation's, not a deployment's.",
        "",
        "How: cells are min / median / max over the repeats named in each row. A *round* is one federated round "
        "of a run; a *client-round* is one client's local epoch in one round (fmfl's aggregator logs the mean "
        "over its clients per round, so fmfl's per-client figures are per-round means); a *run* is one "
        "federation, not repeated (each needs both cores; the sides run one after another). fmfl's bytes, step "
        "times and round times are the aggregator's `metrics.jsonl` (`bytes_up` / participants, `train_seconds` "
        "/ `steps`, `duration_s`); Flower's come from the ClientApp's own timers, the ServerApp (round = "
        "`configure_train` to the end of `aggregate_train`) and a byte-counting TCP relay between every "
        "SuperNode and the SuperLink. Peak RSS is `VmHWM`, polled from `/proc` every 0.25 s for every process "
        "under the demo and under each SuperNode. Cold starts: fresh processes on client 0's shard, alternating "
        "sides, timed from just before the parent spawns the process to the first training step done. "
        "Aggregation: the deployed Flower run's real client updates of its last round, Flower given the dense "
        "arrays, fmfl given the same deltas encoded by the default codec (with each client's error-feedback "
        f"residual carried across rounds), {plan.agg_repeats} interleaved repeats.",
        "",
        "### Side by side",
        "",
        *comparison_rows(plan, fm, fl, fl_cached, cached, cold, agg, dense_bytes),
        "",
        "### Accuracy after the same rounds",
        "",
        f"Every run's global model after the same rounds, scored by one evaluator (the demo's: ORT, bundle "
        f"weights) on the same {plan.test_samples or 10_000:,} Fashion-MNIST test images (initial head: "
        f"{pct(acc['initial'][0])}). One run per configuration (seeded; not repeated). The demo's own report "
        f"for the default-codec run: {pct(fm['record']['accuracy'].get(str(plan.rounds)))} on its test subset.",
        "",
        *accuracy_rows(plan, acc, fm, dense, dense_bytes),
        "",
        "### Against the limits",
        "",
        *limits_rows(agg, cold, flops, matmul),
        "",
        f"Matmul reference: numpy float32 1024x1024, {matmul['1']:.1f} GFLOP/s on 1 thread, "
        f"{matmul[str(os.cpu_count() or 1)]:.1f} GFLOP/s on {os.cpu_count()}.",
    ]
    lines += ["", "### Scaling", ""]
    if figures:
        lines += [f"![{f}]({f})" for f in figures] + [""]
        if steps:
            lines += ["| trainable set (MiniLM, batch 8) | trainable floats | ORT step ms (min / median / max) |",
                      "|---|---:|---:|"]
            lines += [f"| {label} | {n:,} | {fmt(ts, 1e3, 1)} |" for label, n, ts in steps]
            lines += ["", SCALING_NOTE]
    else:
        lines.append("Not drawn in `--quick` mode.")
    lines += ["", "### What limits us", "", *what_limits(plan, acc, fm, fl, fl_cached, cached, agg)]
    return lines


SCALING_NOTE = (
    "fmfl ingest = validate + accumulate of already-decoded sparse updates (the Aggregation section's measure), "
    "min of 3; Flower = the real `flwr` `aggregate()` on dense float32 arrays (10,000 dense clients would need "
    "6 GB and are skipped). The step rows ran one after another on the shared machine with 1 ORT thread; they "
    "are not monotone in size because of its load: read them as orders of magnitude.")


def round_medians(fm: dict[str, Any], runs: dict[str, dict[str, Any] | None]) -> dict[str, float | None]:
    """Median seconds per round (``<name>_round``; from round 2 on where round 1 computes features) and
    per client step (``<name>_step``) of fmfl and of each Flower run (None where it did not run)."""
    rounds = fmfl_rounds(fm)
    out: dict[str, float | None] = {
        "fmfl_round": med([float(r["duration_s"]) for r in rounds[1:] or rounds]),
        "fmfl_step": med([r["metrics"]["train_seconds"] / r["metrics"]["steps"] for r in rounds])}
    for name, run in runs.items():
        steps = [c["train-seconds"] / c["steps"] for c in client_rows(run)]
        server = run["server"]["rounds"] if run else []
        skip = server[1:] if name != "deployed" else server
        out[f"{name}_round"] = med([r["t_aggregated"] - r["t_configure"] for r in skip or server]) if server else None
        out[f"{name}_step"] = med(steps) if steps else None
        apps = [float(c["vmhwm-mb"]) for c in client_rows(run) if "vmhwm-mb" in c]
        out[f"{name}_rss"] = med(apps) if apps else None
    return out


def dur(x: float | None, scale: float = 1.0, unit: str = "s", digits: int = 2) -> str:
    return "-" if x is None else f"{x * scale:.{digits}f} {unit}"


def what_limits(plan: Plan, acc: dict[str, dict[int, float]], fm: dict[str, Any], fl: dict[str, Any] | None,
                fl_cached: dict[str, Any] | None, cached: dict[str, Any] | None,
                agg: dict[str, Any] | None) -> list[str]:
    """One paragraph per row group, quoting this run's medians where a claim depends on them."""
    r, first = plan.rounds, plan.deployed_rounds
    m = round_medians(fm, {"deployed": fl, "deployed_cached": fl_cached, "simulated": cached})
    a = {side: acc.get(side, {})
         for side in ("fmfl", "fmfl_dense", "flower_cached", "flower", "flower_cached_deployed")}
    ends = [v for v in (a["fmfl"].get(r), a["fmfl_dense"].get(r), a["flower_cached"].get(r)) if v is not None]
    accuracy = ("- **Accuracy**: not measured against Flower (it did not run)." if not a["flower_cached"] else
                f"- **Accuracy**: after {r} rounds fmfl's default codec reaches {pct(a['fmfl'].get(r))}, its dense "
                f"run {pct(a['fmfl_dense'].get(r))} and Flower + cached features {pct(a['flower_cached'].get(r))}: "
                f"within {(max(ends) - min(ends)) * 100:.2f} points of each other (same FedAvg, data and batch "
                "order; ORT's HF-variant AdamW against torch's AdamW). Each is one seeded run, so differences "
                "of a point or less are not resolved by this benchmark. Early on the codec is the cost: after round "
                f"{first} the default codec has {pct(a['fmfl'].get(first))} against {pct(a['fmfl_dense'].get(first))} "
                "dense, because each client sends 1% of its head coordinates per round and the rest waits in "
                "the error-feedback residual; the gap closes with rounds (table above), which is why the "
                f"comparison runs {r} rounds. The three Flower configurations agree after round {first} (as deployed "
                f"{pct(a['flower'].get(first))}, cached and deployed {pct(a['flower_cached_deployed'].get(first))}, "
                f"simulated {pct(a['flower_cached'].get(first))}): caching the trunk's output and simulating "
                "change the cost, not the training.")
    rounds_text = (
        f"- **Round time**: Flower as deployed takes {dur(m['deployed_round'])} a round (median): every round "
        "a fresh ClientApp process per client (torch and flwr imports, model rebuilt, shard re-read), the trunk "
        f"at every step, {plan.clients} such processes sharing {os.cpu_count()} cores, and SuperNodes that poll "
        "the SuperLink (3 s sleep when idle). Caching the features (deployed) brings it to "
        f"{dur(m['deployed_cached_round'])} from round 2 on: what remains is the process per client and round "
        "and the polling, which no ClientApp code can remove. Under the Simulation Engine (long-lived Ray "
        f"actors) the same ClientApp takes {dur(m['simulated_round'], digits=3)} against fmfl's "
        f"{dur(m['fmfl_round'], digits=3)}: both then are bounded by per-message overhead (serialising, Ray or "
        "MQTT hops, FedAvg), not by the head's training; fmfl gets its round time as a deployment, with a "
        "separate long-lived process per client on real sockets.")
    if agg:
        fm_agg, fl_rec = med(agg["times"]["fmfl"]), med(agg["times"]["flower_arrayrecords"])
        vs_records = (f"{fl_rec / fm_agg:.1f}x faster than" if fl_rec > fm_agg else
                      f"{fm_agg / fl_rec:.1f}x slower than")
    else:
        vs_records = "not compared with"
    fm_step, dep_step, sim_step = m["fmfl_step"], m["deployed_cached_step"], m["simulated_step"]
    step = "(not run)"
    if fm_step is not None and sim_step is not None:
        step = (f"fmfl {dur(fm_step, 1e3, 'ms', 3)} against torch {dur(dep_step, 1e3, 'ms', 3)} in Flower's "
                f"deployment and {dur(sim_step, 1e3, 'ms', 3)} in its simulation (medians). The deployed ClientApp "
                "is a fresh process every round, so all of its steps run in a cold torch (first-call dispatch, "
                "allocator warm-up) while the other processes of the round start beside it; the simulation's "
                "actors are warm. On warm processes fmfl / torch = "
                f"{fm_step / sim_step:.2f}: ORT's per-call overhead (the training module's run, then the optimizer's "
                "step and a gradient reset, each a separate call into ORT) costs "
                + ("more than" if fm_step > 1.1 * sim_step else "about as much as" if fm_step > 0.9 * sim_step
                   else "less than") + " torch's eager autograd on a 1280x10 head, so the 0.6x "
                "goal of issue 4 is " + ("met" if fm_step <= GOAL_STEP * sim_step else "missed") + " on "
                "like-for-like warm work" + ("" if dep_step is None else
                                              f" and {'met' if fm_step <= GOAL_STEP * dep_step else 'missed'} "
                                              f"({fm_step / dep_step:.2f}) against Flower as it deploys") +
                ". Both are far above the arithmetic a step holds (1.6 MFLOP: well under 0.1 ms at the matmul "
                "rate in Against the limits)")
    rss = ""
    if m["deployed_cached_rss"] is not None:
        rss = (f" Without the trunk, Flower's ClientApp still peaks at {m['deployed_cached_rss']:.0f} MB (torch and "
               "flwr imported), against fmfl's whole client process in the table.")
    return [
        "- **Bytes up**: fmfl sends about 1% of the head's coordinates as int8 with delta-coded indices; the "
        "remaining few hundred bytes are the fixed ClientUpdate header (ids, metrics). Flower sends the dense "
        "fp32 head plus its record metadata; on the wire it also pays HTTP polling and heartbeats every few "
        "seconds.",
        "- **Bytes down**: a tie. fmfl publishes the new global dense (the codec supports a delta downlink, the "
        "demo does not use it), so each client receives about what Flower sends.",
        "- **Step time**: against Flower as deployed, fmfl's step is a 1280x10 matmul pair on cached features "
        "while the quickstart ClientApp recomputes the trunk every step: that is a design difference, not ORT "
        f"against torch. On the same head-only work (Flower + cached features): {step}.",
        "- **RSS and cold start**: Flower as deployed starts a fresh ClientApp process for every round's "
        "message (SuperExec subprocess isolation) that imports torch and flwr and rebuilds the model each "
        "time, next to a long-lived SuperNode and SuperExec; fmfl's one torch-free client process keeps its ORT "
        "sessions. fmfl's first start runs the trunk over the whole shard to fill its feature cache, so its "
        f"cold start grows with the local data; a restart reads the cache.{rss}",
        rounds_text,
        "- **Aggregation**: on a 12,810-float head with 10 clients, Flower's legacy dense numpy average touches "
        "0.5 MB in a fraction of a millisecond; fmfl's per-update decode + validate + accumulate costs tens of "
        f"µs of fixed Python per update, so fmfl is *slower* than `aggregate()` here (and {vs_records} the "
        "`aggregate_arrayrecords` that 1.42's FedAvg actually runs). Its sparse path pays off with larger models "
        "and more clients (see the scaling plot and the Aggregation section); on this task the server cost is "
        "negligible either way.",
        accuracy,
        "- **Limits**: aggregation of this size is far from memory bandwidth on both sides (per-call overhead "
        "dominates); the head step runs far below the matmul rate because a couple of MFLOP cannot amortize an "
        "ORT session call; Flower's trunk step is bound by depthwise convolutions, which reach a small fraction "
        "of matmul peak; the encoded update is within the factor shown of the entropy of what it carries, the "
        "rest being the fixed header and per-update scales.",
    ]
