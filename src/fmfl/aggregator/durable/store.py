"""Global model versions on disk: one ``.npy`` per version, server state beside it, a JSON index.

Every file is written atomically (``fmfl.durable.atomic_write``), data before index, so after a crash the
index names only complete versions; a version file without an index entry is an interrupted save
that the next ``save`` of that version overwrites. Loads verify the recorded SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fmfl.aggregation.sparse import Float32Array
from fmfl.aggregation.state_file import dump_arrays, load_arrays
from fmfl.aggregation.strategy import StateDict
from fmfl.durable import atomic_write
from fmfl.errors import FmflError

INDEX_NAME = "index.json"
_STATE_KIND = "server-state-v1"


class StoreError(FmflError):
    """The global model store is missing, inconsistent or corrupt."""


@dataclass(frozen=True)
class ModelVersion:
    """An index entry: one saved global model version."""

    version: int
    weights_file: str
    state_file: str
    sha256: str
    size: int
    created: float


class GlobalStore:
    """Versioned global weights (float32, flat) and the strategy's server state, in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def versions(self) -> list[ModelVersion]:
        path = self.directory / INDEX_NAME
        if not path.exists():
            return []
        try:
            raw = json.loads(path.read_text())
            return [ModelVersion(**entry) for entry in raw["versions"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{path} is not a valid model index: {exc}") from exc

    def latest(self) -> ModelVersion | None:
        versions = self.versions()
        return max(versions, key=lambda v: v.version) if versions else None

    def save(
        self, version: int, weights: npt.ArrayLike, *, server_state: Mapping[str, npt.ArrayLike] | None = None
    ) -> ModelVersion:
        """Persist global ``version`` (must exceed the latest) with the strategy's ``state_dict()``."""
        w = np.ascontiguousarray(weights, dtype=np.float32)
        if w.ndim != 1:
            raise ValueError(f"global weights must be 1-D, got shape {w.shape}")
        versions = self.versions()
        if versions and version <= max(v.version for v in versions):
            raise ValueError(f"version {version} is not newer than the stored {max(v.version for v in versions)}")
        buf = io.BytesIO()
        np.save(buf, w, allow_pickle=False)
        data = buf.getvalue()
        entry = ModelVersion(
            version=version,
            weights_file=f"global-{version:08d}.npy",
            state_file=f"state-{version:08d}.npz",
            sha256=hashlib.sha256(data).hexdigest(),
            size=int(w.shape[0]),
            created=time.time(),
        )
        atomic_write(self.directory / entry.weights_file, data)
        state: dict[str, npt.ArrayLike] = {"kind": _STATE_KIND}
        state.update({f"s_{k}": np.asarray(v) for k, v in (server_state or {}).items()})
        atomic_write(self.directory / entry.state_file, dump_arrays(state))
        index = {"format": 1, "versions": [asdict(v) for v in [*versions, entry]]}
        atomic_write(self.directory / INDEX_NAME, json.dumps(index, indent=1).encode())
        return entry

    def load_weights(self, version: int | None = None) -> tuple[ModelVersion, Float32Array]:
        """The weights of ``version`` (default: the latest), checked against the index's hash."""
        entry = self._entry(version)
        data = (self.directory / entry.weights_file).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise StoreError(f"{entry.weights_file} does not match its recorded SHA-256")
        w = np.load(io.BytesIO(data), allow_pickle=False)
        if w.dtype != np.float32 or w.shape != (entry.size,):
            raise StoreError(f"{entry.weights_file} holds {w.dtype} {w.shape}, expected float32 ({entry.size},)")
        out: Float32Array = w
        return entry, out

    def load_state(self, version: int | None = None) -> StateDict:
        """The server state saved with ``version`` (default: the latest), for ``load_state_dict``."""
        entry = self._entry(version)
        arrays = load_arrays((self.directory / entry.state_file).read_bytes(), kind=_STATE_KIND, required=())
        return {k[2:]: v for k, v in arrays.items() if k.startswith("s_")}

    def _entry(self, version: int | None) -> ModelVersion:
        if version is None:
            latest = self.latest()
            if latest is None:
                raise StoreError(f"no global model saved in {self.directory}")
            return latest
        for entry in self.versions():
            if entry.version == version:
                return entry
        raise StoreError(f"version {version} not in {self.directory / INDEX_NAME}")
