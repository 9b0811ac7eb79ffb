"""ONNX external-data references are refused before ONNX Runtime parses a bundle file."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmfl.bundle import BundleError, Manifest, verify_bundle
from fmfl.bundle.onnx_scan import ExternalDataError, has_external_data
from fmfl.bundle.verify import sha256_file

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from fmfl.export.pipeline import ExportConfig, export_bundle  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    out = tmp_path_factory.mktemp("b") / "bundle"
    export_bundle(ExportConfig(model=str(tiny_bert), task="classify", train="last:1", out=out, num_labels=3,
                               max_seq_len=16))
    return out


def _rehash(root: Path) -> None:
    """What an attacker without the signing key can do: make the manifest consistent again."""
    data = json.loads((root / "manifest.json").read_text())
    data["files"] = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
                     for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    data["bundle_id"] = _manifest_from_dict({**data, "bundle_id": ""}).derive_bundle_id()
    (root / "manifest.json").write_text(json.dumps(data))


def _manifest_from_dict(data: dict) -> Manifest:  # type: ignore[type-arg]
    from fmfl.bundle.manifest import TrainableTensor

    fields = dict(data)
    fields["trainable"] = tuple(TrainableTensor(t["name"], tuple(t["shape"]), t["dtype"], t["offset"])
                                for t in data["trainable"])
    return Manifest(**fields)


def test_exported_graphs_hold_their_tensors(bundle: Path) -> None:
    graphs = sorted(path.name for path in bundle.glob("*.onnx"))
    # Every graph the manifest lists, so an export that wrote none (or fewer) cannot pass vacuously.
    assert graphs == sorted(name for name in Manifest.from_json((bundle / "manifest.json").read_bytes()).files
                            if name.endswith(".onnx"))
    assert len(graphs) >= 3  # prefix, train step, eval
    assert [name for name in graphs if has_external_data(bundle / name)] == []


def test_external_data_reference_is_refused_even_when_hashes_match(bundle: Path, tmp_path: Path) -> None:
    # Prepare: re-save prefix.onnx with its weights in an external file, re-hash, drop the signature
    root = tmp_path / "bundle"
    shutil.copytree(bundle, root)
    model = onnx.load(str(root / "prefix.onnx"))
    (root / "prefix.onnx").unlink()
    onnx.save_model(model, str(root / "prefix.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert has_external_data(root / "prefix.onnx")
    _rehash(root)

    # Execute / Assert
    with pytest.raises(BundleError, match=r"prefix.onnx refers to tensor data in external files"):
        verify_bundle(root)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_scanner_never_raises_anything_but_its_own_error(tmp_path_factory: pytest.TempPathFactory,
                                                         data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "x.onnx"
    path.write_bytes(data)
    with contextlib.suppress(ExternalDataError):
        has_external_data(path)
