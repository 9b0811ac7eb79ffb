"""Edge client benchmark: the new device step (standard onnxruntime + numpy optimizer) against the old
onnxruntime-training 1.19.2 client and a plain PyTorch (Flower-style) client, side by side in one run.

Run: ``.venv/bin/python -m benchmarks.client [--quick] [--no-write] [--no-baseline]``. Writes the
``## Edge client`` section of docs/benchmarks.md (not with ``--quick``) and leaves other sections alone.

Every client trains the same trainable set of the same model on the same batches of real data (WordNet
glosses for MiniLM, Fashion-MNIST for EfficientNet-Lite0, Fashion-MNIST images with captions for the dual
encoder), from the same initial weights:

- ``new``: this checkout's device code path: ``fmfl.edge_client.trainer.Trainer`` (the bundle's plain-ONNX
  ``train_step.onnx`` on the standard onnxruntime, then the numpy AdamW) on the suffix, fed the frozen prefix's
  features from ``features.compute_features`` (what the on-disk feature cache holds). ``new, no cache`` runs
  the prefix session on every batch instead.
- ``ORT-training``: the old client (commit ``bench_envs.OLD_COMMIT``): its ``OrtTrainer`` (ORT training
  ``Module`` + ORT's AdamW optimizer graph) on a bundle the old fmfl exported, run by the python of a separate
  venv outside the repository (``benchmarks/bench_envs.py``; ``benchmarks/client_ortt.py`` is its worker), fed
  the new prefix's features of the same data, in the same batch order, from the same initial weights.
- ``torch``: what a Flower user writes: the same torch model with the same parameters ``requires_grad``,
  ``torch.optim.AdamW``, forward on the whole model every step (the frozen trunk is recomputed).
  ``torch, cached``: the fair variant that runs the trunk once under ``no_grad`` and trains the suffix on
  cached features, as the devices do. The step-time goal is measured against this one.
- All run in eval mode (dropout off, BatchNorm statistics frozen), which is what the exported graphs compute,
  so they do the same arithmetic (the first-step losses are printed to show it), and all on the same number of
  threads (``--threads``, default 1: ORT intra-op threads and ``torch.set_num_threads``).

Each client runs alone in a fresh process (ORT's and torch's thread pools spin after work and, in one process,
slowed each other down), the processes interleaved in a rotating order. Peak RSS of a whole device round is
measured on ``fmfl client --once`` itself, old and new, each in a fresh venv that holds only ``fmfl[edge]``
(what a device installs), interleaved; the installed size of those two venvs is the size table.
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

from benchmarks import bench_envs
from benchmarks._docs import cpu_model, replace_section

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Edge client"
WORKDIR = Path(tempfile.gettempdir()) / "fmfl-bench-client"
ORTT_WORKER = Path(__file__).resolve().parent / "client_ortt.py"
EDGE_PACKAGES = ("onnxruntime", "numpy", "paho-mqtt", "tokenizers", "pillow", "fmfl")
TORCH_PACKAGES = ("torch", "transformers")
#: the issue's goals: step <= 1.0x onnxruntime-training's and <= 0.5x torch's (cached); a device round's peak
#: RSS <= 0.5x the old client's; fmfl[edge] with dependencies <= 0.5x the old one's installed size
GOAL_VS_ORTT, GOAL_VS_TORCH, GOAL_RSS, GOAL_SIZE = 1.0, 0.5, 0.5, 0.5
LR = 1e-3
THREADS = 1


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    spec: str
    batch: int
    samples: int  # local training set size for the epoch measurements
    image_size: int | None = None
    task: str = "classify"

    @property
    def text(self) -> bool:
        return self.model == "minilm"

    @property
    def classify(self) -> bool:
        return self.task == "classify"

    @property
    def num_labels(self) -> int | None:
        return 10 if self.classify else None


LORA = "head+lora:r=8,alpha=16,targets=query,value,layers=2"
CASES = (
    Case("MiniLM head", "minilm", "head", 8, 256),
    Case("MiniLM last:1", "minilm", "last:1", 8, 256),
    Case("MiniLM LoRA r=8 q,v x2 + head", "minilm", LORA, 8, 256),
    Case("EffNet-Lite0 64px head", "effnet-lite0", "head", 32, 512, 64),
    Case("EffNet-Lite0 64px last:1", "effnet-lite0", "last:1", 32, 512, 64),
    Case("Dual encoder 64px head", "dual-encoder", "head", 32, 512, 64, "contrastive"),
)
QUICK = (Case("EffNet-Lite0 64px head", "effnet-lite0", "head", 32, 128, 64),)


@dataclass(frozen=True)
class Repeats:
    steps: int  # steps per timed chunk
    step_repeats: int  # timed chunks per process
    epoch_repeats: int  # epochs per process
    child_repeats: int  # fresh processes per client
    warmup: int  # untimed steps first: torch's first steps were 5-30x slower than its steady state here
    once_repeats: int  # fresh `fmfl client --once` processes per client and case


FULL = Repeats(steps=8, step_repeats=4, epoch_repeats=2, child_repeats=3, warmup=8, once_repeats=3)
QUICK_REPEATS = Repeats(steps=3, step_repeats=2, epoch_repeats=1, child_repeats=1, warmup=3, once_repeats=1)


# ----------------------------------------------------------------------------------------------- helpers
def slug(case: Case) -> str:
    return "".join(c if c.isalnum() else "-" for c in f"{case.model}-{case.spec}-{case.image_size}")


def stats(ts: list[float]) -> tuple[float, float, float]:
    return min(ts), statistics.median(ts), max(ts)


def fmt(ts: list[float], scale: float = 1e3, digits: int = 1) -> str:
    lo, mid, hi = stats(ts)
    return f"{lo * scale:.{digits}f} / {mid * scale:.{digits}f} / {hi * scale:.{digits}f}"


def goal(ok: bool) -> str:
    return "met" if ok else "**missed**"


def med(ts: list[float]) -> float:
    return statistics.median(ts)


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


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = (float(x) for x in Path("/proc/loadavg").read_text().split()[:3])
    return one, five, fifteen


def machine() -> dict[str, str]:
    names = ("onnxruntime", "torch", "transformers", "numpy")
    versions = {p: metadata.version(p) for p in names}
    return {"machine": platform.machine(), "cores": str(os.cpu_count()), "cpu": cpu_model("?"),
            "python": platform.python_version(), **versions}


def child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def report_of(out: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("REPORT "))
    return dict(json.loads(line.removeprefix("REPORT ")))


# ------------------------------------------------------------------------------------------------- setup
def write_data(case: Case, path: Path) -> Path:
    """The case's real local data in a format the client reads (JSONL glosses, .npz images, caption JSONL)."""
    from fmfl.edge_client.data import write_caption_jsonl, write_npz, write_text_jsonl

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
    if case.classify:
        return write_npz(path / "fmnist.npz", fm.images[pick_], fm.labels[pick_])
    from fmfl.datasets.captions import caption_labels

    folder = path / "pairs"
    if not (folder / "captions.jsonl").is_file():  # one PNG per image: written once, reused
        write_caption_jsonl(folder, fm.images[pick_], caption_labels(fm.labels[pick_], seed=0))
    return folder


