"""Edge client benchmark: our torch-free ONNX Runtime client against a plain PyTorch (Flower-style) client.

Run: ``.venv/bin/python -m benchmarks.client [--quick] [--no-write]``. Writes the ``## Edge client``
section of docs/benchmarks.md (not with ``--quick``, which CI runs) and leaves other sections alone.

Both clients train the same bundle's trainable set on the same batches of real data (WordNet glosses
for MiniLM, Fashion-MNIST for EfficientNet-Lite0), read by the client's own torch-free reader.

- ``ORT``: our client's code path: ``OrtTrainer`` (ORT Module + AdamW) on the suffix, fed the frozen
  prefix's features from ``features.compute_features`` (the on-disk feature cache holds exactly these).
  ``ORT, no cache`` runs the prefix session on every batch instead.
- ``torch``: what a Flower user writes: the same torch model with the same parameters
  ``requires_grad``, ``torch.optim.AdamW``, forward on the whole model every step (the frozen trunk is
  recomputed). ``torch, cached``: the fairer variant that runs the trunk once under ``no_grad`` and
  trains the suffix on cached features, as our client does.
- Both run in eval mode (dropout off, BatchNorm statistics frozen), which is what the exported training
  graph computes, so the two do the same arithmetic (the first-step losses are printed to show it).

In-process timings interleave the variants in each repeat (rotating their order) so that the shared
machine's noise hits all of them alike. Peak RSS and cold start come from a fresh subprocess per
client and repeat; the ORT child asserts that neither torch nor transformers was imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._docs import replace_section

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Edge client"
WORKDIR = Path(tempfile.gettempdir()) / "fmfl-bench-client"
EDGE_PACKAGES = ("onnxruntime-training-cpu", "numpy", "paho-mqtt", "tokenizers", "pillow", "fmfl")
TORCH_PACKAGES = ("torch", "transformers")
GOAL_STEP, GOAL_RSS, GOAL_COLD_S, GOAL_CACHE = 0.6, 0.4, 1.0, 5.0
LR = 1e-3


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    spec: str
    batch: int
    samples: int  # local training set size for the epoch measurements
    image_size: int | None = None

    @property
    def text(self) -> bool:
        return self.model == "minilm"


LORA = "head+lora:r=8,alpha=16,targets=query,value,layers=2"
CASES = (
    Case("MiniLM head", "minilm", "head", 8, 256),
    Case("MiniLM last:1", "minilm", "last:1", 8, 256),
    Case("MiniLM LoRA r=8 q,v x2 + head", "minilm", LORA, 8, 256),
    Case("EffNet-Lite0 64px head", "effnet-lite0", "head", 32, 512, 64),
    Case("EffNet-Lite0 64px last:1", "effnet-lite0", "last:1", 32, 512, 64),
)
QUICK = (Case("EffNet-Lite0 64px head", "effnet-lite0", "head", 32, 128, 64),)


@dataclass(frozen=True)
class Repeats:
    steps: int  # steps per timed chunk
    step_repeats: int  # timed chunks per process
    epoch_repeats: int  # epochs per process
    child_repeats: int  # fresh processes per client
    warmup: int  # untimed steps first: torch's first steps were 5-30x slower than its steady state here


FULL = Repeats(steps=8, step_repeats=4, epoch_repeats=2, child_repeats=3, warmup=8)
QUICK_REPEATS = Repeats(steps=3, step_repeats=2, epoch_repeats=1, child_repeats=1, warmup=3)


# ----------------------------------------------------------------------------------------------- helpers
def slug(case: Case) -> str:
    return "".join(c if c.isalnum() else "-" for c in f"{case.model}-{case.spec}-{case.image_size}")


def stats(ts: list[float]) -> tuple[float, float, float]:
    return min(ts), statistics.median(ts), max(ts)


def fmt(ts: list[float], scale: float = 1e3, digits: int = 1) -> str:
    lo, med, hi = stats(ts)
    return f"{lo * scale:.{digits}f} / {med * scale:.{digits}f} / {hi * scale:.{digits}f}"


def goal(ok: bool) -> str:
    return "met" if ok else "**missed**"


def peak_rss_mb() -> tuple[float, float]:
    """(VmHWM, ru_maxrss) in MB: the kernel's high-water mark of resident memory, two ways."""
    hwm = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return hwm, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    names = ("onnxruntime-training-cpu", "torch", "transformers", "numpy")
    versions = {p: metadata.version(p) for p in names}
    return {"machine": platform.machine(), "cores": str(os.cpu_count()), "cpu": cpu,
            "python": platform.python_version(), **versions}


