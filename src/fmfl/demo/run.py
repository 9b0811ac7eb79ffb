"""Orchestrates ``fmfl demo``: bundle, broker, partitions, processes, progress, evaluation, report."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fmfl.datasets.partition import dirichlet_partition
from fmfl.demo.broker import Broker, start_broker
from fmfl.demo.bundles import ensure_bundle
from fmfl.demo.evaluate import Evaluator
from fmfl.demo.processes import Child, spawn, stop_all
from fmfl.demo.progress import Progress
from fmfl.demo.tasks import TASKS, ZERO_SHOT_NAMES, DemoData
from fmfl.errors import FmflError
from fmfl.mqtt.mosquitto import Mosquitto
from fmfl.privacy.local import local_dp_from_options

if TYPE_CHECKING:
    from fmfl.demo.web_fleet import WebCredentials, WebFleet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    task: str = "vision"
    clients: int = 10
    #: browser devices added to the ``clients`` Python devices (``fmfl.demo.web_fleet``); they get the last shards
    web_clients: int = 0
    #: None: the task's default (``DemoTask.default_rounds``)
    rounds: int | None = None
    alpha: float = 0.5
    codec: str | None = None
    #: the gateway's --downlink-codec (None: its default, deltas on; "dense": every device gets dense models)
    downlink_codec: str | None = None
    strategy: str = "fedavg"
    broker: str | None = None
    broker_kind: str = "auto"
    centralized: bool = False
    #: also measure the baselines a user would compare against and the personalized evaluation
    #: (``fmfl.demo.baselines``); runs after the federated part
    baselines: bool = False
    clients_per_round: int | None = None
    local_epochs: int = 1
    round_timeout: float = 120.0
    seed: int = 0
    runs_dir: Path = Path("runs")
    cache_dir: Path = Path(".fmfl-cache")
    run_id: str | None = None
    #: train on at most this many samples (test: a fifth, at least 1,000); None: the task's default
    max_samples: int | None = None
    #: a folder with the user's own train* and test* data (replaces the task's data set)
    data: Path | None = None
    model: str | None = None
    train: str | None = None
    image_size: int | None = None
    #: DP-FedAvg at the aggregator (``--strategy dp-fedavg``, the fleet size is ``clients``)
    dp_noise_multiplier: float | None = None
    dp_clip: float | None = None
    dp_adaptive_clip: bool = False
    #: local DP on every client
    local_dp_clip: float | None = None
    local_dp_noise_multiplier: float | None = None


@dataclass
class RunRecord:
    config: dict[str, Any]
    bundle: str = ""
    bundle_id: str = ""
    num_trainable: int = 0
    total_parameters: int = 0
    export_seconds: float = 0.0
    broker: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    accuracy: dict[int, float] = field(default_factory=dict)
    centralized: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    baselines_seconds: float = 0.0
    #: what the Python devices received (their downlink.json, summed; docs/protocol.md 2b)
    downlink: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: from start to the last round's report (excludes the centralized baseline)
    federated_seconds: float = 0.0
    completed: bool = False


def run_demo(cfg: DemoConfig) -> Path:
    if cfg.task not in TASKS:
        raise FmflError(f"unknown task {cfg.task!r}; choose one of {', '.join(TASKS)}")
    if cfg.clients < 0 or cfg.web_clients < 0 or fleet_size(cfg) < 1:
        raise FmflError("--clients and --web-clients must be >= 0, with at least one device in all")
    if (cfg.rounds is not None and cfg.rounds < 1) or cfg.alpha <= 0:
        raise FmflError("--rounds must be >= 1 and --alpha > 0")
    if cfg.web_clients:
        from fmfl.demo.web_fleet import check_web_prerequisites

        if cfg.broker or cfg.broker_kind == "amqtt":
            raise FmflError("--web-clients needs the demo's own Mosquitto (its WebSockets listener): drop --broker "
                            "and --broker-kind amqtt")
        check_web_prerequisites()
    task = TASKS[cfg.task]
    if cfg.rounds is None:
        cfg = replace(cfg, rounds=task.default_rounds)
    if cfg.data is None and (cfg.model or cfg.train):
        raise FmflError("--model and --train choose the bundle for --data; the preset tasks use their own")
    if cfg.baselines and cfg.data is not None:
        raise FmflError("--baselines compares against the preset tasks' data sets; it does not take --data")
    _dp_args(cfg)  # refuse half-given DP options before exporting anything
    local_dp_from_options(cfg.local_dp_clip, cfg.local_dp_noise_multiplier, 1e-5)  # the same, for local DP
    start = time.perf_counter()
    run_id = cfg.run_id or dt.datetime.now().strftime(f"%Y%m%d-%H%M%S-{cfg.task}")
    run_dir = cfg.runs_dir / run_id
    if run_dir.exists():
        raise FmflError(f"{run_dir} already exists; choose another --run-id")
    run_dir.mkdir(parents=True)
    record = RunRecord(config={k: str(v) for k, v in asdict(cfg).items()})
    rounds = cfg.rounds or task.default_rounds
    progress = Progress(rounds)
    children: list[Child] = []
    broker: Broker | None = None
    web: WebFleet | None = None
    credentials: WebCredentials | None = None
    stopping = _raise_on_sigterm()
    try:
        if cfg.data is not None:
            from fmfl.demo.user_data import user_task

            task, data = user_task(cfg, task)
            progress.note(f"your data: {cfg.data} ({len(data.train_y)} training samples, "
                          f"{len(data.label_names)} classes)")
        else:
            progress.note(f"loading {cfg.task} data")
            data = task.load(cfg.seed, cfg.max_samples)
        labels = data.label_names if task.export_task == "classify" else None
        progress.note(f"bundle: {task.model} {task.train_spec} (exported once, then cached in {cfg.cache_dir})")
        t0 = time.perf_counter()
        bundle, manifest, exported = ensure_bundle(cfg.cache_dir, task.model, task.export_task, task.train_spec,
                                                   labels, task.image_size, task.max_seq_len, task.lr,
                                                   task.optimizer)
        record.export_seconds = time.perf_counter() - t0 if exported else 0.0
        record.bundle, record.bundle_id = str(bundle), manifest.bundle_id
        record.num_trainable = manifest.num_trainable
        record.total_parameters = int(manifest.extra.get("total_parameters", 0))
        shards = _write_shards(run_dir, data, cfg, task.write_shard)
        if cfg.broker:
            url = cfg.broker
        elif cfg.web_clients:
            from fmfl.demo.web_fleet import WebCredentials

            credentials = WebCredentials.create(_client_ids(cfg)[cfg.clients:])
            broker = Mosquitto(run_dir / "broker", websockets=True,
                               ws_password_file=credentials.password_file).start()
            url = broker.url
        else:
            broker = start_broker(run_dir / "broker", cfg.broker_kind)
            url = broker.url
        record.broker = url
        kinds = f"{cfg.clients} clients" + (f" + {cfg.web_clients} web clients" if cfg.web_clients else "")
        progress.note(f"broker {url}; {kinds}, Dirichlet alpha {cfg.alpha}")
        children = _start_processes(cfg, task, bundle, url, run_dir, shards[:cfg.clients])
        if credentials is not None and isinstance(broker, Mosquitto):
            from fmfl.demo.web_fleet import start_web_fleet

            web = start_web_fleet(run_dir, bundle, broker.ws_url, "demo", shards[cfg.clients:], credentials)
            children.append(web.browser)
            progress.note(f"web devices: {cfg.web_clients} pages in headless Chromium, site {web.server.url}")
        test_x: Any = data.test_x
        if cfg.data is not None:
            from fmfl.demo.user_data import read_user_test

            test_x = read_user_test(cfg.data, bundle, manifest)
        evaluator = Evaluator(bundle, manifest, test_x, data.test_y, ZERO_SHOT_NAMES, threads=1)
        initial = np.load(bundle / "initial_weights.npy")
        record.accuracy[0] = evaluator.accuracy(initial)
        progress.note(f"global v0 (before federated training): test accuracy {record.accuracy[0]:.4f}")
        _monitor(cfg, run_dir, children, evaluator, record, progress)
        record.federated_seconds = time.perf_counter() - start
        record.completed = len([r for r in record.rounds if r.get("status") == "ok"]) >= rounds
        if cfg.centralized:
            from fmfl.demo.centralized import centralized_baseline

            progress.note("centralized baseline: same trainable set, pooled data, same sample passes")
            record.centralized = centralized_baseline(bundle, manifest, shards, record, cfg, task, evaluator,
                                                      run_dir)
        if cfg.baselines and record.accuracy:
            from fmfl.aggregator.durable.store import GlobalStore
            from fmfl.demo.baselines import measure_baselines

            t0 = time.perf_counter()
            _, final = GlobalStore(run_dir / "aggregator" / "models").load_weights(max(record.accuracy))
            parts = dirichlet_partition(data.train_y, fleet_size(cfg), cfg.alpha, cfg.seed)  # the shards' rows
            record.baselines = measure_baselines(task=task, data=data, bundle=bundle, shards=shards, parts=parts,
                                                 run_dir=run_dir, evaluator=evaluator, global_weights=final,
                                                 seed=cfg.seed, progress=progress)
            record.baselines_seconds = time.perf_counter() - t0
    except KeyboardInterrupt as exc:
        how = "SIGTERM" if isinstance(exc, Terminated) else "the user (Ctrl-C)"
        record.events.append(f"interrupted by {how}: report covers the rounds that completed")
        progress.note("interrupted: stopping every process the demo started")
        interrupted: KeyboardInterrupt | None = exc
    else:
        interrupted = None
    finally:
        stopping.hold()  # a second SIGTERM must not cut the clean-up short
        stop_all(children)
        if web is not None:
            web.stop()
        elif credentials is not None:  # the fleet never started: its password file is still ours to remove
            credentials.remove()
        if broker is not None:
            broker.stop()
        record.seconds = time.perf_counter() - start
        progress.close()
        _finish(run_dir, record)
        print(f"report: {run_dir / 'report.md'}")
        stopping.restore()
    if isinstance(interrupted, Terminated):
        raise SystemExit(128 + signal.SIGTERM)  # 143, after every child is stopped and the report written
    if interrupted is not None:
        raise KeyboardInterrupt  # exit status 130, after every child is stopped and the report written
    return run_dir


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager, ``kill``, a CI timeout): stopped like Ctrl-C, every child with it."""


