"""The standard onnxruntime on the device: import, execution providers, sessions, version checks.

Devices run plain ``ai.onnx`` graphs (train step, eval, prefix) with the maintained, inference-only
``onnxruntime`` package (``onnxruntime-gpu`` with ``fmfl[edge-cuda]``), so the same bundle runs on x86_64,
aarch64 (Jetson, Raspberry Pi, Graviton), and through ONNX Runtime's mobile and web builds.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from fmfl.bundle.manifest import Manifest
from fmfl.errors import FmflError

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
_MISSING = "onnxruntime is not installed: pip install 'fmfl[edge]' (or 'fmfl[edge-cuda]' on a CUDA device)"


class RuntimeTooOld(FmflError):
    """The installed onnxruntime cannot run this bundle's graphs (opset newer than it knows)."""


class GraphLoadError(FmflError):
    """onnxruntime refused to load one of the bundle's graphs."""


def onnxruntime_module() -> Any:
    """``import onnxruntime`` with a clear error when it is missing; warnings and errors only in its log."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    ort.set_default_logger_severity(3)
    return ort


def version_tuple(text: str) -> tuple[int, ...]:
    """``1.32.0`` -> (1, 32, 0); local or pre-release tails (``1.21.0+cu124``, ``1.22.0rc1``) are ignored."""
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def providers() -> list[str]:
    """CUDA first when this onnxruntime build sees one (``onnxruntime-gpu`` on a GPU box), else the CPU."""
    available = list(onnxruntime_module().get_available_providers())
    return [CUDA, CPU] if CUDA in available else [CPU]


def session_options(threads: int | None) -> Any:
    ort = onnxruntime_module()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def check_runtime(manifest: Manifest) -> None:
    """Refuse to start when the installed onnxruntime is older than the bundle's graphs need."""
    min_version, opset = manifest.versions.get("min_onnxruntime"), manifest.versions.get("opset")
    if not min_version:
        return
    installed = onnxruntime_module().__version__
    if version_tuple(installed) < version_tuple(min_version):
        raise RuntimeTooOld(
            f"this bundle's graphs use ONNX opset {opset}, which needs onnxruntime >= {min_version}; "
            f"onnxruntime {installed} is installed: pip install -U 'onnxruntime>={min_version}'"
        )


def open_session(path: Path, threads: int | None, *, arena: bool = False) -> Any:
    """An inference session on ``path``; a graph onnxruntime cannot load becomes a ``GraphLoadError``.

    Without onnxruntime's CPU arena (the default here) a run's working memory goes back to the system when it
    ends instead of staying reserved (the arena grows in powers of two and never shrinks): the MiniLM last:1
    train step at batch 32 peaked at 253 MB instead of 303 MB here, a whole --once round at 447 MB instead of
    588 MB, with step times within this shared machine's noise. The one-off prefix pass is the exception
    (``arena=True``): its many same-shaped runs peaked lower with it (MiniLM's trunk: 241 MB against 256-273).
    """
    ort = onnxruntime_module()
    options = session_options(threads)
    options.enable_cpu_mem_arena = arena
    try:
        return ort.InferenceSession(str(path), options, providers=providers())
    except Exception as exc:  # onnxruntime raises its own C++-backed exception types
        hint = ""
        if "opset" in str(exc).lower():
            hint = f" (onnxruntime {ort.__version__} may be too old for this graph's opset: pip install -U onnxruntime)"
        raise GraphLoadError(f"onnxruntime could not load {path.name}{hint}: {exc}") from exc
