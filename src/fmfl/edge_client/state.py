"""The device's crash-safe state folder: the last good global model, the error-feedback residual, the outbox.

Every file is written to a temporary name, fsynced and renamed, so a SIGKILL at any moment leaves
either the old or the new version. An update and the residual left after encoding it are written
together as one outbox entry: the entry is the commit point of a round. While an entry is pending,
its residual is the current one; once the gateway acknowledges it, the residual moves to
``residual.npy`` and the entry is deleted (in that order, so a crash in between loses nothing).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmfl.durable import atomic_write


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@dataclass(frozen=True)
class OutboxEntry:
    round: int
    update_id: str
    message: bytes
    residual: np.ndarray
    path: Path


class ClientState:
    def __init__(self, root: Path, bundle_id: str) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.outbox_dir = root / "outbox"
        self.outbox_dir.mkdir(exist_ok=True)
        self.bundle_id = bundle_id
        meta = self._meta()
        if meta.get("bundle_id") not in (None, bundle_id):
            # A new bundle invalidates the model, residual and outbox of the old one.
            for name in ("global.npy", "residual.npy", "meta.json"):
                (root / name).unlink(missing_ok=True)
            for entry in self.outbox_dir.glob("*.npz"):
                entry.unlink()

    # -- the last good global model ------------------------------------------------------------------
    def _meta(self) -> dict[str, object]:
        path = self.root / "meta.json"
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}  # a torn meta.json cannot happen with atomic_write; a hand-edited one is ignored
        return data if isinstance(data, dict) else {}

    def _set_meta(self, **values: object) -> None:
        meta = {**self._meta(), **values, "bundle_id": self.bundle_id}
        atomic_write(self.root / "meta.json", json.dumps(meta, sort_keys=True).encode())

    @property
    def model_version(self) -> int | None:
        version = self._meta().get("model_version")
        return int(version) if isinstance(version, int) and (self.root / "global.npy").is_file() else None

    def load_global(self) -> np.ndarray | None:
        if self.model_version is None:
            return None
        weights: np.ndarray = np.load(self.root / "global.npy")
        return weights

    def save_global(self, version: int, weights: np.ndarray, run: int | None = None) -> None:
        """``run``: the run of the GlobalModel the weights came from (0 for a gateway without runs)."""
        atomic_write(self.root / "global.npy", _npy_bytes(np.asarray(weights, dtype=np.float32)))
        self._set_meta(model_version=version, model_run=run)

    @property
    def model_run(self) -> int | None:
        """The run of the held model's GlobalModel; None for the bundle's initial weights (or an old folder)."""
        run = self._meta().get("model_run")
        return run if isinstance(run, int) and self.model_version is not None else None

    @property
    def delta_run(self) -> int | None:
        """The last run whose gateway sent this device a downlink delta (docs/protocol.md 2b)."""
        run = self._meta().get("delta_run")
        return run if isinstance(run, int) else None

    def note_delta_run(self, run: int) -> None:
        if self.delta_run != run:
            self._set_meta(delta_run=run)

    @property
    def last_round(self) -> int:
        """The last round whose update was committed to the outbox (-1 before the first)."""
        value = self._meta().get("last_round", -1)
        recorded = int(value) if isinstance(value, int) else -1
        # The outbox entry is the commit point: a kill between writing it and meta.json must not retrain the round.
        pending = [int(p.name.split("-", 1)[0]) for p in self.outbox_dir.glob("*.npz")]
        return max([recorded, *pending])

    # -- residual and outbox ------------------------------------------------------------------------
    def residual(self, size: int) -> np.ndarray:
        pending = self.pending()
        if pending:
            return pending[-1].residual
        path = self.root / "residual.npy"
        if path.is_file():
            residual: np.ndarray = np.load(path)
            if residual.shape == (size,):
                return residual
        return np.zeros(size, dtype=np.float64)

    def commit_update(self, round_: int, update_id: str, message: bytes, residual: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, message=np.frombuffer(message, dtype=np.uint8), residual=residual)
        atomic_write(self.outbox_dir / f"{round_:010d}-{update_id}.npz", buf.getvalue())
        self._set_meta(last_round=round_)

    def pending(self) -> list[OutboxEntry]:
        entries = []
        for path in sorted(self.outbox_dir.glob("*.npz")):
            round_str, update_id = path.stem.split("-", 1)
            with np.load(path) as data:
                entries.append(OutboxEntry(int(round_str), update_id, data["message"].tobytes(),
                                           data["residual"], path))
        return entries

    def acknowledge(self, update_id: str) -> bool:
        """The gateway has the update: keep its residual, drop the entry. False if it was not pending."""
        pending = self.pending()
        for entry in pending:
            if entry.update_id == update_id:
                if not any(e.round > entry.round for e in pending):
                    atomic_write(self.root / "residual.npy", _npy_bytes(entry.residual))
                entry.path.unlink(missing_ok=True)
                return True
        return False
