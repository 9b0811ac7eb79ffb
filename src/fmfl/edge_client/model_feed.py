"""How a device takes global models: deltas when it holds the previous version, dense otherwise.

docs/protocol.md section 2b. A device subscribes to ``delta/+`` always and to ``global/+`` only while it
needs a whole model: at connect unless its gateway is known to send deltas, after a delta it cannot
apply or refuses, and after a task naming a version it does not hold. It drops ``global/+`` again once it
holds the newest version of its run and knows that run sends deltas (it saw one, or a dense model with
``deltas: true``). A refused delta (it does not decode,
or the result does not hash to ``weights_sha256``) leaves the held weights untouched.

No MQTT in here: the device session (``session.py``) feeds models and tasks in, and its MQTT adapter
(un)subscribes when ``wants_dense`` changes. The held model lives in a ``ModelHolder``: ``EdgeDevice`` (its
crash-safe state folder) or a lower-tier gateway's memory; nothing here imports ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fmfl.durable import atomic_write
from fmfl.protocol import GlobalModel, Limits, ProtocolError, RoundTask
from fmfl.protocol.downlink import apply_delta, dense_weights

log = logging.getLogger(__name__)

DOWNLINK_FILE = "downlink.json"


@dataclass
class DownlinkCounter:
    """What this device received, by topic kind, and how it took each model version (``downlink.json``)."""

    bytes: dict[str, int] = field(default_factory=dict)  # MQTT payload bytes per kind: global, delta, task, ack
    models: dict[str, int] = field(default_factory=dict)  # versions taken: dense, delta; refused_delta

    def received(self, kind: str, nbytes: int) -> None:
        self.bytes[kind] = self.bytes.get(kind, 0) + nbytes

    def took(self, form: str) -> None:
        self.models[form] = self.models.get(form, 0) + 1

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), sort_keys=True).encode())

    @classmethod
    def load(cls, path: Path) -> DownlinkCounter:
        """The counts so far (kept across restarts), or zeros."""
        try:
            data = json.loads(path.read_text())
            return cls({str(k): int(v) for k, v in data["bytes"].items()},
                       {str(k): int(v) for k, v in data["models"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls()


class HeldRuns(Protocol):
    """Which run the held model came from, and which run was last seen sending deltas (kept across restarts)."""

    @property
    def root(self) -> Path: ...

    @property
    def model_run(self) -> int | None: ...

    @property
    def delta_run(self) -> int | None: ...

    def note_delta_run(self, run: int) -> None: ...


class ModelHolder(Protocol):
    """What the feed needs of a device: the held global model (``EdgeDevice``; a lower tier's ``HeldModel``)."""

    @property
    def state(self) -> HeldRuns: ...

    @property
    def initial(self) -> np.ndarray: ...

    def global_model(self) -> tuple[int, np.ndarray]: ...

    def accept_global(self, version: int, weights: np.ndarray, run: int | None = None) -> None: ...


class ModelFeed:
    """The device's global-model intake (one per device session; runs on the session's thread)."""

    def __init__(self, device: ModelHolder, limits: Limits, counter_path: Path | None = None) -> None:
        self.device = device
        self.limits = limits
        self.counter_path = counter_path or device.state.root / DOWNLINK_FILE
        self.counter = DownlinkCounter.load(self.counter_path)
        self.newest_named = -1  # the newest version a task or model of the followed run named
        self.wants_dense = True
        self.reset()

    def reset(self) -> None:
        """At (re)connect: ``global/+`` unless the held model's gateway is known to send deltas."""
        run = self.device.state.model_run
        self.wants_dense = run is None or self.device.state.delta_run != run

    def _held(self) -> tuple[int, np.ndarray, int | None]:
        version, weights = self.device.global_model()
        return version, weights, self.device.state.model_run

    # -- inputs -------------------------------------------------------------------------------------------
    def on_task(self, task: RoundTask) -> None:
        """A task of the followed run (or a newer one): take the dense model if it names one we lack."""
        run = task.run or 0
        version, _, held_run = self._held()
        self.newest_named = max(self.newest_named, task.model_version)
        # Another run's model (or the bundle's initial weights) never serves this run's task, whatever the
        # numbers: a gateway on a broker that lost its retained state restarts at version 0.
        if task.model_version > version or held_run != run:
            if not self.wants_dense:
                log.info("round %d trains v%d of run %d, this device holds v%d of run %s: taking the dense model",
                         task.round, task.model_version, run, version, held_run)
            self.wants_dense = True
        self._settle(run)

    def on_model(self, model: GlobalModel) -> None:
        """A complete GlobalModel of the followed run (the runner drops older runs' models before this)."""
        run = model.run or 0
        self.newest_named = max(self.newest_named, model.model_version)
        if model.base_version is not None or model.deltas:
            self.device.state.note_delta_run(run)  # this run's gateway sends deltas
        if model.base_version is not None:
            self._on_delta(model, run)
        else:
            self._on_dense(model, run)
        self._settle(run)

    def new_run(self) -> None:
        """The followed run changed: versions named by the old run mean nothing now."""
        self.newest_named = -1

    # -- the two forms ------------------------------------------------------------------------------------
    def _on_delta(self, model: GlobalModel, run: int) -> None:
        version, weights, held_run = self._held()
        if model.model_version <= version and held_run == run:
            return  # already held
        if model.base_version != version or held_run != run:
            log.info("global v%d is a delta from v%d of run %d; this device holds v%d of run %s: "
                     "taking the dense model", model.model_version, model.base_version, run, version, held_run)
            self.wants_dense = True
            return
        try:
            new = apply_delta(weights, model, self.limits)
            self.device.accept_global(model.model_version, new, run)
        except (ProtocolError, ValueError) as exc:
            log.warning("refused global v%d (delta from v%d): %s; kept v%d, taking the dense model",
                        model.model_version, model.base_version, exc, version)
            self.counter.took("refused_delta")
            self.wants_dense = True
            return
        self.counter.took("delta")
        log.info("global model v%d received (delta)", model.model_version)

    def _on_dense(self, model: GlobalModel, run: int) -> None:
        version, _, held_run = self._held()
        # A model of the followed run replaces one of another run (or the bundle's initial weights) whatever
        # its version: it also names the run the held weights belong to, which deltas need. Without a run
        # (a 1.1 gateway) versions alone decide, as before runs.
        runless_over_a_model = model.run is None and held_run is not None
        if model.model_version <= version and (held_run == run or runless_over_a_model):
            return
        try:
            new = dense_weights(model, int(self.device.initial.size), self.limits)
            self.device.accept_global(model.model_version, np.asarray(new, dtype=np.float32), run)
        except (ProtocolError, ValueError) as exc:
            log.warning("ignored global v%d: %s; kept v%d", model.model_version, exc, version)
            return
        self.counter.took("dense")
        log.info("global model v%d received", model.model_version)

    def _settle(self, run: int) -> None:
        """Drop ``global/+`` once current on a run that sends deltas (docs/protocol.md 2b)."""
        version, _, held_run = self._held()
        if (self.wants_dense and held_run == run and self.device.state.delta_run == run
                and version >= self.newest_named):
            self.wants_dense = False
        self.counter.save(self.counter_path)
