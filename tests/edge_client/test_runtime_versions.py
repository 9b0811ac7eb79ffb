"""The device on the oldest and the newest Python and onnxruntime that ``fmfl[edge]`` claims.

Each case is a real venv made with that Python, holding ``fmfl`` (a wheel of this checkout) and the edge
extra's dependencies from PyPI with onnxruntime pinned to the version under test; it runs
``fmfl client --once`` on the session's real bundle and data and must report the same local round (losses and
accuracies) as the development environment's onnxruntime. The venvs with their third-party packages are
cached outside the clone (``$FMFL_CACHE``, default ``~/.cache/fmfl``), keyed by Python, onnxruntime and the
dependency specs; fmfl itself is reinstalled every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from support.wheel import build_fmfl_wheel

ROOT = Path(__file__).resolve().parents[2]
#: (python, onnxruntime spec): the oldest pair and the newest pair the edge extra allows
CASES = [("3.10", "onnxruntime==1.20.0"), ("3.13", "onnxruntime>=1.20,<2")]


def _python(version: str) -> str:
    # pyenv's shim for a version that is installed but not selected refuses to run: look in its folder first
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"{version}.*"), reverse=True):
        if (candidate / "bin" / f"python{version}").exists():
            return str(candidate / "bin" / f"python{version}")
    found = shutil.which(f"python{version}")
    if found is None:
        pytest.fail(f"python{version} is not installed; the device claims Python {version} (pyenv or apt)")
    return found


def _edge_requirements(ort: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    edge = [r for r in project["optional-dependencies"]["edge"] if not r.startswith("onnxruntime")]
    return [*project["dependencies"], *edge, ort]


def _venv(python: str, version: str, requirements: list[str]) -> Path:
    key = hashlib.sha256(json.dumps([version, requirements]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("FMFL_CACHE", Path.home() / ".cache" / "fmfl")) / "device-venvs"
    venv = cache / f"py{version}-{key}"
    if (venv / ".complete").exists():
        return venv
    partial = cache / f".{venv.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(partial)], check=True)
    subprocess.run([str(partial / "bin" / "python"), "-m", "pip", "install", "-q", "--only-binary=:all:",
                    *requirements], check=True, timeout=900)
    (partial / ".complete").write_text(json.dumps(requirements))
    # Renamed when complete; its console scripts keep the temporary path, so it is only ever run as
    # ``bin/python -m ...``.
    os.replace(partial, venv)
    return venv


def _once(python: Path, bundle: Path, data: Path, state: Path) -> dict[str, object]:
    code = (
        "import json, sys\n"
        "from fmfl.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'onnx'))\n"
        "assert not heavy, heavy\n"
        "sys.exit(rc)\n"
    )
    args = ["client", "--once", "--bundle", str(bundle), "--data", str(data), "--state-dir", str(state),
            "--epochs", "1", "--lr", "0.01", "--threads", "1"]
    result = subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("version", "ort"), CASES, ids=[f"py{v}-{o}" for v, o in CASES])
def test_device_round_on_the_oldest_and_newest_runtime(version: str, ort: str, vit_bundle: Path, fmnist_shard: Path,
                                                       tmp_path: Path) -> None:
    # Prepare: the cached venv, this checkout's fmfl as a wheel, and the reference round on the dev venv
    venv = _venv(_python(version), version, _edge_requirements(ort))
    wheel = build_fmfl_wheel(tmp_path / "wheel")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    str(wheel)], check=True, timeout=300)
    reference = _once(Path(sys.executable), vit_bundle, fmnist_shard, tmp_path / "ref")

    # Execute
    report = _once(venv / "bin" / "python", vit_bundle, fmnist_shard, tmp_path / "dev")

    # Assert: the same round (onnxruntime versions may round differently in the last bits)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import sys, onnxruntime; print(sys.version_info[:2], onnxruntime.__version__)"],
                           capture_output=True, text=True, check=True)
    print(probe.stdout.strip())
    assert f"({version.replace('.', ', ')})" in probe.stdout
    if "==" in ort:
        assert ort.split("==")[1] in probe.stdout
    assert report["steps"] == reference["steps"]
    assert report["train_samples"] == reference["train_samples"]
    assert report["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-3)
    for phase in ("before", "after"):
        got, want = report[phase], reference[phase]
        assert isinstance(got, dict)
        assert isinstance(want, dict)
        assert got["eval_loss"] == pytest.approx(want["eval_loss"], rel=1e-3)
        assert abs(got["eval_accuracy"] - want["eval_accuracy"]) <= 1 / 120  # at most one of 120 flips