def export_config(case: Case) -> dict[str, Any]:
    """The export options of a case, the same for the new and the old fmfl."""
    return {"model": case.model, "task": case.task, "train": case.spec, "num_labels": case.num_labels,
            "image_size": case.image_size, "max_seq_len": 64, "lr": LR}


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
    export_bundle(ExportConfig(out=out, force=True, **export_config(case)))
    return out


def export_old(case: Case, python: Path, out: Path) -> dict[str, Any]:
    """The same case exported by the old fmfl (ORT training artifacts), in its own venv."""
    cmd = [str(python), "-I", str(ORTT_WORKER), "export", json.dumps(export_config(case)), str(out)]
    return report_of(subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=900),
                     f"old export of {case.name}")


def local_data(bundle: Path, data: Path) -> Any:
    from fmfl.bundle import verify_bundle
    from fmfl.edge_client.data import read_local_data
    from fmfl.edge_client.device import resolved_preprocessing

    manifest = verify_bundle(bundle)
    return manifest, read_local_data(data, resolved_preprocessing(bundle, manifest), manifest.labels)


def labels_of(raw: Any) -> np.ndarray:
    """The labels, or zeros for caption pairs (the contrastive loss takes none; they are never fed)."""
    return raw.labels.astype(np.int64) if raw.labels is not None else np.zeros(len(raw), dtype=np.int64)


