"""One device's federated round: load the global weights, train locally, encode the update, commit it.

Transport-free: the MQTT runner and ``fmfl client --once`` both drive this class.
"""

from __future__ import annotations

import logging
import os
import platform
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import fmfl
from fmfl.bundle import Manifest, verify_bundle
from fmfl.edge_client.data import LocalDataset, data_fingerprint, read_local_data
from fmfl.edge_client.features import suffix_dataset
from fmfl.edge_client.local_training import LocalRound, LocalTrainConfig, evaluate, local_round
from fmfl.edge_client.runtime import CUDA, onnxruntime_module, providers
from fmfl.edge_client.state import ClientState
from fmfl.edge_client.trainer import Trainer
from fmfl.privacy.local import LocalDp, PrivacyLedger, privatize, privatize_update
from fmfl.protocol import ClientUpdate, RoundTask, UpdateEncoder, new_update_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceConfig:
    bundle: Path
    data: Path
    state_dir: Path
    client_id: str
    trust_key: Path | None = None
    threads: int | None = None
    eval_fraction: float = 0.2
    seed: int = 0
    local_dp: LocalDp | None = None  # clip and noise every delta on the device (fmfl.privacy.local)
    signing_key: Path | None = None  # devices/ID/signing.key from fmfl provision: sign every update


def resolved_preprocessing(bundle: Path, manifest: Manifest) -> dict[str, Any]:
    pre = {k: dict(v) for k, v in manifest.preprocessing.items()}
    if "text" in pre:
        pre["text"]["tokenizer_path"] = str(bundle / pre["text"]["tokenizer_file"])
    return pre


#: what this device calls itself in ``capabilities.device_kind`` (the web device says "web")
DEVICE_KIND = "python"


def capabilities(threads: int | None, in_use: list[str] | None = None) -> dict[str, Any]:
    """What the device tells the gateway in its hello; ``in_use`` = the providers its training session runs on."""
    ort = onnxruntime_module()
    used = in_use or providers()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    return {
        "cores": os.cpu_count() or 1,
        "threads": threads or 0,
        "memory_bytes": int(memory),
        "machine": platform.machine(),
        "ort_version": ort.__version__,
        "execution_providers": list(ort.get_available_providers()),
        "training_providers": list(used),
        "training_device": "cuda" if used[0] == CUDA else "cpu",
        "fmfl_version": fmfl.__version__,
        "device_kind": DEVICE_KIND,
    }


