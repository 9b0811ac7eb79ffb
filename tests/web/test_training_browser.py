"""The device core in headless Chromium (js/device/ through tests/web/pages/training_probe.*): the browser's
delta after one local round equals the Python device's for the same bundle, shard, seed and config; a tampered
or wrongly signed bundle is refused before any onnxruntime session exists; picked files that are not images and
labels outside the manifest are refused with the file or label named; verified files come from the cache.

Tolerance of the delta check, and why: preprocessing (Pillow-exact resize), batch order (numpy-exact
permutation) and the optimizer (bit-identical float32 arithmetic, tests/web/test_training_optimizer.py) are
exact, but the graphs run on two builds of onnxruntime (native MLAS kernels vs wasm SIMD) whose matrix products
sum in different orders: features and gradients differ in the last bits (about 1e-7 relative). With SGD that
carries straight into the delta (checked with rtol 1e-4, atol 1e-6). AdamW divides each gradient by its own
running magnitude, so where a gradient is mathematically zero and only rounding noise remains (the attention key
bias: softmax ignores a shift common to a row's scores) it turns noise into steps of order lr in either runtime;
those tensors (largest first-step gradient below AdamW's eps) are only checked to stay within lr * steps, every
other tensor within atol 1e-5 (deltas are of order 0.1 here).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmfl.bundle.manifest import Manifest
from fmfl.edge_client.device import DeviceConfig, EdgeDevice
from fmfl.edge_client.local_training import LocalTrainConfig, local_round

pytestmark = pytest.mark.web

PAGES = Path(__file__).parent / "pages"
READY = "window.probe && window.probe.ready"
TASK = {"round": 3, "seed": 41, "batch_size": 32, "lr": 0.01, "local_epochs": 1, "local_steps": None}


@pytest.fixture(scope="module")
def sgd_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from support.real_data import export_tiny_vit

    return export_tiny_vit(tmp_path_factory.mktemp("vit-sgd"), optimizer="sgd", lr=0.05)


def probe_site(make_site: Any, bundle: Path, name: str = "site") -> Any:
    site = make_site(bundle, "ws://127.0.0.1:9", name=name)
    for page in ("training_probe.html", "training_probe.js"):
        shutil.copy(PAGES / page, site.root / page)
    return site


def python_round(bundle: Path, shard: Path, task: dict[str, Any]) -> tuple[Any, Manifest, list[np.ndarray]]:
    """The Python device on the same terms (EdgeDevice: verify, read, features, split; local_round), and the
    gradients of its first train step."""
    with tempfile.TemporaryDirectory() as state:
        dev = EdgeDevice(DeviceConfig(bundle=bundle, data=shard, state_dir=Path(state), client_id="py"))
        cfg = LocalTrainConfig(batch_size=task["batch_size"], lr=task["lr"], local_epochs=task["local_epochs"],
                               local_steps=task["local_steps"], seed=task["seed"] + task["round"])
        result = local_round(dev.trainer, dev.initial, dev.train_data, cfg, None)
        first = next(dev.train_data.batches(cfg.batch_size, seed=cfg.seed * 1000, shuffle=True))
        feeds = {n: np.ascontiguousarray(v) for n, v in first.inputs.items()}
        feeds["labels"] = first.labels
        dev.trainer.set_weights(dev.initial)
        grads = dev.trainer.step_session.run(dev.trainer.grad_names, dev.trainer._feed(feeds))
        return result, dev.manifest, grads


def browser_round(browser: Any, url: str, shard: Path, task: dict[str, Any]) -> dict[str, Any]:
    report = browser.run_page(url + "training_probe.html", upload={"#npz": [shard]}, wait=READY,
                              result=f"probe.round({json.dumps(task)})")
    assert report["ok"], report
    result: dict[str, Any] = report["result"]
    assert "error" not in result, result
    return result


def test_browser_delta_equals_python_device_sgd(browser: Any, make_site: Any, sgd_bundle: Path,
                                                 fmnist_shard: Path) -> None:
    site = probe_site(make_site, sgd_bundle)
    task = {**TASK, "lr": 0.05}
    web = browser_round(browser, site.url, fmnist_shard, task)
    py, _, _ = python_round(sgd_bundle, fmnist_shard, task)
    assert (web["stats"]["steps"], web["stats"]["samples"]) == (py.stats.steps, py.stats.samples)
    assert web["numSamples"] == 480
    assert web["stats"]["mean_loss"] == pytest.approx(py.stats.mean_loss, rel=1e-5)
    delta = np.frombuffer(base64.b64decode(web["delta"]), dtype="<f4")
    assert np.abs(py.delta).max() > 1e-3  # the round really moved the weights
    np.testing.assert_allclose(delta, py.delta, rtol=1e-4, atol=1e-6)


def test_browser_delta_equals_python_device_adamw(browser: Any, make_site: Any, tiny_vit_bundle: Path,
                                                   fmnist_shard: Path) -> None:
    site = probe_site(make_site, tiny_vit_bundle)
    web = browser_round(browser, site.url, fmnist_shard, TASK)
    py, manifest, grads = python_round(tiny_vit_bundle, fmnist_shard, TASK)
    assert (web["stats"]["steps"], web["stats"]["samples"]) == (py.stats.steps, py.stats.samples) == (15, 480)
    assert web["stats"]["mean_loss"] == pytest.approx(py.stats.mean_loss, rel=1e-5)
    assert web["metrics"]["eval_samples"] == 120
    delta = np.frombuffer(base64.b64decode(web["delta"]), dtype="<f4")
    eps = float(manifest.optimizer["eps"])
    noise = []
    for tensor, grad in zip(manifest.trainable, grads, strict=True):
        part = slice(tensor.offset, tensor.offset + tensor.size)
        if np.abs(grad).max() < eps:
            noise.append(tensor.name)
            bound = TASK["lr"] * py.stats.steps
            assert np.abs(delta[part]).max() <= bound
            assert np.abs(py.delta[part]).max() <= bound
        else:
            np.testing.assert_allclose(delta[part], py.delta[part], rtol=0, atol=1e-5, err_msg=tensor.name)
    assert [n.rsplit(".", 3)[-3:] for n in noise] == [["attention", "key", "bias"]]


def test_tampered_file_is_refused_before_any_session(browser: Any, make_site: Any, tiny_vit_bundle: Path,
                                                      fmnist_shard: Path) -> None:
    site = probe_site(make_site, tiny_vit_bundle)
    graph = site.root / "bundle" / "train_step.onnx"
    raw = bytearray(graph.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    graph.write_bytes(bytes(raw))
    report = browser.run_page(site.url + "training_probe.html", upload={"#npz": [fmnist_shard]}, wait=READY,
                              result=f"probe.round({json.dumps(TASK)})")
    assert report["result"] == {
        "error": "BundleError", "sessionsCreated": 0,
        "message": "bundle: train_step.onnx does not match its sha256 in the manifest (tampered or corrupt); "
                   "nothing of the bundle was used"}


def test_signature_is_checked_with_the_configured_trust_key(browser: Any, make_site: Any, tiny_vit_bundle: Path,
                                                             tmp_path: Path) -> None:
    from fmfl.bundle.signing import generate_keypair, load_private_key, sign
    from fmfl.web.site import raw_public_key_b64

    bundle = shutil.copytree(tiny_vit_bundle, tmp_path / "signed-bundle")
    private, public = generate_keypair(tmp_path / "keys" / "signer")
    _, other = generate_keypair(tmp_path / "keys" / "other")
    (bundle / "manifest.sig").write_bytes(sign(load_private_key(private), (bundle / "manifest.json").read_bytes()))
    unsigned = probe_site(make_site, tiny_vit_bundle, "unsigned")
    signed = probe_site(make_site, bundle, "signed")
    calls = {"good": (signed, raw_public_key_b64(public)), "wrong_key": (signed, raw_public_key_b64(other)),
             "unsigned": (unsigned, raw_public_key_b64(public))}
    results = {}
    for name, (site, key) in calls.items():
        report = browser.run_page(site.url + "training_probe.html", wait=READY,
                                  result=f"probe.load({{trustKey: {json.dumps(key)}}})")
        results[name] = report["result"]
    assert results["good"]["bundleId"] == json.loads((bundle / "manifest.json").read_text())["bundle_id"]
    assert results["wrong_key"] == {"error": "BundleError", "sessionsCreated": 0, "message":
                                    "bundle: manifest.sig does not verify with the configured trust key (manifest.json "
                                    "was changed or the bundle was signed with another key)"}
    assert results["unsigned"] == {"error": "BundleError", "sessionsCreated": 0, "message":
                                   "bundle is unsigned (manifest.sig missing) but a trust key is configured"}


def test_second_load_takes_every_file_from_the_cache(browser: Any, make_site: Any, tiny_vit_bundle: Path) -> None:
    site = probe_site(make_site, tiny_vit_bundle)
    report = browser.run_page(site.url + "training_probe.html", wait=READY,
                              result="(async () => [await probe.load({cacheName: 'c1'}), "
                                     "await probe.load({cacheName: 'c1'})])()")
    first, second = report["result"]
    files = json.loads((tiny_vit_bundle / "manifest.json").read_text())["files"]
    manifest_size = (tiny_vit_bundle / "manifest.json").stat().st_size
    total = sum(meta["size"] for meta in files.values())
    assert first["stats"]["bytesDownloaded"] == manifest_size + total
    assert first["stats"]["bytesFromCache"] == 0
    assert second["stats"]["bytesDownloaded"] == manifest_size
    assert second["stats"]["bytesFromCache"] == total


def test_picked_images_equal_python_and_bad_picks_are_refused(browser: Any, make_site: Any, tiny_vit_bundle: Path,
                                                              tmp_path: Path) -> None:
    from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
    from fmfl.edge_client.data import read_local_data, write_image_folder

    data = load_fashion_mnist("train")
    keep = np.flatnonzero(np.isin(data.labels, [1, 2, 3]))[:12]  # class names that can be folder names
    folder = write_image_folder(tmp_path / "pics", data.images[keep], data.labels[keep], FASHION_MNIST_CLASSES)
    manifest = Manifest.from_json((tiny_vit_bundle / "manifest.json").read_bytes())
    want = read_local_data(folder, manifest.preprocessing, manifest.labels)
    files = sorted(folder.rglob("*.png"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    site = probe_site(make_site, tiny_vit_bundle)
    url = site.url + "training_probe.html"
    picked = browser.run_page(url, upload={"#images": files}, wait=READY,
                              result="probe.readData({kind: 'images', label: 'Trouser'})")["result"]
    assert picked["n"] == 12
    assert picked["labels"] == [1] * 12
    assert picked["shape"] == [12, 3, 32, 32]
    # Same pixels as the Python device (PNG decodes exactly; Pillow-exact resize 28 -> 32; same normalisation).
    # Python reads class folder by class folder; a flat pick is read in file name order.
    first = np.array(picked["pixels"], dtype=np.float32)[: 3 * 32 * 32]
    same_file = sorted(files).index(min(files, key=lambda f: f.name))
    assert np.array_equal(first, want.inputs["pixel_values"][same_file].ravel())
    not_image = browser.run_page(url, upload={"#images": [files[0], notes]}, wait=READY,
                                 result="probe.readData({kind: 'images', label: 'Trouser'})")["result"]
    assert not_image["error"] == "DataError"
    assert not_image["message"].startswith("notes.txt: not an image")
    unknown = browser.run_page(url, upload={"#images": files[:2]}, wait=READY,
                               result="probe.readData({kind: 'images', label: 'Dog'})")["result"]
    assert unknown["error"] == "DataError"
    assert 'label "Dog" is not one of the model\'s labels' in unknown["message"]


def test_picked_folder_labels_come_from_class_folders_as_in_python(browser: Any, make_site: Any,
                                                                    tiny_vit_bundle: Path, tmp_path: Path) -> None:
    from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
    from fmfl.edge_client.data import read_local_data, write_image_folder

    data = load_fashion_mnist("train")
    keep = np.flatnonzero(np.isin(data.labels, [1, 2, 3]))[:9]
    folder = write_image_folder(tmp_path / "pics", data.images[keep], data.labels[keep], FASHION_MNIST_CLASSES)
    (folder / "notes.txt").write_text("skipped: not an image suffix, as the Python reader skips it")
    manifest = Manifest.from_json((tiny_vit_bundle / "manifest.json").read_bytes())
    want = read_local_data(folder, manifest.preprocessing, manifest.labels)
    site = probe_site(make_site, tiny_vit_bundle)
    url = site.url + "training_probe.html"
    got = browser.run_page(url, upload={"#folder": [folder]}, wait=READY,
                           result="probe.readData({kind: 'folder'})")["result"]
    assert want.labels is not None
    assert got["labels"] == want.labels.tolist()
    assert got["n"] == 9
    assert np.array_equal(np.array(got["pixels"], dtype=np.float32)[: 3 * 32 * 32],
                          want.inputs["pixel_values"][0].ravel())
    shutil.copytree(folder / "Trouser", folder / "Dog")
    unknown = browser.run_page(url, upload={"#folder": [folder]}, wait=READY,
                               result="probe.readData({kind: 'folder'})")["result"]
    assert unknown["error"] == "DataError"
    assert unknown["message"].startswith('pics/Dog/: label "Dog" is not one of the model\'s labels (T-shirt/top')


def test_graph_not_matching_the_manifest_is_refused(browser: Any, make_site: Any, tiny_vit_bundle: Path,
                                                     fmnist_shard: Path, tmp_path: Path) -> None:
    from support.bundle_edit import edited_bundle

    def rename_gradient(raw: dict[str, Any], _folder: Path) -> None:
        raw["graph"]["train_step"]["gradients"][0] = "bogus.grad"

    bundle = edited_bundle(tiny_vit_bundle, tmp_path / "edited", rename_gradient)
    site = probe_site(make_site, bundle)
    report = browser.run_page(site.url + "training_probe.html", upload={"#npz": [fmnist_shard]}, wait=READY,
                              result=f"probe.round({json.dumps(TASK)})")
    result = report["result"]
    assert result["error"] == "GraphMismatch"
    assert result["message"].startswith("train_step.onnx does not match the manifest: inputs")
    assert "bogus.grad" in result["message"]
    assert result["message"].endswith("the bundle is inconsistent, re-export it")


def test_non_finite_gradient_is_refused_and_changes_nothing(browser: Any, make_site: Any,
                                                             tiny_vit_bundle: Path) -> None:
    site = probe_site(make_site, tiny_vit_bundle)
    result = browser.run_page(site.url + "training_probe.html", wait=READY, result="probe.nonFinite()")["result"]
    assert result["error"] == "NonFiniteGradient"
    assert result["message"].startswith("local training produced a non-finite loss (NaN) or gradient (in ")
    assert result["message"].endswith("the step was not applied: lower the learning rate or check the local data")
    assert result["unchanged"] is True
    assert result["optimizerSteps"] == 0