# ------------------------------------------------------------------------------------------------- torch
class TorchClient:
    """The Flower-style client: the torch model, AdamW on the ``requires_grad`` parameters."""

    def __init__(self, case: Case, bundle: Path, manifest: Any, threads: int) -> None:
        import torch

        from fmfl.export.pipeline import ONNX_PREFIX
        from fmfl.models.registry import BuildOptions, build_model
        from fmfl.models.trainable import apply_train_spec, parse_train_spec, split_points

        torch.set_num_threads(threads)
        self.torch, self.classify = torch, case.classify
        built = build_model(case.model, BuildOptions(case.task, case.num_labels, case.image_size, 64))
        self.model = built.model.eval()  # eval: the exported graph has dropout off and frozen BN statistics
        trainable = apply_train_spec(self.model, parse_train_spec(case.spec))
        params = dict(self.model.named_parameters())
        flat = np.load(bundle / "initial_weights.npy")
        with torch.no_grad():  # the bundle's random head and LoRA init, so all clients start equal
            for t in manifest.trainable:
                params[t.name.removeprefix(ONNX_PREFIX)].copy_(
                    torch.from_numpy(flat[t.offset : t.offset + t.size].reshape(t.shape)))
        self.towers = self.model.tower_items()
        self.points = split_points(self.model, trainable)
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=LR)

    def _tensors(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        return {k: self.torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}

    def _step(self, embeddings: dict[str, Any], labels: np.ndarray) -> float:
        targets = {"labels": self.torch.from_numpy(labels)} if self.classify else {}
        loss, _ = self.model.head_forward(embeddings, targets)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def full_step(self, inputs: dict[str, np.ndarray], labels: np.ndarray) -> float:
        """Forward on the whole model: the frozen trunk is recomputed every step."""
        return self._step({name: tower({k: self.torch.from_numpy(np.ascontiguousarray(inputs[k]))
                                        for k in tower.input_names})
                           for name, tower in self.towers}, labels)

    def features(self, inputs: dict[str, np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
        """Every tower's state at its split point for every sample (the cached variant's one pass), named as
        the bundle's prefix outputs (``<tower>.<key>``)."""
        parts: dict[str, list[np.ndarray]] = {}
        n = len(next(iter(inputs.values())))
        with self.torch.no_grad():
            for s in range(0, n, batch):
                for name, tower in self.towers:
                    state = tower.run_stages(self._tensors({k: inputs[k][s : s + batch] for k in tower.input_names}),
                                             0, self.points[name])
                    for k, v in state.items():
                        parts.setdefault(f"{name}.{k}", []).append(v.numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}

    def cached_step(self, features: dict[str, np.ndarray], labels: np.ndarray) -> float:
        embeddings = {}
        for name, tower in self.towers:
            state = self._tensors({k.split(".", 1)[1]: v for k, v in features.items() if k.startswith(name + ".")})
            embeddings[name] = tower.run_stages(state, self.points[name], tower.num_stages)["embedding"]
        return self._step(embeddings, labels)


# ----------------------------------------------------------------------------------------------- the new
class NewClient:
    """The new device's pieces in one object: ``Trainer`` from the bundle's initial weights, and the prefix."""

    def __init__(self, case: Case, bundle: Path, manifest: Any, threads: int) -> None:
        from fmfl.edge_client.features import PrefixRunner
        from fmfl.edge_client.trainer import Trainer

        self.classify = case.classify
        self.trainer = Trainer(bundle, manifest, threads)
        self.trainer.set_weights(np.load(bundle / str(manifest.artifacts["initial_weights"])))
        self.trainer.set_learning_rate(LR)
        self.prefix = PrefixRunner(bundle, manifest, threads) if manifest.has_prefix else None

    def step(self, features: dict[str, np.ndarray], labels: np.ndarray) -> float:
        return self.trainer.train_step({**features, "labels": labels} if self.classify else features)

    def nocache_step(self, inputs: dict[str, np.ndarray], labels: np.ndarray) -> float:
        return self.step(self.prefix(inputs) if self.prefix is not None else inputs, labels)


def batch_order(n: int, batch: int) -> list[np.ndarray]:
    """One epoch's shuffled batches, the same for every client (client_ortt.batch_order is this too)."""
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


def first_step_losses(case: Case, bundle: Path, data: Path, threads: int) -> dict[str, float]:
    """Same weights, same first batch: the new client and torch compute the same loss (the same work)."""
    from fmfl.edge_client.features import compute_features

    manifest, raw = local_data(bundle, data)
    first = batch_order(len(raw), case.batch)[0]
    new = NewClient(case, bundle, manifest, threads)
    sub = raw.subset(first)
    feats = compute_features(bundle, manifest, sub, threads) if manifest.has_prefix else dict(sub.inputs)
    tc = TorchClient(case, bundle, manifest, threads)
    labels = labels_of(raw)
    return {"new": new.step({n: feats[n] if n in feats else sub.inputs[n]
                             for n in manifest.graph["train_inputs"]}, labels[first]),
            "torch": tc.full_step(pick(raw.inputs, first), labels[first])}


def new_breakdown(trainer: Any, step: Callable[[], None], repeats: int) -> dict[str, float]:
    """Median ms of a whole step, and of the numpy work in it timed alone on vectors of the same size: the
    optimizer's update, and the gradient copy into the flat vector + the finiteness check. The rest is the
    train-step graph in onnxruntime (and the feed)."""
    from fmfl.edge_client.optimizers import make_optimizer

    size = trainer.weights.size
    weights, grads = trainer.get_weights(), np.full(size, 1e-3, dtype=np.float32)
    opt = make_optimizer(trainer.manifest.optimizer, size, LR)
    parts = np.array_split(grads.copy(), max(len(trainer.tensor_names), 1))
    whole, optim, copy = [], [], []
    for _ in range(repeats):
        a = time.perf_counter()
        step()
        b = time.perf_counter()
        opt.step(weights, grads)
        c = time.perf_counter()
        offset = 0
        for g in parts:
            grads[offset : offset + g.size] = g.reshape(-1)
            offset += g.size
        np.isfinite(grads).all()
        d = time.perf_counter()
        whole.append(b - a)
        optim.append(c - b)
        copy.append(d - c)
    return {"step_ms": med(whole) * 1e3, "optimizer_ms": med(optim) * 1e3, "copy_check_ms": med(copy) * 1e3}


def child(side: str, case: Case, bundle: Path, data: Path, t0: float, reps: Repeats, threads: int) -> None:
    """One client in a fresh process; prints a JSON report.

    Cold start: from ``t0`` (the parent's wall clock just before it spawned us, so interpreter start-up
    counts) to the first training step done. Then, after a warm-up, the client's step and epoch timings
    (interleaved within the process) and its peak RSS.
    """
    marks: dict[str, float] = {}
    rss: dict[str, float] = {}
    extra: dict[str, Any] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.time() - t0, 4)
        rss[name] = current_rss_mb()

    mark("python_started")
    manifest, raw = local_data(bundle, data)  # verify (sha256 of every file) + read and preprocess the data
    mark("bundle_verified_data_read")
    labels = labels_of(raw)
    batches = batch_order(len(raw), case.batch)
    first = batches[0]
    warm = max(reps.warmup, 1)
    if side == "new":
        from fmfl.edge_client.data import LocalDataset
        from fmfl.edge_client.features import PrefixRunner, compute_features
        from fmfl.edge_client.local_training import LocalTrainConfig, train_locally
        from fmfl.edge_client.trainer import Trainer

        names = list(manifest.graph["train_inputs"])

        # The client's own order (EdgeDevice): the prefix runs in a session of its own that is freed before
        # training starts (features.compute_features), so the trunk's weights and the trainer are never in
        # memory together. The no-cache variant needs both at once, so it runs after the peak is read.
        def features_of(data: Any) -> dict[str, Any]:
            feats = compute_features(bundle, manifest, data, threads) if manifest.has_prefix else {}
            return {n: feats[n] if n in feats else data.inputs[n] for n in names}

        first_feats = features_of(raw.subset(first))
        mark("prefix_first_batch")
        trainer = Trainer(bundle, manifest, threads)
        trainer.set_weights(np.load(bundle / str(manifest.artifacts["initial_weights"])))
        trainer.set_learning_rate(LR)
        mark("sessions_created")

        def step(features: dict[str, np.ndarray], y: np.ndarray) -> float:
            return trainer.train_step({**features, "labels": y} if case.classify else features)

        step(first_feats, labels[first])
        mark("first_step")
        feats = features_of(raw)
        suffix = LocalDataset(inputs=feats, labels=raw.labels, label_names=raw.label_names)
        config = LocalTrainConfig(batch_size=case.batch, lr=LR, local_epochs=1)
        train_locally(trainer, suffix, config)
        # The client's round is done: one prefix pass, one epoch. Read its peak now; the timed repeats
        # below run the prefix again in fresh sessions, and the allocator does not hand all of it back.
        client_peak = peak_rss_mb()[0]
        cached = Loop(step, feats, labels, batches)
        cached.steps(warm)()
        mark("warm")
        steps = interleaved({"new": cached.steps(reps.steps)}, reps.step_repeats)
        extra["breakdown"] = new_breakdown(trainer, cached.steps(1), reps.steps * 2)

        def prefix_pass() -> None:
            features_of(raw)

        def cached_epoch() -> None:  # the real client's training loop
            train_locally(trainer, suffix, config)

        epochs = interleaved({"new, prefix pass": prefix_pass, "new, cached epoch": cached_epoch},
                             reps.epoch_repeats)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        assert not heavy, f"the new client imported {heavy[:5]}"

        runner = PrefixRunner(bundle, manifest, threads) if manifest.has_prefix else None

        def nocache_step(inputs: dict[str, np.ndarray], y: np.ndarray) -> float:
            out = runner(inputs) if runner is not None else {}
            return step({n: out[n] if n in out else inputs[n] for n in names}, y)

        nocache = Loop(nocache_step, raw.inputs, labels, batches)
        nocache.steps(warm)()
        steps.update(interleaved({"new, no cache": nocache.steps(reps.steps)}, reps.step_repeats))
        epochs.update(interleaved({"new, no cache": nocache.epoch}, reps.epoch_repeats))
    else:
        tc = TorchClient(case, bundle, manifest, threads)
        mark("sessions_created")
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
    if side == "new":
        rss["no_cache_peak"] = hwm
        hwm = client_peak
    report = {"marks": marks, "rss_at": rss, "vmhwm_mb": hwm, "maxrss_mb": maxrss, **extra,
              "steps": {k: [t / reps.steps for t in v] for k, v in steps.items()}, "epochs": epochs}
    print("REPORT " + json.dumps(report), flush=True)


def run_child(side: str, case: Case, bundle: Path, data: Path, quick: bool, threads: int,
              reps: Repeats) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.client", "--child", side, "--case", case.name,
           "--bundle", str(bundle), "--data", str(data), "--threads", str(threads)] + (["--quick"] if quick else [])
    if reps == QUICK_REPEATS and not quick:
        cmd.append("--smoke")
    t0 = time.time()
    out = subprocess.run([*cmd, "--t0", repr(t0)], capture_output=True, text=True, env=child_env(), cwd=ROOT,
                         timeout=900)
    return report_of(out, f"{side} child")


@dataclass(frozen=True)
class Baseline:
    """The old client's side of one case: its venv's python, its bundle, the features it is fed."""

    python: Path
    bundle: Path
    features: Path


def run_ortt(case: Case, base: Baseline, new_bundle: Path, manifest: Any, reps: Repeats,
             threads: int) -> dict[str, Any]:
    args = {"bundle": str(base.bundle), "features": str(base.features), "threads": threads, "lr": LR,
            "batch": case.batch, "warmup": reps.warmup, "steps": reps.steps, "step_repeats": reps.step_repeats,
            "weights": str(new_bundle / str(manifest.artifacts["initial_weights"])),
            "trainable": [[t.name, [int(d) for d in t.shape]] for t in manifest.trainable], "t0": time.time()}
    cmd = [str(base.python), "-I", str(ORTT_WORKER), "time", json.dumps(args)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=900)
    report = report_of(out, f"onnxruntime-training child of {case.name}")
    report["steps"] = {"ORT-training": report["steps"]}
    return report


def save_features(case: Case, bundle: Path, data: Path, out: Path, threads: int) -> Path:
    """The new prefix's features of the whole local data set, and the labels: what the old client is fed."""
    from fmfl.edge_client.features import compute_features

    manifest, raw = local_data(bundle, data)
    feats = compute_features(bundle, manifest, raw, threads) if manifest.has_prefix else {}
    arrays = {n: feats[n] if n in feats else raw.inputs[n] for n in manifest.graph["train_inputs"]}
    np.savez(out, **{"__labels__": labels_of(raw), **arrays})  # type: ignore[arg-type]
    return out


def measure(case: Case, bundle: Path, data: Path, reps: Repeats, quick: bool, threads: int,
            base: Baseline | None, manifest: Any) -> dict[str, Any]:
    """Fresh children, interleaved in a rotating order, ``child_repeats`` times each."""
    sides = ["new", "torch", "torch, cached"] + (["ORT-training"] if base is not None else [])
    children: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    for r in range(reps.child_repeats):
        for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
            if side == "ORT-training":
                assert base is not None
                children[side].append(run_ortt(case, base, bundle, manifest, reps, threads))
            else:
                children[side].append(run_child(side, case, bundle, data, quick, threads, reps))
    steps: dict[str, list[float]] = {}
    epochs: dict[str, list[float]] = {}
    for reports in children.values():
        for rep in reports:
            for k, v in rep["steps"].items():
                steps.setdefault(k, []).extend(v)
            for k, v in rep.get("epochs", {}).items():
                epochs.setdefault(k, []).extend(v)
    return {"children": children, "steps": steps, "epochs": epochs}


# ------------------------------------------------------------------------------ fmfl client --once, RSS
#: ``fmfl client ...`` in a fresh interpreter that reports its own RSS (VmRSS, VmHWM) just before and just after
#: the prefix pass (``features.compute_features``, the same function in the old and the new client) and at exit
ONCE_WRAPPER = (
    "import json, sys\n"
    "marks = {}\n"
    "def status():\n"
    "    d = {}\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith(('VmRSS:', 'VmHWM:')):\n"
    "            d[line.split(':')[0]] = int(line.split()[1]) / 1024\n"
    "    return d\n"
    "import fmfl.edge_client.features as features\n"
    "compute = features.compute_features\n"
    "def timed(*args, **kwargs):\n"
    "    marks['before_prefix'] = status()\n"
    "    try:\n"
    "        return compute(*args, **kwargs)\n"
    "    finally:\n"
    "        marks['after_prefix'] = status()\n"
    "features.compute_features = timed\n"
    "from fmfl.cli import main\n"
    "try:\n"
    "    rc = main(sys.argv[1:])\n"
    "finally:\n"
    "    marks['end'] = status()\n"
    "    print('MARKS', json.dumps(marks), file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_once(python: Path, case: Case, bundle: Path, data: Path) -> dict[str, Any]:
    """One whole ``fmfl client --once`` round (verify, read, prefix pass, one epoch, evaluations, encode) in a
    fresh process with a fresh state folder (so the feature cache misses); its peak RSS and report."""
    with tempfile.TemporaryDirectory(prefix="fmfl-bench-once-") as state:
        cmd = [str(python), "-I", "-c", ONCE_WRAPPER, "client", "--once", "--bundle", str(bundle),
               "--data", str(data), "--state-dir", state, "--client-id", "bench",
               "--batch-size", str(case.batch), "--epochs", "1"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=state, timeout=900)
        wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"fmfl client --once ({python}) failed:\n{out.stderr[-3000:]}")
    marks = json.loads(next(x for x in out.stderr.splitlines() if x.startswith("MARKS ")).removeprefix("MARKS "))
    report = json.loads(out.stdout[out.stdout.index("{") :])
    return {"vmhwm_mb": marks["end"]["VmHWM"], "wall_s": wall, "report": report, "marks": marks}


def measure_once(case: Case, reps: Repeats, clients: dict[str, tuple[Path, Path]], data: Path) -> dict[str, Any]:
    """``once_repeats`` fresh ``--once`` processes per client (name -> (python, bundle)), rotating order."""
    names = list(clients)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(reps.once_repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            python, bundle = clients[name]
            runs[name].append(run_once(python, case, bundle, data))
    return runs


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
    return sum(Path(str(dist.locate_file(f))).stat().st_size for f in dist.files or []
               if Path(str(dist.locate_file(f))).is_file())


def install_sizes(edge: dict[str, Path]) -> dict[str, Any]:
    """Each fresh ``fmfl[edge]`` venv's site-packages (name -> python), and torch + transformers as installed here."""
    torch_all = _closure(TORCH_PACKAGES)
    sizes: dict[str, Any] = {name: bench_envs.installed_sizes(python) for name, python in edge.items()}
    sizes["torch"] = {"site_packages": sum(installed_bytes(n) for n in torch_all), "deps": sorted(torch_all),
                      "named": sum(installed_bytes(n) for n in TORCH_PACKAGES)}
    return sizes


# ---------------------------------------------------------------------------------------------- report
def header(reps: Repeats, threads: int, loads: list[tuple[str, tuple[float, float, float]]],
           old: dict[str, Any] | None) -> list[str]:
    m = machine()
    ones = [x[1][0] for x in loads]
    old_line = ""
    if old is not None:
        old_line = (f" The old client: fmfl at commit {bench_envs.OLD_COMMIT} with onnxruntime-training-cpu "
                    f"{old['onnxruntime']}, in its own venv (`benchmarks/bench_envs.py`).")
    return [
        SECTION, "",
        f"Written by `python -m benchmarks.client` on {time.strftime('%Y-%m-%d')}, in one run "
        "(every ratio below compares numbers measured side by side in it).",
        f"Machine: {m['machine']}, {m['cores']} cores ({m['cpu']}), shared with other work; 1-minute load average "
        f"{min(ones):.2f}-{max(ones):.2f} over the run ({', '.join(f'{k} {v[0]:.2f}' for k, v in loads)}). "
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}, torch {m['torch']}, "
        f"transformers {m['transformers']}, numpy {m['numpy']}.{old_line} Every client runs on {threads} "
        f"thread{'s' if threads > 1 else ''} (ORT intra-op threads, `torch.set_num_threads`); the numpy "
        "optimizer is single-threaded anyway.",
        "",
        "Clients: **new** is this checkout's device step (`Trainer`: the bundle's plain-ONNX "
        "`train_step.onnx` on the standard onnxruntime, then the numpy AdamW), fed the frozen prefix's cached "
        "features; **new, no cache** runs the prefix session on every batch. **ORT-training** is the old "
        "client (`OrtTrainer`: ORT's training `Module` and its AdamW optimizer graph) on a bundle the old fmfl "
        "exported from the same model and train spec, fed the new prefix's features of the same data, in the "
        "same batch order, from the same initial weights (its first-step loss shows it computes the same). "
        "**torch** is the plain Flower-style client: the same model with the same parameters "
        "`requires_grad`, `torch.optim.AdamW`, forward on the whole model every step (the frozen trunk is "
        "recomputed). **torch, cached** runs the trunk once under `no_grad` and trains the suffix on cached "
        "features: the fair comparison, and the one the goal is measured against. Same bundle weights, same "
        "real data and batches, eval mode everywhere (what the exported graphs compute).",
        "",
        f"How: each client runs alone in a fresh process ({reps.child_repeats} processes per client and case, "
        "interleaved new / torch / torch cached / ORT-training in a rotating order). In each process: cold "
        f"start, then {reps.warmup} warm-up steps, then {reps.step_repeats} chunks of {reps.steps} steps "
        f"(and {reps.epoch_repeats} epochs for new and torch). Cells are min / median / max over all chunks "
        "(ms per step) or epochs of all processes; ratios are of medians; read the median, the machine is "
        "shared.",
        "",
    ]


def once_rss(r: dict[str, Any], name: str) -> list[float]:
    return [x["vmhwm_mb"] for x in r["once"].get(name, [])]


def _breakdown(r: dict[str, Any]) -> dict[str, float]:
    """Medians of the new step's parts over the case's processes; ``graph`` = the rest of the step."""
    new = r["children"]["new"]
    bd = {k: med([c["breakdown"][k] for c in new]) for k in new[0]["breakdown"]}
    bd["graph_ms"] = max(bd["step_ms"] - bd["optimizer_ms"] - bd["copy_check_ms"], 0.0)
    ortt = r["children"].get("ORT-training")
    if ortt:
        bd["ortt_module_ms"] = med([c["breakdown"]["module_ms"] for c in ortt])
        bd["ortt_optimizer_ms"] = med([c["breakdown"]["optimizer_ms"] for c in ortt])
    return bd


def _peak_phase(runs: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Medians of (RSS before the prefix pass, high-water mark after it, high-water mark at exit)."""
    runs = [x for x in runs if "before_prefix" in x["marks"]]
    if not runs:
        return 0.0, 0.0, 0.0
    return (med([x["marks"]["before_prefix"]["VmRSS"] for x in runs]),
            med([x["marks"]["after_prefix"]["VmHWM"] for x in runs]),
            med([x["marks"]["end"]["VmHWM"] for x in runs]))


def findings(results: dict[str, Any], sizes: dict[str, Any] | None) -> list[str]:
    """The issue's goals: a summary, then case by case with the measured quantity that limits each miss."""
    lines = ["### Goals (computed from the tables below)", ""]
    vs_o = {n: med(r["steps"]["new"]) / med(r["steps"]["ORT-training"]) for n, r in results.items()
            if "ORT-training" in r["steps"]}
    vs_t = {n: med(r["steps"]["new"]) / med(r["steps"]["torch, cached"]) for n, r in results.items()}
    rss = {n: med(once_rss(r, "new")) / med(once_rss(r, "old")) for n, r in results.items()
           if once_rss(r, "new") and once_rss(r, "old")}

    def summary(label: str, ratios: dict[str, float], limit: float) -> str:
        met = [n for n, x in ratios.items() if x <= limit]
        missed = [f"{n} {x:.2f}x" for n, x in ratios.items() if x > limit]
        return (f"- {label} (goal <= {limit}x): **met on {len(met)} of {len(ratios)} cases**"
                + (f" ({', '.join(f'{n} {ratios[n]:.2f}x' for n in met)})" if met else "")
                + (f"; missed on {', '.join(missed)}" if missed else "") + ".")

    if vs_o:
        lines.append(summary("Step time vs onnxruntime-training 1.19.2", vs_o, GOAL_VS_ORTT))
    lines.append(summary("Step time vs torch on cached features", vs_t, GOAL_VS_TORCH))
    if rss:
        lines.append(summary("Peak RSS of a `fmfl client --once` round vs the old client's", rss, GOAL_RSS))
    if sizes and "old" in sizes and "new" in sizes:
        new_b, old_b = sizes["new"]["site_packages"], sizes["old"]["site_packages"]
        per = sizes["new"]["per_package"]
        big = sorted(per.items(), key=lambda x: -x[1])[:4]
        lines.append(
            f"- Installed size of `fmfl[edge]` with dependencies (goal <= {GOAL_SIZE}x the old one's): "
            f"{new_b / 1e6:.1f} MB vs {old_b / 1e6:.1f} MB = {new_b / old_b:.2f}x "
            f"({goal(new_b / old_b <= GOAL_SIZE)}"
            + ("" if new_b / old_b <= GOAL_SIZE else
               f"; the goal is {GOAL_SIZE * old_b / 1e6:.0f} MB, and "
               + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in big)
               + f" alone make {sum(b for _, b in big) / 1e6:.0f} MB of it")
            + "). No longer installed: "
            + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in sorted(sizes["old"]["per_package"].items(),
                                                                 key=lambda x: -x[1]) if n not in per)
            + f"; new: {', '.join(n for n in per if n not in sizes['old']['per_package']) or 'nothing'}.")
    phases = {n: (_peak_phase(r["once"]["new"]), _peak_phase(r["once"]["old"])) for n, r in results.items()
              if n in rss}
    if phases:
        at_prefix = [n for n, (p, _) in phases.items() if p[2] <= p[1] + 1]
        lines.append(
            f"- What limits peak RSS: the frozen prefix pass sets the new client's peak in {len(at_prefix)} of "
            f"{len(phases)} cases ({', '.join(at_prefix) or 'none'})"
            + ("" if len(at_prefix) == len(phases) else
               "; in the others training and evaluation add "
               + ", ".join(f"{p[2] - p[1]:.0f} MB ({n})" for n, (p, _) in phases.items() if n not in at_prefix)
               + " to it") + ". That pass is the trunk's inference session (its weights plus activations at "
            "`PREFIX_BATCH`), which both clients run the same way (`features.compute_features`, then freed); the "
            "old client's high-water mark after it was "
            f"{min(o[1] for _, o in phases.values()):.0f}-{max(o[1] for _, o in phases.values()):.0f} MB, the "
            f"new one's {min(p[1] for p, _ in phases.values()):.0f}-{max(p[1] for p, _ in phases.values()):.0f} "
            "MB. Replacing the trainer cannot halve a peak that the trunk's inference sets; and "
            f"{min(p[0] for p, _ in phases.values()):.0f}-{max(p[0] for p, _ in phases.values()):.0f} MB is "
            "resident before the prefix pass starts.")
    heavy = {n: _breakdown(r) for n, r in results.items() if med(r["steps"]["new"]) > 5e-3}
    if heavy and all("ortt_module_ms" in b for b in heavy.values()):
        graph = [b["graph_ms"] / b["ortt_module_ms"] for b in heavy.values()]
        optim = [b["optimizer_ms"] / max(b["ortt_optimizer_ms"], 1e-9) for b in heavy.values()]
        lines.append(
            f"- What limits the step where it is long ({', '.join(heavy)}): the plain-ONNX train-step graph takes "
            f"{min(graph):.2f}-{max(graph):.2f}x the time of ORT-training's forward + backward; the rest of the gap "
            f"is the numpy AdamW ({min(optim):.2f}-{max(optim):.2f}x the time of ORT-training's AdamW graph) and the "
            "gradient copy into the flat vector plus the finiteness check "
            f"({min(b['copy_check_ms'] for b in heavy.values()):.2f}-"
            f"{max(b['copy_check_ms'] for b in heavy.values()):.2f} ms), which the old client did not do.")
    lines.append("")
    for name, r in results.items():
        s, bd = r["steps"], _breakdown(r)
        ms = {k: med(v) * 1e3 for k, v in s.items()}
        parts = [f"new step {ms['new']:.2f} ms = about {bd['graph_ms']:.2f} ms train-step graph + "
                 f"{bd['optimizer_ms']:.2f} ms numpy AdamW + {bd['copy_check_ms']:.2f} ms gradient copy and check"]
        if name in vs_o:
            parts.append(f"{vs_o[name]:.2f}x ORT-training's {ms['ORT-training']:.2f} ms "
                         f"({goal(vs_o[name] <= GOAL_VS_ORTT)}; its forward + backward {bd['ortt_module_ms']:.2f} "
                         f"ms, its AdamW graph {bd['ortt_optimizer_ms']:.2f} ms"
                         + (f": our graph is {bd['graph_ms'] / bd['ortt_module_ms']:.2f}x its forward + backward "
                            f"and our AdamW {bd['optimizer_ms'] / max(bd['ortt_optimizer_ms'], 1e-9):.2f}x its"
                            if vs_o[name] > GOAL_VS_ORTT and bd["ortt_module_ms"] > 0 else "") + ")")
        parts.append(f"{vs_t[name]:.2f}x torch's {ms['torch, cached']:.2f} ms on cached features "
                     f"({goal(vs_t[name] <= GOAL_VS_TORCH)}"
                     + (f"; the graph alone is {bd['graph_ms'] / ms['torch, cached']:.2f}x torch's whole step"
                        if vs_t[name] > GOAL_VS_TORCH else "") + ")")
        parts.append(f"{ms['new'] / ms['torch']:.2g}x the torch client that recomputes the trunk")
        if ms["new"] < 1.0:
            parts.append(f"a step this short is mostly per-call overhead (a whole cached epoch of {r['num_batches']} "
                         f"batches takes {med(r['epochs']['new, cached epoch']) * 1e3:.1f} ms)")
        if name in rss:
            nb, na, ne = _peak_phase(r["once"]["new"])
            ob, oa, oe = _peak_phase(r["once"]["old"])
            where = ("the prefix pass" if ne <= na + 1 else
                     f"training and evaluation, {ne - na:.0f} MB over the prefix pass's {na:.0f} MB")
            parts.append(f"`--once` peak RSS {med(once_rss(r, 'new')):.0f} MB vs the old client's "
                         f"{med(once_rss(r, 'old')):.0f} MB = {rss[name]:.2f}x ({goal(rss[name] <= GOAL_RSS)}); "
                         f"the new peak is set by {where} (old: {oa:.0f} MB after the prefix pass, {oe:.0f} MB "
                         f"at exit); {nb:.0f} MB (old {ob:.0f}) is resident before the prefix pass")
        lines.append(f"- **{name}**: " + "; ".join(parts) + ".")
    return lines