# ------------------------------------------------------------------------------------------------- setup
def write_data(case: Case, path: Path) -> Path:
    """The case's real local data in a format the client reads (JSONL glosses, or an .npz of images)."""
    from fmfl.edge_client.data import write_npz, write_text_jsonl

    if case.text:
        from fmfl.datasets import load_wordnet_glosses

        glosses = load_wordnet_glosses()
        # A random draw: the file order groups glosses by category, so a prefix would hold few classes.
        pick_ = np.random.default_rng(0).permutation(len(glosses.train_texts))[: case.samples]
        return write_text_jsonl(path / "glosses.jsonl", [glosses.train_texts[i] for i in pick_],
                                [int(glosses.train_labels[i]) for i in pick_])
    from fmfl.datasets import load_fashion_mnist

    fm = load_fashion_mnist("train", download=False)
    pick_ = np.random.default_rng(0).permutation(len(fm.labels))[: case.samples]
    return write_npz(path / "fmnist.npz", fm.images[pick_], fm.labels[pick_])


def export(case: Case, out: Path) -> Path:
    """Export the case's bundle once; a bundle left by an earlier run is reused when it still verifies."""
    from fmfl.bundle import verify_bundle
    from fmfl.export.pipeline import ExportConfig, export_bundle

    if (out / "manifest.json").is_file():
        try:
            verify_bundle(out)
            return out
        except Exception:
            pass
    export_bundle(ExportConfig(model=case.model, task="classify", train=case.spec, out=out, num_labels=10,
                               image_size=case.image_size, max_seq_len=64, lr=LR, force=True))
    return out


def local_data(bundle: Path, data: Path) -> Any:
    from fmfl.bundle import verify_bundle
    from fmfl.edge_client.data import read_local_data
    from fmfl.edge_client.device import resolved_preprocessing

    manifest = verify_bundle(bundle)
    return manifest, read_local_data(data, resolved_preprocessing(bundle, manifest), manifest.labels)


