"""Bundle verification: tampering with any byte of any file, links, extra files and signatures."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from fmfl.bundle import BundleError, verify_bundle
from fmfl.bundle.signing import generate_keypair
from fmfl.cli import main

pytest.importorskip("torch")

from fmfl.export.pipeline import ExportConfig, export_bundle


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys") / "workstation")


@pytest.fixture(scope="module")
def signed_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, keys: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "signed"
    export_bundle(ExportConfig(model=str(tiny_bert), task="classify", train="last:1", out=out, num_labels=3,
                               max_seq_len=16, sign_key=keys[0]))
    return out


@pytest.fixture
def bundle_copy(signed_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(signed_bundle, dst)
    return dst


def test_signed_bundle_verifies_with_its_key(signed_bundle: Path, keys: tuple[Path, Path]) -> None:
    manifest = verify_bundle(signed_bundle, keys[1])
    assert manifest.bundle_id == manifest.derive_bundle_id()
    assert set(manifest.files) >= {"train_step.onnx", "eval.onnx", "inference.onnx", "prefix.onnx",
                                   "initial_weights.npy", "tokenizer.json"}


@pytest.mark.parametrize("name", ["train_step.onnx", "eval.onnx", "inference.onnx", "prefix.onnx",
                                  "initial_weights.npy", "tokenizer.json"])
def test_one_flipped_byte_in_any_file_fails_naming_the_file(bundle_copy: Path, name: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Prepare: flip one byte in the middle of the file
    path = bundle_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    # Execute
    code = main(["inspect", str(bundle_copy)])

    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert f"{name} does not match its sha256" in err


def test_edited_manifest_fails_the_signature(bundle_copy: Path, keys: tuple[Path, Path]) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["optimizer"]["lr"] = 10.0
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"manifest.sig does not verify"):
        verify_bundle(bundle_copy, keys[1])
    # without a trust key the content check still catches it: the id no longer matches the content
    with pytest.raises(BundleError, match="bundle_id does not match"):
        verify_bundle(bundle_copy)


def test_bundle_signed_by_another_key_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    _, other_pub = generate_keypair(tmp_path / "intruder")
    with pytest.raises(BundleError, match="does not verify"):
        verify_bundle(bundle_copy, other_pub)


def test_unsigned_bundle_is_refused_when_trust_is_configured(bundle_copy: Path, keys: tuple[Path, Path]) -> None:
    (bundle_copy / "manifest.sig").unlink()
    with pytest.raises(BundleError, match="unsigned"):
        verify_bundle(bundle_copy, keys[1])
    assert verify_bundle(bundle_copy).bundle_id  # still a valid, merely unsigned, bundle


def test_symlink_in_bundle_is_refused(bundle_copy: Path) -> None:
    target = bundle_copy / "tokenizer.json"
    moved = bundle_copy.parent / "elsewhere.json"
    shutil.move(target, moved)
    os.symlink(moved, target)
    with pytest.raises(BundleError, match=r"tokenizer.json is a symlink"):
        verify_bundle(bundle_copy)


def test_unlisted_file_is_refused(bundle_copy: Path) -> None:
    # e.g. an ONNX external-data file smuggled next to a graph
    (bundle_copy / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(BundleError, match=r"unexpected file.*weights.bin"):
        verify_bundle(bundle_copy)


def test_missing_file_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "eval.onnx").unlink()
    with pytest.raises(BundleError, match=r"eval\.onnx is missing"):
        verify_bundle(bundle_copy)


def test_wrong_schema_is_refused(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["schema"] = "fmfl.bundle/99"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"schema 'fmfl.bundle/99' is not supported"):
        verify_bundle(bundle_copy)


def test_inspect_describes_split_and_signature(signed_bundle: Path, keys: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(signed_bundle), "--trust-key", str(keys[1])]) == 0
    out = capsys.readouterr().out
    assert "split     encoder: frozen stages 0..1 of 4" in out
    assert "signature valid" in out
    assert "trainable 8,643 parameters" in out
    assert re.search(r"graph     train_step.onnx: train step: loss, output, gradients; opset ai.onnx (\d+); "
                     r"(\d+) nodes", out)
    assert re.search(r"graph     eval.onnx: eval: loss, output; opset ai.onnx \d+; \d+ nodes", out)
    assert "gate      gradients checked against torch at batch [4, 3]" in out


def test_a_schema_1_bundle_is_refused_with_a_re_export_hint(bundle_copy: Path) -> None:
    # A bundle from the onnxruntime-training era, as an fmfl 0.1 device would have it (its id made valid again)
    raw = json.loads((bundle_copy / "manifest.json").read_text())
    raw["schema"] = "fmfl.bundle/1"
    (bundle_copy / "manifest.json").write_text(json.dumps(raw))
    before = {p.name: p.read_bytes() for p in bundle_copy.iterdir()}
    with pytest.raises(BundleError, match=r"schema 'fmfl.bundle/1'.*onnxruntime-training.*re-export"):
        verify_bundle(bundle_copy)
    assert {p.name: p.read_bytes() for p in bundle_copy.iterdir()} == before