@dataclass
class _SigtermHandler:
    previous: Any

    def hold(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _raise_on_sigterm() -> _SigtermHandler:
    """Turn SIGTERM into ``Terminated`` while the demo runs, so its ``finally`` stops the broker, gateway,
    clients and browser (their own process groups would otherwise outlive it) and writes the report."""
    if threading.current_thread() is not threading.main_thread():
        return _SigtermHandler(None)  # signals reach the main thread only; a caller there owns them

    def terminate(_signum: int, _frame: Any) -> None:
        raise Terminated

    return _SigtermHandler(signal.signal(signal.SIGTERM, terminate))


def fleet_size(cfg: DemoConfig) -> int:
    """Every device of the run, Python and web: the data is partitioned among all of them."""
    return cfg.clients + cfg.web_clients


def _client_ids(cfg: DemoConfig) -> list[str]:
    from fmfl.demo.web_fleet import web_client_ids

    return [f"c{i:02d}" for i in range(cfg.clients)] + web_client_ids(cfg.web_clients)


def _write_shards(run_dir: Path, data: DemoData, cfg: DemoConfig, writer: Any) -> list[Path]:
    parts = dirichlet_partition(data.train_y, fleet_size(cfg), cfg.alpha, cfg.seed)
    shards = []
    for i, (cid, index) in enumerate(zip(_client_ids(cfg), parts, strict=True)):
        folder = run_dir / "clients" / cid
        folder.mkdir(parents=True)
        shards.append(writer(folder, data, index, cfg.seed + i))
    return shards


def _start_processes(cfg: DemoConfig, task: Any, bundle: Path, url: str, run_dir: Path,
                     shards: list[Path]) -> list[Child]:
    k = cfg.clients_per_round or fleet_size(cfg)
    agg = [
        "aggregator", "--bundle", str(bundle), "--broker", url, "--federation", "demo",
        "--rounds", str(cfg.rounds), "--clients-per-round", str(k),
        "--min-clients", str(max(1, math.ceil(0.5 * k))), "--round-timeout", str(cfg.round_timeout),
        "--strategy", cfg.strategy, "--state-dir", str(run_dir / "aggregator"),
        "--local-epochs", str(cfg.local_epochs), "--batch-size", str(task.batch_size), "--lr", str(task.lr),
        "--seed", str(cfg.seed), "--start-timeout", "900",
    ]
    if cfg.web_clients:
        # Browser devices join once their page has read the shard and computed its features (tens of seconds):
        # the first round waits for the whole fleet (up to 5 minutes) instead of starting without them.
        agg += ["--over-select", "1", "--selection-window", "300"]
    if cfg.codec or task.codec:
        agg += ["--codec", cfg.codec or task.codec]
    if cfg.downlink_codec:
        agg += ["--downlink-codec", cfg.downlink_codec]
    agg += _dp_args(cfg)
    children = [spawn("aggregator", agg, run_dir / "logs" / "aggregator.log", threads=None)]
    for i, shard in enumerate(shards):
        cid = f"c{i:02d}"
        args = ["client", "--bundle", str(bundle), "--data", str(shard), "--broker", url, "--client-id", cid,
                "--federation", "demo", "--state-dir", str(run_dir / "clients" / cid / "state"), "--threads", "1"]
        if cfg.local_dp_clip is not None or cfg.local_dp_noise_multiplier is not None:
            args += ["--local-dp-clip", str(cfg.local_dp_clip), "--local-dp-noise-multiplier",
                     str(cfg.local_dp_noise_multiplier)]
        children.append(spawn(cid, args, run_dir / "logs" / f"{cid}.log"))
    return children


def _dp_args(cfg: DemoConfig) -> list[str]:
    """The aggregator's ``--dp-*`` flags; the demo's default strategy becomes dp-fedavg when they are given."""
    if cfg.dp_noise_multiplier is None and cfg.dp_clip is None:
        if cfg.dp_adaptive_clip:
            raise FmflError("--dp-adaptive-clip needs --dp-noise-multiplier and --dp-clip")
        return []
    if cfg.dp_noise_multiplier is None or cfg.dp_clip is None:
        raise FmflError("--dp-noise-multiplier and --dp-clip go together")
    out = ["--dp-noise-multiplier", str(cfg.dp_noise_multiplier), "--dp-clip", str(cfg.dp_clip),
           "--dp-fleet-size", str(fleet_size(cfg))]
    if cfg.strategy == "fedavg":
        out += ["--strategy", "dp-fedavg"]  # argparse keeps the last --strategy
    return out + (["--dp-adaptive-clip"] if cfg.dp_adaptive_clip else [])


def _monitor(cfg: DemoConfig, run_dir: Path, children: list[Child], evaluator: Evaluator, record: RunRecord,
             progress: Progress) -> None:
    from fmfl.aggregator.durable.store import GlobalStore

    aggregator = children[0]
    metrics = run_dir / "aggregator" / "metrics.jsonl"
    store = GlobalStore(run_dir / "aggregator" / "models")
    seen = 0
    while True:
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        for line in lines[seen:]:
            entry = json.loads(line)
            record.rounds.append(entry)
            if entry.get("status") == "ok":
                version = int(entry["version"])
                _, weights = store.load_weights(version)
                record.accuracy[version] = evaluator.accuracy(weights)
                entry["test_accuracy"] = record.accuracy[version]
            progress.round(entry)
        seen = len(lines)
        for child in children[1:]:
            if not child.alive and not child.exit_reported:
                child.exit_reported = True
                if child.process.returncode != 0:
                    message = f"client {child.name} exited with code {child.process.returncode}: {child.tail(2)}"
                    record.events.append(message)
                    progress.note(message)
        if not aggregator.alive:
            if aggregator.process.returncode != 0:
                message = f"aggregator exited with code {aggregator.process.returncode}: {aggregator.tail(5)}"
                record.events.append(message)
                raise FmflError(message + f" (log: {aggregator.log})")
            if len(metrics.read_text().splitlines() if metrics.exists() else []) == seen:
                return
        time.sleep(0.5)


def _downlink_received(run_dir: Path) -> dict[str, Any]:
    """The Python devices' ``downlink.json`` counts summed: bytes by topic kind and models by form."""
    from fmfl.edge_client.model_feed import DOWNLINK_FILE, DownlinkCounter

    files = sorted((run_dir / "clients").glob(f"*/state/{DOWNLINK_FILE}"))
    total = DownlinkCounter()
    for path in files:
        counter = DownlinkCounter.load(path)
        for kind, n in counter.bytes.items():
            total.received(kind, n)
        for form, n in counter.models.items():
            total.models[form] = total.models.get(form, 0) + n
    return {"devices": len(files), **asdict(total)} if files else {}


def _finish(run_dir: Path, record: RunRecord) -> None:
    from fmfl.demo.report import write_report

    metrics = run_dir / "aggregator" / "metrics.jsonl"
    if metrics.exists():
        shutil.copyfile(metrics, run_dir / "metrics.jsonl")
    record.downlink = _downlink_received(run_dir)
    (run_dir / "run.json").write_text(json.dumps(asdict(record), indent=1, default=str))
    write_report(run_dir, record)
