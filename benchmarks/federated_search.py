"""Choose the demo's federated settings by measurement on VALIDATION data, in-process (``fmfl.simulation``).

    python -m benchmarks.federated_search --grid head64 [--rounds 60] [--log runs/search/search.jsonl]
    python -m benchmarks.federated_search --task text --base fedavg,lr=3e-3 --codecs "dense;topk:0.05+sign+ef"

10% of the training set is carved out as the validation set (``build_population(validation_fraction=0.1)``);
the clients are split from the rest with the demo's Dirichlet(0.5) and seed. The test set is never loaded
as a referee here. Every configuration tried is appended to the log (one JSON line: settings, validation
accuracy by round, final, best, the largest drop between consecutive evaluations after round 20, seconds),
so docs/results.md can list all of them, not only the winner.

Server optimizers tried: FedAvg (McMahan et al. 2017), FedAvgM (Hsu et al. 2019, server momentum) and FedAdam
(Reddi et al. 2021, "Adaptive Federated Optimization"), all from ``fmfl.aggregation.rules``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmfl.demo.tasks import TASKS
from fmfl.simulation import SimulationConfig, build_population, run_simulation

DEFAULT_CODEC = "topk:0.01+int8+ef"


@dataclass(frozen=True)
class Trial:
    name: str
    strategy: str = "fedavg"
    options: dict[str, Any] = field(default_factory=dict)
    codec: str = "dense"
    lr: float = 1e-3
    local_epochs: int = 1
    batch_size: int = 32


def _head_grid() -> list[Trial]:
    trials = []
    for codec in ("dense", DEFAULT_CODEC):
        tag = "dense" if codec == "dense" else "topk1%"
        trials += [
            Trial(f"fedavg lr1e-3 {tag}", codec=codec),
            Trial(f"fedavg lr3e-4 {tag}", codec=codec, lr=3e-4),
            Trial(f"fedavg lr1e-4 {tag}", codec=codec, lr=1e-4),
            Trial(f"fedavgm m0.9 slr1 lr1e-4 {tag}", "fedavgm", {"momentum": 0.9, "server_lr": 1.0}, codec, 1e-4),
            Trial(f"fedavgm m0.9 slr0.3 lr3e-4 {tag}", "fedavgm", {"momentum": 0.9, "server_lr": 0.3}, codec, 3e-4),
            Trial(f"fedadam slr1e-2 lr3e-4 {tag}", "fedadam", {"server_lr": 1e-2}, codec, 3e-4),
            Trial(f"fedadam slr3e-3 lr3e-4 {tag}", "fedadam", {"server_lr": 3e-3}, codec, 3e-4),
        ]
    return trials


#: uplink codecs whose whole message stays under 2% of the 12,810-float head's dense bytes (payload + ~100 B)
CODECS = ("dense", DEFAULT_CODEC, "topk:0.02+int8+ef", "topk:0.03+int4+ef", "topk:0.05+sign+ef",
          "topk:0.05+int4+ef+zstd")


def _codec_grid(base: Trial, codecs: tuple[str, ...] = CODECS) -> list[Trial]:
    return [Trial(f"{base.name} {codec}", base.strategy, base.options, codec, base.lr, base.local_epochs,
                  base.batch_size) for codec in codecs]


def _base_trial(text: str) -> Trial:
    """``NAME=strategy,lr=..,key=value,...`` from the command line (e.g. ``fedavgm,lr=1e-4,momentum=0.9``)."""
    strategy, *pairs = text.split(",")
    values = {k: float(v) for k, v in (pair.split("=") for pair in pairs)}
    lr = values.pop("lr", 1e-3)
    epochs = int(values.pop("local_epochs", 1))
    batch = int(values.pop("batch_size", 32))
    return Trial(text, strategy, values, "dense", lr, epochs, batch)


GRIDS = {"head": lambda _base: _head_grid(), "codec": _codec_grid,
         "server": lambda base: [Trial(base.name, base.strategy, base.options, base.codec, base.lr,
                                       base.local_epochs, base.batch_size)]}


def max_drop_after(accuracy: dict[int, float], after: int) -> float:
    """The largest fall (points) between consecutive evaluations at rounds > ``after``."""
    rounds = sorted(r for r in accuracy if r > after)
    drops = [100 * (accuracy[a] - accuracy[b]) for a, b in itertools.pairwise(rounds)]
    return max([0.0, *drops])


def rounds_to(accuracy: dict[int, float], target: float) -> int | None:
    return next((r for r in sorted(accuracy) if r > 0 and accuracy[r] >= target), None)


#: the section each task's trials are written to, and the training set its validation split is carved from
SECTIONS = {"vision": ("## Settings search (validation data, in-process)", "the Fashion-MNIST training set"),
            "text": ("## Text settings search (validation data, in-process)",
                     "the text task's training glosses (WordNet nouns)"),
            "multimodal": ("## Multimodal settings search (validation data, in-process)",
                           "the multimodal task's captioned Fashion-MNIST training images (zero-shot accuracy)")}


def write_doc(log: Path, out: Path, task: str = "vision") -> None:
    """Every logged trial of ``task`` as one row of that task's "Settings search" section of ``out``."""
    from benchmarks._docs import replace_section

    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    entries = [e for e in entries if e.get("task", "vision") == task]  # entries before --task: all vision
    title, source = SECTIONS[task]
    lines = [title, "",
             "Every configuration tried by `python -m benchmarks.federated_search` (log: "
             f"`{log}`), scored on a validation split of 10% carved from {source} "
             "(seeded; the clients are split from the other 90% with Dirichlet(0.5), 10 clients, seed 0); the test "
             "set played no part. In-process simulation: the device's own local round, codec, decoder and "
             "aggregation rule, without MQTT. Columns: validation accuracy at the last round and the best one, "
             "the first round reaching 80%, and the largest drop between consecutive evaluations (every 2 rounds) "
             "after round 20.", "",
             f"| {'image px' if task == 'vision' else 'training samples'} | trainable | client optimizer | trial | "
             "rounds | final | best | round to 80% | "
             "largest drop after 20 | s |",
             "|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for e in entries:
        acc = {int(k): v for k, v in e["validation_accuracy"].items()}
        # entries logged before the default size and optimizer were recorded: 64 px, AdamW (the defaults then)
        size = e["image_size"] or 64 if task == "vision" else e.get("samples")
        optimizer = e.get("optimizer", "n/a" if e["rounds"] == 0 else "adamw")  # n/a: a linear probe's row
        lines.append(f"| {size} | {e['train']} | {optimizer} | {e['trial']} | "
                     f"{e['rounds']} | "
                     f"{100 * e['final']:.2f}% | {100 * e['best']:.2f}% | {rounds_to(acc, 0.80)} | "
                     f"{e['max_drop_after_20']:.2f} | {e['seconds']:.0f} |")
    replace_section(out, lines[0], "\n".join(lines) + "\n", title="# Results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="vision", choices=sorted(SECTIONS), help="the demo task (default vision)")
    parser.add_argument("--grid", default="head", choices=sorted(GRIDS))
    parser.add_argument("--train", help="trainable set (default: the task's)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), help="the devices' local optimizer (default: the "
                        "task's); another bundle, exported once")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--max-samples", type=int, help="training samples before the validation split (default: "
                        "the task's: all of Fashion-MNIST, 6,000 glosses)")
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--base", default="fedavg,lr=1e-3",
                        help="strategy and settings for the codec/server grids: fedavgm,lr=1e-4,momentum=0.9 "
                             "(also local_epochs=, batch_size=)")
    parser.add_argument("--probe", action="store_true",
                        help="also log the linear probe (LR on the clients' pooled features) on the validation set")
    parser.add_argument("--codecs", help="';'-separated codecs or codec schedules for the codec grid")
    parser.add_argument("--downlink", default="dense",
                        help="the gateway's --downlink-codec for every trial (dense: devices get the rule's model)")
    parser.add_argument("--only", help="comma-separated trial names to run (default: the whole grid)")
    parser.add_argument("--log", type=Path, default=Path("runs/search/search.jsonl"))
    parser.add_argument("--write-doc", type=Path, help="only write the log as a section of this file and exit")
    args = parser.parse_args()
    if args.write_doc:
        write_doc(args.log, args.write_doc, args.task)
        return
    image_size = args.image_size or TASKS[args.task].image_size  # logged as run, not as "the default"
    population = build_population(task=args.task, clients=10, alpha=0.5, seed=0, validation_fraction=0.1,
                                  train_spec=args.train, image_size=image_size, optimizer=args.optimizer,
                                  max_samples=args.max_samples, threads=1)
    samples = sum(c.num_samples for c in population.clients)
    print(f"population ready in {population.setup_seconds:.0f} s ({samples} training samples)", flush=True)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    if args.probe:
        from fmfl.demo.baselines import linear_probe, pooled

        probe = linear_probe(pooled([c.train for c in population.clients]), population.evaluator.data)
        entry = {"task": args.task, "samples": samples, "trial": "linear probe (centralized LR on the pooled features)",
                 "train": args.train or "task default", "image_size": image_size, "optimizer": "n/a", "rounds": 0,
                 "validation_accuracy": {},
                 "final": probe["accuracy"], "best": probe["accuracy"], "max_drop_after_20": 0.0,
                 "seconds": probe["seconds"]}
        with args.log.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        print(f"linear probe on validation: {100 * probe['accuracy']:.2f}", flush=True)
    base = _base_trial(args.base)
    trials = _codec_grid(base, tuple(args.codecs.split(";"))) if args.codecs else GRIDS[args.grid](base)
    for trial in trials:
        if wanted is not None and trial.name not in wanted:
            continue
        start = time.perf_counter()
        result = run_simulation(population, SimulationConfig(
            strategy=trial.strategy, strategy_options=trial.options, codec=trial.codec, rounds=args.rounds,
            lr=trial.lr, local_epochs=trial.local_epochs, batch_size=trial.batch_size, seed=0,
            eval_every=args.eval_every,
            downlink_codec=args.downlink))
        name = trial.name if args.downlink == "dense" else f"{trial.name} down {args.downlink}"
        down = [r.downlink_bytes for r in result.rounds]
        entry = {"task": args.task, "samples": samples, "trial": name, "train": args.train or "task default",
                 "image_size": image_size,
                 "optimizer": population.manifest.optimizer["name"],
                 "downlink_codec": args.downlink, "downlink_payload_bytes": sum(down) / max(len(down), 1),
                 "strategy": trial.strategy, "options": trial.options, "codec": trial.codec, "lr": trial.lr,
                 "local_epochs": trial.local_epochs, "batch_size": trial.batch_size, "rounds": args.rounds,
                 "validation_accuracy": result.accuracy, "final": result.final_accuracy,
                 "best": max(result.accuracy.values()), "max_drop_after_20": max_drop_after(result.accuracy, 20),
                 "seconds": time.perf_counter() - start}
        with args.log.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        print(f"{name:40s} final {100 * entry['final']:.2f} best {100 * entry['best']:.2f} "
              f"drop>20 {entry['max_drop_after_20']:.2f} ({entry['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