# ------------------------------------------------------------------------------------------------- torch
class TorchClient:
    """The Flower-style client: the torch model, AdamW on the ``requires_grad`` parameters."""

    def __init__(self, case: Case, bundle: Path, manifest: Any) -> None:
        import torch

        from fmfl.export.pipeline import ONNX_PREFIX
        from fmfl.models.registry import BuildOptions, build_model
        from fmfl.models.trainable import apply_train_spec, parse_train_spec, split_points

        self.torch = torch
        built = build_model(case.model, BuildOptions("classify", 10, case.image_size, 64))
        self.model = built.model.eval()  # eval: the exported graph has dropout off and frozen BN statistics
        trainable = apply_train_spec(self.model, parse_train_spec(case.spec))
        params = dict(self.model.named_parameters())
        flat = np.load(bundle / "initial_weights.npy")
        with torch.no_grad():  # the bundle's random head and LoRA init, so both clients start equal
            for t in manifest.trainable:
                params[t.name.removeprefix(ONNX_PREFIX)].copy_(
                    torch.from_numpy(flat[t.offset : t.offset + t.size].reshape(t.shape)))
        self.tname, self.tower = next(iter(self.model.towers.items()))
        self.point = split_points(self.model, trainable)[self.tname]
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=LR)

    def _tensors(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        return {k: self.torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}

    def _step(self, embedding: Any, labels: np.ndarray) -> float:
        loss, _ = self.model.head_forward({self.tname: embedding}, {"labels": self.torch.from_numpy(labels)})
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def full_step(self, inputs: dict[str, np.ndarray], labels: np.ndarray) -> float:
        """Forward on the whole model: the frozen trunk is recomputed every step."""
        return self._step(self.tower(self._tensors(inputs)), labels)

    def features(self, inputs: dict[str, np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
        """The trunk's output at the split point for every sample (the cached variant's one pass)."""
        parts: dict[str, list[np.ndarray]] = {}
        n = len(next(iter(inputs.values())))
        with self.torch.no_grad():
            for s in range(0, n, batch):
                state = self.tower.run_stages(self._tensors({k: v[s : s + batch] for k, v in inputs.items()}),
                                              0, self.point)
                for k, v in state.items():
                    parts.setdefault(k, []).append(v.numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}

    def cached_step(self, features: dict[str, np.ndarray], labels: np.ndarray) -> float:
        state = self._tensors(features)
        embedding = self.tower.run_stages(state, self.point, self.tower.num_stages)["embedding"]
        return self._step(embedding, labels)


# --------------------------------------------------------------------------------------------------- ORT
class OrtClient:
    """Our client's pieces in one object, for the parent's first-step loss check."""

    def __init__(self, bundle: Path, manifest: Any) -> None:
        from fmfl.edge_client.ort_training import OrtTrainer, PrefixRunner

        self.trainer = OrtTrainer(bundle, manifest)
        self.trainer.set_learning_rate(LR)
        self.prefix = PrefixRunner(bundle, manifest) if manifest.has_prefix else None

    def step(self, features: dict[str, np.ndarray], labels: np.ndarray) -> float:
        return self.trainer.train_step({**features, "labels": labels.astype(np.int64)})

    def nocache_step(self, inputs: dict[str, np.ndarray], labels: np.ndarray) -> float:
        features = self.prefix(inputs) if self.prefix is not None else inputs
        return self.step(features, labels)


def batch_order(n: int, batch: int) -> list[np.ndarray]:
    """One epoch's shuffled batches, the same for every variant (train_locally's order for seed 0)."""
    order = np.random.default_rng(0).permutation(n)
    return [order[s : s + batch] for s in range(0, n, batch)]


def pick(arrays: dict[str, Any], index: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v[index]) for k, v in arrays.items()}


# -------------------------------------------------------------------------------------------- measuring
def interleaved(variants: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each variant, one call each per repeat, in a rotating order."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return times


StepFn = Callable[[dict[str, np.ndarray], np.ndarray], float]


class Loop:
    """Steps and epochs of one step function over fixed arrays, in the benchmark's batch order."""

    def __init__(self, fn: StepFn, arrays: dict[str, Any], labels: np.ndarray,
                 batches: list[np.ndarray]) -> None:
        self.fn, self.arrays, self.labels, self.batches, self.i = fn, arrays, labels, batches, 0

    def steps(self, n: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                idx = self.batches[self.i % len(self.batches)]
                self.i += 1
                self.fn(pick(self.arrays, idx), self.labels[idx])
        return run

    def epoch(self) -> None:
        for idx in self.batches:
            self.fn(pick(self.arrays, idx), self.labels[idx])


def first_step_losses(case: Case, bundle: Path, data: Path) -> dict[str, float]:
    """Same weights, same first batch: both clients compute the same loss (they do the same work)."""
    manifest, raw = local_data(bundle, data)
    first = batch_order(len(raw), case.batch)[0]
    ort, tc = OrtClient(bundle, manifest), TorchClient(case, bundle, manifest)
    return {"ORT": ort.nocache_step(pick(raw.inputs, first), raw.labels[first]),
            "torch": tc.full_step(pick(raw.inputs, first), raw.labels[first])}


def child(side: str, case: Case, bundle: Path, data: Path, t0: float, reps: Repeats) -> None:
    """One client in a fresh process; prints a JSON report.

    Cold start: from ``t0`` (the parent's wall clock just before it spawned us, so interpreter start-up
    counts) to the first training step done. Then, after a warm-up, the client's step and epoch timings
    (interleaved within the process) and its peak RSS. Each side runs alone in its process: ORT's and
    torch's thread pools spin after work, and in one process each slowed the other down.
    """
    marks: dict[str, float] = {}
    rss: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.time() - t0, 4)
        rss[name] = current_rss_mb()

    mark("python_started")
    manifest, raw = local_data(bundle, data)  # verify (sha256 of every file) + read and preprocess the data
    mark("bundle_verified_data_read")
    labels = raw.labels
    batches = batch_order(len(raw), case.batch)
    first = batches[0]
    warm = max(reps.warmup, 1)
    if side == "ORT":
        from fmfl.edge_client.features import compute_features
        from fmfl.edge_client.local_training import LocalTrainConfig, train_locally
        from fmfl.edge_client.ort_training import OrtTrainer, PrefixRunner

        # The client's own order (EdgeDevice): the prefix runs in a session of its own that is freed
        # before training starts (features.compute_features), so the trunk's weights and the trainer
        # are never in memory together. Holding a prefix session beside the trainer, as the no-cache
        # variant must, cost about 170 MB more on MiniLM, so that variant runs last, after the peak
        # of the client proper has been read.
        def features_of(data: Any) -> dict[str, Any]:
            return compute_features(bundle, manifest, data, None) if manifest.has_prefix else dict(data.inputs)

        first_feats = features_of(raw.subset(first))
        mark("prefix_first_batch")
        trainer = OrtTrainer(bundle, manifest)
        trainer.set_learning_rate(LR)
        mark("sessions_created")

        def step(features: dict[str, np.ndarray], y: np.ndarray) -> float:
            return trainer.train_step({**features, "labels": y.astype(np.int64)})

        step(first_feats, labels[first])
        mark("first_step")
        feats = features_of(raw)
        suffix = raw.__class__(inputs={n: feats[n] if n in feats else raw.inputs[n]
                                       for n in manifest.graph["train_inputs"]}, labels=labels)
        config = LocalTrainConfig(batch_size=case.batch, lr=LR, local_epochs=1)
        train_locally(trainer, suffix, config)
        # The client's round is done: one prefix pass, one epoch. Read its peak now; the timed repeats
        # below run the prefix again in fresh sessions, and the allocator does not hand all of it back.
        client_peak = peak_rss_mb()[0]
        cached = Loop(step, feats, labels, batches)
        cached.steps(warm)()
        mark("warm")
        steps = interleaved({"ORT": cached.steps(reps.steps)}, reps.step_repeats)

        def prefix_pass() -> None:
            features_of(raw)

        def cached_epoch() -> None:  # the real client's training loop
            train_locally(trainer, suffix, config)

        epochs = interleaved({"ORT, prefix pass": prefix_pass, "ORT, cached epoch": cached_epoch},
                             reps.epoch_repeats)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        assert not heavy, f"the ORT client imported {heavy[:5]}"

        runner = PrefixRunner(bundle, manifest) if manifest.has_prefix else None

        def nocache_step(inputs: dict[str, np.ndarray], y: np.ndarray) -> float:
            return step(runner(inputs) if runner is not None else inputs, y)

        nocache = Loop(nocache_step, raw.inputs, labels, batches)
        nocache.steps(warm)()
        steps.update(interleaved({"ORT, no cache": nocache.steps(reps.steps)}, reps.step_repeats))
        epochs.update(interleaved({"ORT, no cache": nocache.epoch}, reps.epoch_repeats))
    else:
        tc = TorchClient(case, bundle, manifest)
        mark("model_built")
        if side == "torch":
            tc.full_step(pick(raw.inputs, first), labels[first])
            mark("first_step")
            loop = Loop(tc.full_step, raw.inputs, labels, batches)
            loop.steps(warm)()
            mark("warm")
            steps = interleaved({"torch": loop.steps(reps.steps)}, reps.step_repeats)
            epochs = interleaved({"torch": loop.epoch}, reps.epoch_repeats)
        else:
            tc.cached_step(tc.features(pick(raw.inputs, first)), labels[first])
            mark("first_step")
            feats = tc.features(raw.inputs)
            loop = Loop(tc.cached_step, feats, labels, batches)
            loop.steps(warm)()
            mark("warm")
            steps = interleaved({"torch, cached": loop.steps(reps.steps)}, reps.step_repeats)

            def feature_pass() -> None:
                tc.features(raw.inputs)

            epochs = interleaved({"torch, feature pass": feature_pass, "torch, cached epoch": loop.epoch},
                                 reps.epoch_repeats)
    hwm, maxrss = peak_rss_mb()
    if side == "ORT":
        rss["no_cache_peak"] = hwm
        hwm = client_peak
    report = {"marks": marks, "rss_at": rss, "vmhwm_mb": hwm, "maxrss_mb": maxrss,
              "steps": {k: [t / reps.steps for t in v] for k, v in steps.items()}, "epochs": epochs}
    print("REPORT " + json.dumps(report), flush=True)


def run_child(side: str, case: Case, bundle: Path, data: Path, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.client", "--child", side, "--case", case.name,
           "--bundle", str(bundle), "--data", str(data)] + (["--quick"] if quick else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    t0 = time.time()
    out = subprocess.run([*cmd, "--t0", repr(t0)], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parent.parent, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("REPORT "))
    return dict(json.loads(line.removeprefix("REPORT ")))


def measure(case: Case, bundle: Path, data: Path, reps: Repeats, quick: bool) -> dict[str, Any]:
    """Fresh children, interleaved: ORT, torch, torch cached (rotating order), ``child_repeats`` times."""
    sides = ["ORT", "torch", "torch, cached"]
    children: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    for r in range(reps.child_repeats):
        for side in sides[r % 3 :] + sides[: r % 3]:
            children[side].append(run_child(side, case, bundle, data, quick))
    steps: dict[str, list[float]] = {}
    epochs: dict[str, list[float]] = {}
    for reports in children.values():
        for rep in reports:
            for k, v in rep["steps"].items():
                steps.setdefault(k, []).extend(v)
            for k, v in rep["epochs"].items():
                epochs.setdefault(k, []).extend(v)
    return {"children": children, "steps": steps, "epochs": epochs}


# ------------------------------------------------------------------------------------------ install size
def _closure(names: tuple[str, ...]) -> set[str]:
    """The named distributions plus every installed requirement they pull in (extras not followed)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def installed_bytes(name: str) -> int:
    dist = metadata.distribution(name)
    total = sum(Path(str(dist.locate_file(f))).stat().st_size for f in dist.files or []
                if Path(str(dist.locate_file(f))).is_file())
    if name == "fmfl":  # an editable install lists only its .pth and metadata: count the package source
        import fmfl

        src = Path(fmfl.__file__).parent
        total += sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return total


def install_sizes() -> dict[str, Any]:
    edge_all, torch_all = _closure(EDGE_PACKAGES), _closure(TORCH_PACKAGES)
    return {
        "edge_named": sum(installed_bytes(n) for n in EDGE_PACKAGES),
        "torch_named": sum(installed_bytes(n) for n in TORCH_PACKAGES),
        "edge_closure": sum(installed_bytes(n) for n in edge_all),
        "torch_closure": sum(installed_bytes(n) for n in torch_all),
        "edge_deps": sorted(edge_all), "torch_deps": sorted(torch_all),
        "per_package": {n: installed_bytes(n) for n in sorted(edge_all | torch_all)},
    }


# ---------------------------------------------------------------------------------------------- report
def med(ts: list[float]) -> float:
    return statistics.median(ts)


def header(reps: Repeats) -> list[str]:
    m = machine()
    return [
        SECTION, "",
        f"Written by `python -m benchmarks.client` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {m['machine']}, {m['cores']} cores ({m['cpu']}), shared with other developers' work; "
        f"Python {m['python']}, onnxruntime-training-cpu {m['onnxruntime-training-cpu']}, "
        f"torch {m['torch']}, transformers {m['transformers']}, numpy {m['numpy']}. Both sides use every "
        "core (ORT intra-op threads and torch threads both default to 2).",
        "",
        "Clients: **ORT** is ours (`OrtTrainer` on the suffix, fed the frozen prefix's cached features; "
        "**ORT, no cache** runs the prefix session on every batch). **torch** is the plain Flower-style "
        "client: the same model with the same parameters `requires_grad`, `torch.optim.AdamW`, forward on "
        "the whole model every step (the frozen trunk is recomputed). **torch, cached** is the fairer torch "
        "client that runs the trunk once under `no_grad` and trains the suffix on cached features. Same "
        "bundle weights, same real data and batches (read by the client's torch-free reader), eval mode on "
        "both sides (what the exported graph computes); the first-step losses show both compute the same.",
        "",
        "ORT's process follows the real client's order: verify, read, run the prefix in a session of "
        "its own that is freed, then create the training session; the no-cache variant (which needs both "
        "sessions at once) runs after the client's peak RSS has been read.",
        "",
        f"How: each client runs alone in a fresh process ({reps.child_repeats} processes per client, "
        "interleaved ORT / torch / torch cached in a rotating order), because ORT's and torch's thread "
        "pools spin after work and, in one process, each slowed the other (torch's step went from 58 to "
        "110 ms right after an ORT call). In each process: cold start, then "
        f"{reps.warmup} warm-up steps, then {reps.step_repeats} chunks of {reps.steps} steps and "
        f"{reps.epoch_repeats} epochs, interleaved between that process's variants. Cells are "
        "min / median / max over all chunks (ms per step) or epochs of all processes; read the median, "
        "the machine is shared.",
        "",
    ]


def findings(results: dict[str, Any]) -> list[str]:
    """The goals of issue 4, case by case, with the measured quantity that limits each miss."""
    lines = ["### Goals (computed from the tables below)", ""]
    for name, r in results.items():
        s, e, c = r["steps"], r["epochs"], r["children"]
        step = med(s["ORT"]) / med(s["torch"])
        speed = med(e["ORT, no cache"]) / med(e["ORT, cached epoch"])
        bound = med(s["ORT, no cache"]) / med(s["ORT"])
        rss = med([x["vmhwm_mb"] for x in c["ORT"]]) / med([x["vmhwm_mb"] for x in c["torch"]])
        cold = med([x["marks"]["first_step"] for x in c["ORT"]])
        data_mb = med([x["rss_at"]["bundle_verified_data_read"] for x in c["ORT"]])
        parts = [
            f"step {step:.3f}x torch ({goal(step <= GOAL_STEP)})",
            f"cached epochs {speed:.1f}x faster ({goal(speed >= GOAL_CACHE)}"
            + ("" if speed >= GOAL_CACHE else
               f"; the suffix's own step is {med(s['ORT']):.1f} of the {med(s['ORT, no cache']):.1f} ms "
               f"no-cache step, so even a free trunk caps it at {bound:.1f}x") + ")",
            f"peak RSS {rss:.2f}x torch ({goal(rss <= GOAL_RSS)}"
            + ("" if rss <= GOAL_RSS else
               f"; {rss / GOAL_RSS:.1f}x over the goal; {data_mb:.0f} MB is the interpreter, numpy, "
               "tokenizers and the data before ONNX Runtime loads") + ")",
            f"cold start {cold:.2f} s ({goal(cold < GOAL_COLD_S)})",
        ]
        lines.append(f"- **{name}**: " + "; ".join(parts) + ".")
    return lines


def step_table(results: dict[str, Any]) -> list[str]:
    lines = ["### Step time (ms per training step)", "",
             "| case | batch | trainable | ORT | ORT, no cache | torch | torch, cached | ORT / torch "
             "(goal <= 0.6) | ORT, no cache / torch | ORT / torch, cached | first-step loss ORT, torch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        s = r["steps"]
        ratio, nocache = med(s["ORT"]) / med(s["torch"]), med(s["ORT, no cache"]) / med(s["torch"])
        lines.append(
            f"| {name} | {r['batch']} | {r['params']:,} | {fmt(s['ORT'], digits=2)} | "
            f"{fmt(s['ORT, no cache'])} | {fmt(s['torch'])} | {fmt(s['torch, cached'], digits=2)} | "
            f"{ratio:.3f} ({goal(ratio <= GOAL_STEP)}) | {nocache:.2f} | "
            f"{med(s['ORT']) / med(s['torch, cached']):.2f} | "
            f"{r['losses']['ORT']:.5f}, {r['losses']['torch']:.5f} |")
    return lines


def epoch_table(results: dict[str, Any]) -> list[str]:
    lines = ["### Epoch time (s per local epoch)", "",
             "First epoch with the cache = the prefix pass over every sample + one cached epoch (the "
             "median of each). Speed-up = the no-cache epoch (trunk recomputed every step) / the cached "
             "epoch, i.e. every epoch after the first (goal >= 5x).", "",
             "| case | samples (batches) | ORT prefix pass | ORT cached epoch | ORT first epoch | "
             "ORT no cache | ORT speed-up | torch | torch feature pass | torch cached epoch | "
             "torch / ORT cached |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        e = r["epochs"]
        first = med(e["ORT, prefix pass"]) + med(e["ORT, cached epoch"])
        speed = med(e["ORT, no cache"]) / med(e["ORT, cached epoch"])
        lines.append(
            f"| {name} | {r['n']} ({r['num_batches']}) | {fmt(e['ORT, prefix pass'], 1, 2)} | "
            f"{fmt(e['ORT, cached epoch'], 1, 3)} | {first:.2f} | {fmt(e['ORT, no cache'], 1, 2)} | "
            f"{speed:.1f}x ({goal(speed >= GOAL_CACHE)}) | {fmt(e['torch'], 1, 2)} | "
            f"{fmt(e['torch, feature pass'], 1, 2)} | {fmt(e['torch, cached epoch'], 1, 3)} | "
            f"{med(e['torch']) / med(e['ORT, cached epoch']):.0f}x |")
    return lines


def process_table(results: dict[str, Any]) -> list[str]:
    lines = ["### Peak RSS and cold start (fresh process per client)", "",
             "Peak RSS: VmHWM after the first step, the warm-up, the timed steps and the epochs; for ORT, "
             "after the client's round (one prefix pass in its own session, then one epoch), as the timed "
             "repeats re-run the prefix in fresh sessions. Cold start: wall time from just before "
             "the parent spawns the process to the first training step done: interpreter start, imports, "
             "bundle verification (sha256 of every file), reading and preprocessing the local data, the "
             "trunk on the first batch, building the model or the ORT training session, one step. The ORT "
             "process asserts that `torch` and `transformers` never entered `sys.modules`.", "",
             "| case | ORT peak RSS MB | torch MB | torch, cached MB | ORT / torch (goal <= 0.4) | "
             "ORT cold start s (goal < 1) | torch s | torch, cached s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        c = r["children"]
        rss = {k: [x["vmhwm_mb"] for x in v] for k, v in c.items()}
        cold = {k: [x["marks"]["first_step"] for x in v] for k, v in c.items()}
        ratio = med(rss["ORT"]) / med(rss["torch"])
        lines.append(
            f"| {name} | {fmt(rss['ORT'], 1, 0)} | {fmt(rss['torch'], 1, 0)} | "
            f"{fmt(rss['torch, cached'], 1, 0)} | {ratio:.2f} ({goal(ratio <= GOAL_RSS)}) | "
            f"{fmt(cold['ORT'], 1, 2)} ({goal(med(cold['ORT']) < GOAL_COLD_S)}) | "
            f"{fmt(cold['torch'], 1, 2)} | "
            f"{fmt(cold['torch, cached'], 1, 2)} |")
    lines += ["", "Where the ORT client's cold start and memory go (median process of each case): seconds "
              "since spawn and VmRSS MB at each point.", "",
              "| case | interpreter + benchmark module | + imports, bundle verified, data read | "
              "+ prefix on the first batch | + ORT training session | + first step | peak | peak with the "
              "no-cache variant's prefix session too |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        reports = sorted(r["children"]["ORT"], key=lambda x: x["marks"]["first_step"])
        rep = reports[len(reports) // 2]
        mk, at = rep["marks"], rep["rss_at"]
        cells = [f"{mk[k]:.2f} s, {at[k]:.0f} MB" for k in
                 ("python_started", "bundle_verified_data_read", "prefix_first_batch", "sessions_created",
                  "first_step")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {rep['vmhwm_mb']:.0f} MB | "
                     f"{at['no_cache_peak']:.0f} MB |")
    return lines


def size_table(sizes: dict[str, Any]) -> list[str]:
    mb = 1e6
    top = sorted(sizes["per_package"].items(), key=lambda x: -x[1])[:10]
    return ["### Installed size", "",
            "Sum of the installed files each distribution lists (`importlib.metadata` `files`; fmfl is an "
            "editable install here, so its `src/fmfl` tree is counted). With dependencies = the named "
            "packages plus every requirement they pull in, recursively (no extras), as installed here.", "",
            "| set | named packages MB | with dependencies MB | dependencies |", "|---|---:|---:|---|",
            f"| edge extra ({', '.join(EDGE_PACKAGES)}) | {sizes['edge_named'] / mb:.1f} | "
            f"{sizes['edge_closure'] / mb:.1f} | {', '.join(sizes['edge_deps'])} |",
            f"| torch + transformers | {sizes['torch_named'] / mb:.1f} | {sizes['torch_closure'] / mb:.1f} | "
            f"{', '.join(sizes['torch_deps'])} |",
            "", "Largest: " + ", ".join(f"{n} {b / mb:.1f} MB" for n, b in top) + "."]


def render(results: dict[str, Any], sizes: dict[str, Any], reps: Repeats, seconds: float) -> list[str]:
    return [*header(reps), *findings(results), "", *step_table(results), "", *epoch_table(results), "",
            *process_table(results),
            "", *size_table(sizes), "", f"Whole benchmark: {seconds:.0f} s."]


def write_section(lines: list[str]) -> None:
    """Replace (or append) the ``## Edge client`` section of docs/benchmarks.md, nothing else."""
    replace_section(DOC, SECTION, "\n".join(lines))



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one small case, tiny repeats; no docs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--only", help="run only the cases whose name contains this text")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="bundles, data (reused)")
    # Internal: a fresh client process for peak RSS and cold start.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case = next(c for c in (QUICK if args.quick else CASES) if c.name == args.case)
        child(args.child, case, args.bundle, args.data, args.t0, QUICK_REPEATS if args.quick else FULL)
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    cases, reps = (QUICK, QUICK_REPEATS) if args.quick else (CASES, FULL)
    cases = tuple(c for c in cases if not args.only or args.only in c.name)
    results: dict[str, Any] = {}
    for case in cases:
        folder = args.workdir / ("quick" if args.quick else "full")
        data = write_data(case, folder / f"data-{case.model}-{case.samples}")
        bundle = export(case, folder / slug(case))
        print(f"[{time.perf_counter() - start:.0f} s] {case.name}", flush=True)
        from fmfl.bundle import verify_bundle

        manifest = verify_bundle(bundle)
        r = measure(case, bundle, data, reps, args.quick)
        r.update(losses=first_step_losses(case, bundle, data), params=manifest.num_trainable,
                 batch=case.batch, n=case.samples, num_batches=-(-case.samples // case.batch))
        results[case.name] = r
    sizes = install_sizes()
    lines = render(results, sizes, reps, time.perf_counter() - start)
    print("\n".join(lines))
    if not (args.quick or args.no_write):
        write_section(lines)
        print(f"wrote {SECTION!r} in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