def step_table(results: dict[str, Any]) -> list[str]:
    with_ortt = any("ORT-training" in r["steps"] for r in results.values())
    lines = ["### Step time (ms per training step)", "",
             "| case | batch | trainable | new | ORT-training | torch, cached | torch | new, no cache | "
             f"new / ORT-training (goal <= {GOAL_VS_ORTT}) | new / torch, cached (goal <= {GOAL_VS_TORCH}) | "
             "new / torch | first-step loss new, ORT-training, torch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        s = r["steps"]
        new = med(s["new"])
        ortt = "not run"
        vs_ortt = "not run"
        loss_o = "-"
        if "ORT-training" in s:
            ortt = fmt(s["ORT-training"], digits=2)
            x = new / med(s["ORT-training"])
            vs_ortt = f"{x:.2f} ({goal(x <= GOAL_VS_ORTT)})"
            loss_o = f"{r['children']['ORT-training'][0]['first_loss']:.5f}"
        vt = new / med(s["torch, cached"])
        lines.append(
            f"| {name} | {r['batch']} | {r['params']:,} | {fmt(s['new'], digits=2)} | {ortt} | "
            f"{fmt(s['torch, cached'], digits=2)} | {fmt(s['torch'])} | {fmt(s['new, no cache'])} | {vs_ortt} | "
            f"{vt:.2f} ({goal(vt <= GOAL_VS_TORCH)}) | {new / med(s['torch']):.2g} | "
            f"{r['losses']['new']:.5f}, {loss_o}, {r['losses']['torch']:.5f} |")
    lines += ["", "Where a step goes (median ms; the numpy parts timed alone on vectors of the same size, in the "
              "same processes): the rest of the new step is the train-step graph in onnxruntime."
              + (" ORT-training: its `Module` call (forward + backward) and its optimizer graph's step, timed "
                 "separately." if with_ortt else ""), "",
              "| case | new step | numpy AdamW | gradient copy + finiteness check | graph (the rest) | "
              "ORT-training Module (fwd + bwd) | ORT-training AdamW graph |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        bd = _breakdown(r)
        o1 = f"{bd['ortt_module_ms']:.2f}" if "ortt_module_ms" in bd else "-"
        o2 = f"{bd['ortt_optimizer_ms']:.2f}" if "ortt_optimizer_ms" in bd else "-"
        lines.append(f"| {name} | {bd['step_ms']:.2f} | {bd['optimizer_ms']:.2f} | {bd['copy_check_ms']:.2f} | "
                     f"{bd['graph_ms']:.2f} | {o1} | {o2} |")
    return lines


def epoch_table(results: dict[str, Any]) -> list[str]:
    lines = ["### Epoch time (s per local epoch)", "",
             "First epoch with the cache = the prefix pass over every sample + one cached epoch (the median of "
             "each); every later epoch is a cached epoch (`train_locally`, the real client's loop). No cache = "
             "the trunk recomputed every step.", "",
             "| case | samples (batches) | new prefix pass | new cached epoch | new first epoch | new no cache | "
             "torch | torch feature pass | torch cached epoch | torch, cached / new cached |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        e = r["epochs"]
        first = med(e["new, prefix pass"]) + med(e["new, cached epoch"])
        lines.append(
            f"| {name} | {r['n']} ({r['num_batches']}) | {fmt(e['new, prefix pass'], 1, 2)} | "
            f"{fmt(e['new, cached epoch'], 1, 3)} | {first:.2f} | {fmt(e['new, no cache'], 1, 2)} | "
            f"{fmt(e['torch'], 1, 2)} | {fmt(e['torch, feature pass'], 1, 2)} | "
            f"{fmt(e['torch, cached epoch'], 1, 3)} | "
            f"{med(e['torch, cached epoch']) / med(e['new, cached epoch']):.1f}x |")
    return lines


def once_table(results: dict[str, Any], reps: Repeats) -> list[str]:
    lines = ["### Peak RSS of a whole device round: `fmfl client --once`", "",
             f"Each client in a fresh process, {reps.once_repeats} per client and case, old and new interleaved, "
             "each run by the python of a fresh venv holding only its `fmfl[edge]` (what a device installs; the "
             "new one is this working tree, the old one commit " + bench_envs.OLD_COMMIT + ") on its own bundle "
             "of the same case, with a fresh state folder (the feature cache misses, so the round includes the "
             "prefix pass): verify, read the data, prefix pass, evaluate, one epoch at the case's batch size, "
             "evaluate, encode the update. Peak RSS = the process's VmHWM at exit. `step ms` is the client's own "
             "report (`train_seconds / steps`, default threads: every core).", "",
             f"| case | new peak RSS MB | old peak RSS MB | new / old (goal <= {GOAL_RSS}) | new wall s | "
             "old wall s | new step ms | old step ms | new setup s | old setup s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        once = r["once"]
        if "new" not in once:
            continue
        new, old = once["new"], once.get("old", [])

        def cell(runs: list[dict[str, Any]], fn: Callable[[dict[str, Any]], float], digits: int) -> str:
            return fmt([fn(x) for x in runs], 1, digits) if runs else "not run"

        ratio = (f"{med(once_rss(r, 'new')) / med(once_rss(r, 'old')):.2f} "
                 f"({goal(med(once_rss(r, 'new')) / med(once_rss(r, 'old')) <= GOAL_RSS)})" if old else "not run")
        lines.append(
            f"| {name} | {cell(new, lambda x: x['vmhwm_mb'], 0)} | {cell(old, lambda x: x['vmhwm_mb'], 0)} | "
            f"{ratio} | {cell(new, lambda x: x['wall_s'], 2)} | {cell(old, lambda x: x['wall_s'], 2)} | "
            f"{cell(new, lambda x: x['report']['step_ms'], 2)} | {cell(old, lambda x: x['report']['step_ms'], 2)} | "
            f"{cell(new, lambda x: x['report']['setup_seconds'], 2)} | "
            f"{cell(old, lambda x: x['report']['setup_seconds'], 2)} |")
    lines += ["", "Where the peak comes from (medians over the runs, MB): resident just before the prefix pass "
              "(interpreter, imports, bundle verified, data read and preprocessed), the high-water mark just after "
              "it (the prefix session: the trunk's weights and activations, at the client's `PREFIX_BATCH`), and "
              "at exit (training, evaluation and encoding added to it).", "",
              "| case | new: before prefix | new: peak after prefix | new: peak at exit | old: before prefix | "
              "old: peak after prefix | old: peak at exit |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        once = r["once"]
        if "new" not in once:
            continue
        cells = []
        for side in ("new", "old"):
            runs = [x for x in once.get(side, []) if "before_prefix" in x["marks"]]
            if not runs:
                cells += ["-", "-", "-"]
                continue
            cells += [f"{med([x['marks']['before_prefix']['VmRSS'] for x in runs]):.0f}",
                      f"{med([x['marks']['after_prefix']['VmHWM'] for x in runs]):.0f}",
                      f"{med([x['marks']['end']['VmHWM'] for x in runs]):.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def process_table(results: dict[str, Any]) -> list[str]:
    lines = ["### Peak RSS and cold start of the benchmark's client processes", "",
             "Peak RSS: VmHWM of the timing process; for new, after the client's round (one prefix pass in its "
             "own session, then one epoch), as the timed repeats re-run the prefix in fresh sessions. Cold start: "
             "wall time from just before the parent spawns the process to the first training step done: "
             "interpreter start, imports, bundle verification (sha256 of every file), reading and preprocessing "
             "the local data, the trunk on the first batch, building the model or the sessions, one step. The "
             "new process asserts that `torch` and `transformers` never entered `sys.modules`; so does the "
             "ORT-training one (which reads no data: its cold start is imports, verification, sessions, one "
             "step).", "",
             "| case | new peak RSS MB | torch MB | torch, cached MB | new / torch | new cold start s | "
             "ORT-training cold start s | torch s | torch, cached s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        c = r["children"]
        rss = {k: [x["vmhwm_mb"] for x in v] for k, v in c.items()}
        cold = {k: [x["marks"]["first_step"] for x in v] for k, v in c.items()}
        ortt = fmt(cold["ORT-training"], 1, 2) if "ORT-training" in cold else "not run"
        lines.append(
            f"| {name} | {fmt(rss['new'], 1, 0)} | {fmt(rss['torch'], 1, 0)} | "
            f"{fmt(rss['torch, cached'], 1, 0)} | {med(rss['new']) / med(rss['torch']):.2f} | "
            f"{fmt(cold['new'], 1, 2)} | {ortt} | {fmt(cold['torch'], 1, 2)} | {fmt(cold['torch, cached'], 1, 2)} |")
    lines += ["", "Where the new client's cold start and memory go (median process of each case): seconds "
              "since spawn and VmRSS MB at each point.", "",
              "| case | interpreter + benchmark module | + imports, bundle verified, data read | "
              "+ prefix on the first batch | + train-step and eval sessions | + first step | peak | peak with the "
              "no-cache variant's prefix session too |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        reports = sorted(r["children"]["new"], key=lambda x: x["marks"]["first_step"])
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
    lines = ["### Installed size", "",
             "Each `fmfl[edge]` is installed by pip, with every dependency it resolves today, into a fresh venv "
             "created without pip (so site-packages holds nothing else); size = every file under its "
             "site-packages. The new one is this working tree (`onnxruntime`), the old one commit "
             f"{bench_envs.OLD_COMMIT} (`onnxruntime-training-cpu==1.19.2`). The torch row sums the files that "
             "torch, transformers and their requirements list, as installed in the project's venv (what a "
             "PyTorch client installs).", "",
             f"| set | MB | vs old edge (goal <= {GOAL_SIZE}) | distributions (largest first, MB) |",
             "|---|---:|---:|---|"]
    old = sizes.get("old", {}).get("site_packages")
    for key, label in (("new", "new `fmfl[edge]`"), ("old", "old `fmfl[edge]` (onnxruntime-training-cpu)")):
        if key not in sizes:
            continue
        s = sizes[key]
        per = sorted(s["per_package"].items(), key=lambda x: -x[1])
        ratio = f"{s['site_packages'] / old:.2f}" + (f" ({goal(s['site_packages'] / old <= GOAL_SIZE)})"
                                                      if key == "new" else "") if old else "-"
        lines.append(f"| {label} | {s['site_packages'] / mb:.1f} | {ratio} | "
                     + ", ".join(f"{n} {b / mb:.1f}" for n, b in per) + " |")
    t = sizes["torch"]
    lines.append(f"| torch + transformers with dependencies | {t['site_packages'] / mb:.1f} | "
                 f"{t['site_packages'] / old:.2f} | {', '.join(t['deps'])} |" if old else
                 f"| torch + transformers with dependencies | {t['site_packages'] / mb:.1f} | - | "
                 f"{', '.join(t['deps'])} |")
    return lines


def render(results: dict[str, Any], sizes: dict[str, Any], reps: Repeats, seconds: float, threads: int,
           loads: list[tuple[str, tuple[float, float, float]]]) -> list[str]:
    old = next((r["children"]["ORT-training"][0] for r in results.values() if "ORT-training" in r["children"]), None)
    source = ""
    if old is not None:
        source = (f"ORT-training was fed {old['features']}, with {old['weights']}; its AdamW graph is ORT's "
                  "default (eps 1e-6, no weight decay) where the new client and torch run torch's AdamW "
                  "(eps 1e-8, weight decay 0.01): the same cost, slightly different values after the first step.")
    return [*header(reps, threads, loads, old), *findings(results, sizes), "", *step_table(results),
            *(["", source] if source else []), "", *epoch_table(results), "", *once_table(results, reps), "",
            *process_table(results), "", *size_table(sizes), "", f"Whole benchmark: {seconds:.0f} s."]


def write_section(lines: list[str]) -> None:
    """Replace (or append) the ``## Edge client`` section of docs/benchmarks.md, nothing else."""
    replace_section(DOC, SECTION, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one small case, tiny repeats; no docs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--smoke", action="store_true", help="every case with --quick's repeats; no docs")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the old client (no separate venvs): no ORT-training column, no old --once run")
    parser.add_argument("--only", help="run only the cases whose name contains this text")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: render (and write) the section again from a full run's results.json")
    parser.add_argument("--threads", type=int, default=THREADS, help="threads of every client (default 1)")
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
        child(args.child, case, args.bundle, args.data, args.t0,
              QUICK_REPEATS if args.quick or args.smoke else FULL, args.threads)
        return 0

    if args.render:
        saved = json.loads(args.render.read_text())
        lines = render(saved["results"], saved["sizes"], QUICK_REPEATS if saved.get("quick") else FULL,
                       saved["seconds"], saved["threads"], [(k, tuple(v)) for k, v in saved["loads"]])
        print("\n".join(lines))
        if not (saved.get("quick") or args.no_write):
            write_section(lines)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    loads = [("start", load_average())]
    cases: tuple[Case, ...] = QUICK if args.quick else CASES
    reps = QUICK_REPEATS if args.quick or args.smoke else FULL
    cases = tuple(c for c in cases if not args.only or args.only in c.name)
    baseline = not args.no_baseline
    ortt_py = bench_envs.ortt_export() if baseline else None
    edge = {"new": bench_envs.edge_env(old=False), **({"old": bench_envs.edge_env(old=True)} if baseline else {})}
    folder = args.workdir / ("quick" if args.quick else "full")
    results: dict[str, Any] = {}
    prepared: dict[str, tuple[Path, Path | None, Path]] = {}
    from fmfl.bundle import verify_bundle

    for case in cases:
        data = write_data(case, folder / f"data-{case.model}-{case.task}-{case.samples}")
        bundle = export(case, folder / slug(case))
        manifest = verify_bundle(bundle)
        base = None
        if ortt_py is not None:
            old_bundle = folder / "ortt" / slug(case)
            export_old(case, ortt_py, old_bundle)
            feats = save_features(case, bundle, data, folder / f"{slug(case)}-features.npz", args.threads)
            base = Baseline(ortt_py, old_bundle, feats)
        prepared[case.name] = (bundle, base.bundle if base else None, data)
        loads.append((case.name, load_average()))
        print(f"[{time.perf_counter() - start:.0f} s] {case.name} (load {loads[-1][1][0]:.2f})", flush=True)
        r = measure(case, bundle, data, reps, args.quick, args.threads, base, manifest)
        r.update(losses=first_step_losses(case, bundle, data, args.threads), params=manifest.num_trainable,
                 batch=case.batch, n=case.samples, num_batches=-(-case.samples // case.batch))
        results[case.name] = r
    loads.append(("--once runs", load_average()))
    for case in cases:
        bundle, old_bundle, data = prepared[case.name]
        clients = {"new": (edge["new"], bundle)}
        if old_bundle is not None:
            clients["old"] = (edge["old"], old_bundle)
        print(f"[{time.perf_counter() - start:.0f} s] fmfl client --once: {case.name}", flush=True)
        results[case.name]["once"] = measure_once(case, reps, clients, data)
    sizes = install_sizes(edge)
    loads.append(("end", load_average()))
    lines = render(results, sizes, reps, time.perf_counter() - start, args.threads, loads)
    print("\n".join(lines))
    (args.workdir / ("quick" if args.quick else "full") / "results.json").write_text(json.dumps(
        {"results": results, "sizes": sizes, "loads": loads, "seconds": time.perf_counter() - start,
         "threads": args.threads, "quick": args.quick or args.smoke}, default=str))
    if not (args.quick or args.smoke or args.no_write):
        write_section(lines)
        print(f"wrote {SECTION!r} in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