class EdgeDevice:
    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self._signing_key: Any = None
        if cfg.signing_key is not None:  # first, so a bad key fails before any data is read or cached
            from fmfl.trust.update_signing import load_signing_key

            self._signing_key = load_signing_key(cfg.signing_key)
        # Verify hashes (and the signature when trusted) before ONNX Runtime parses anything.
        self.manifest = verify_bundle(cfg.bundle, cfg.trust_key)
        data = read_local_data(cfg.data, resolved_preprocessing(cfg.bundle, self.manifest), self.manifest.labels)
        self.state = ClientState(cfg.state_dir, self.manifest.bundle_id)
        suffix, self.cache_info = suffix_dataset(
            cfg.bundle, self.manifest, data, data_hash=data_fingerprint(cfg.data),
            cache_dir=cfg.state_dir / "cache", threads=cfg.threads,
        )
        self.train_data, self.eval_data = suffix.split(cfg.eval_fraction, cfg.seed)
        self.trainer = Trainer(cfg.bundle, self.manifest, cfg.threads)
        self.initial = self.trainer.get_weights()  # the trainer starts from the bundle's initial weights
        self.tensor_sizes = [t.size for t in self.manifest.trainable]
        self._global: tuple[int, np.ndarray] | None = None  # read from the state folder once, then kept

    @property
    def num_samples(self) -> int:
        return len(self.train_data)

    def global_model(self) -> tuple[int, np.ndarray]:
        """The last good global model: the stored one, else the bundle's initial weights (version 0)."""
        if self._global is None:
            weights = self.state.load_global()
            if weights is None or weights.shape != self.initial.shape:
                self._global = (0, self.initial)
            else:
                self._global = (int(self.state.model_version or 0), weights)
        return self._global

    def accept_global(self, version: int, weights: np.ndarray, run: int | None = None) -> None:
        """Hold ``weights`` as global ``version`` (of ``run``, when the gateway names runs) from now on."""
        if weights.shape != self.initial.shape or not np.isfinite(weights).all():
            raise ValueError(
                f"global model v{version} has shape {weights.shape} or non-finite values; kept the last good one"
            )
        self.state.save_global(version, weights, run)
        self._global = (version, weights)

    def evaluate(self, weights: np.ndarray) -> dict[str, float]:
        self.trainer.set_weights(weights)
        return evaluate(self.trainer, self.eval_data)

    def local_round(
        self, weights: np.ndarray, cfg: LocalTrainConfig, encoder: UpdateEncoder, seed: int | None = None,
        ledger: PrivacyLedger | None = None,
    ) -> tuple[LocalRound, dict[str, float]]:
        """One local round (``local_training.local_round``) with this device's local DP; returns its DP metrics.

        With a ``ledger`` each release is recorded (a real round); without, the delta is noised all the same
        but nothing is counted (``--once`` sends nothing).
        """
        dp_metrics: dict[str, float] = {}
        local_dp = self.cfg.local_dp
        transform = None
        if local_dp is not None:
            def transform(delta: np.ndarray) -> np.ndarray:
                # Before the codec, so its error-feedback residual only ever holds noised values.
                if ledger is None:
                    return privatize(delta, local_dp.clip, local_dp.sigma, np.random.default_rng())
                noisy, metrics = privatize_update(delta, local_dp, ledger)
                dp_metrics.update(metrics)
                return noisy
        result = local_round(self.trainer, weights, self.train_data, cfg, encoder, seed=seed, transform=transform)
        return result, dp_metrics

    def run_round(self, task: RoundTask, weights: np.ndarray) -> ClientUpdate:
        """Train on the task's terms, encode the update with error feedback, commit it to the outbox."""
        cfg = LocalTrainConfig(
            batch_size=task.batch_size, lr=task.lr, local_epochs=task.local_epochs,
            local_steps=task.local_steps, seed=task.seed + task.round,
        )
        seed = zlib.crc32(f"{self.cfg.client_id}:{task.round}".encode())
        encoder = UpdateEncoder(task.codec, weights.size, self.tensor_sizes, seed=seed)
        encoder.restore_residual(self.state.residual(weights.size))
        result, dp_metrics = self.local_round(weights, cfg, encoder, seed, PrivacyLedger(self.cfg.state_dir))
        stats = result.stats
        metrics = {"train_loss": stats.mean_loss, "train_seconds": stats.seconds, "steps": float(stats.steps)}
        metrics.update(evaluate(self.trainer, self.eval_data))
        if dp_metrics:
            metrics.update(dp_metrics)
            assert self.cfg.local_dp is not None
            log.info("local DP: update %d released, epsilon %.4g at delta %g", int(dp_metrics["local_dp_releases"]),
                     dp_metrics["local_dp_epsilon"], self.cfg.local_dp.delta)
        assert result.payload is not None  # an encoder was given
        payload = result.payload
        update = ClientUpdate(
            federation=task.federation, bundle_id=self.manifest.bundle_id, round=task.round,
            model_version=task.model_version, client_id=self.cfg.client_id, num_samples=self.num_samples,
            update_id=new_update_id(), payload=payload, metrics=metrics, run=task.run,
        )
        if self._signing_key is not None:
            from fmfl.trust.update_signing import sign_update

            # Signed before the commit: a resend after a crash is the same bytes, nonce and signature.
            update = sign_update(update, self._signing_key)
        self.state.commit_update(task.round, update.update_id, update.wire_bytes(), np.array(encoder.residual))
        return update


__all__ = ["DeviceConfig", "EdgeDevice", "LocalDataset", "capabilities", "replace"]
