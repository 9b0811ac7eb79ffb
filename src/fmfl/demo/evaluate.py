"""Central evaluation of global model versions on the held-out test set (the demo's referee).

Uses the same torch-free path as a device: the bundle's preprocessing, the frozen prefix (features
computed once and cached), then the suffix with the version's trainable weights. Classification is
scored with the eval graph; the dual encoder by zero-shot classification (Radford et al. 2021): each
image is assigned the class whose prompt embeddings (averaged over templates) it is closest to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fmfl.bundle import Manifest
from fmfl.datasets.captions import CAPTION_TEMPLATES, render
from fmfl.edge_client.data import LocalDataset
from fmfl.edge_client.data.images import fit_image_array, normalize
from fmfl.edge_client.data.preprocessing import Preprocessing
from fmfl.edge_client.data.text import tokenize
from fmfl.edge_client.device import resolved_preprocessing
from fmfl.edge_client.features import compute_features
from fmfl.edge_client.local_training import evaluate
from fmfl.edge_client.runtime import CPU, onnxruntime_module, session_options
from fmfl.edge_client.trainer import Trainer


def image_inputs(images: np.ndarray, pre: Preprocessing) -> np.ndarray:
    assert pre.image is not None
    return normalize(fit_image_array(images, pre.image, "test set"), pre.image)


class Evaluator:
    """Scores flat trainable-weight vectors of one bundle on a fixed test set."""

    def __init__(self, bundle: Path, manifest: Manifest, test_x: Any, test_y: np.ndarray,
                 class_names: tuple[str, ...], threads: int | None = None) -> None:
        self.bundle, self.manifest, self.test_y = bundle, manifest, np.asarray(test_y, dtype=np.int64)
        self.pre = Preprocessing.from_manifest(resolved_preprocessing(bundle, manifest))
        self.threads = threads
        if isinstance(test_x, LocalDataset):  # a user's test set, already read with the bundle's preprocessing
            assert test_x.labels is not None
            self.test_y = test_x.labels
        if manifest.task["kind"] == "classify":
            raw = test_x.inputs if isinstance(test_x, LocalDataset) else self._raw_inputs(test_x)
            data = LocalDataset(inputs=raw, labels=self.test_y, label_names=tuple(manifest.labels or ()))
            features = compute_features(bundle, manifest, data, threads) if manifest.has_prefix else {}
            names = manifest.graph["train_inputs"]
            self.data = LocalDataset(inputs={n: features[n] if n in features else raw[n] for n in names},
                                     labels=self.test_y)
            self.trainer = Trainer(bundle, manifest, threads)
        else:
            self._prepare_zero_shot(test_x, class_names)

    def _raw_inputs(self, test_x: Any) -> dict[str, np.ndarray]:
        if self.pre.image is not None and self.pre.text is None:
            return {self.pre.image.input_name: image_inputs(np.asarray(test_x), self.pre)}
        assert self.pre.text is not None
        return dict(tokenize(list(test_x), self.pre.text))

    def _prepare_zero_shot(self, images: Any, class_names: tuple[str, ...]) -> None:
        assert self.pre.image is not None and self.pre.text is not None
        prompts = [render(t, name) for name in class_names for t in CAPTION_TEMPLATES]
        self.num_classes, self.num_templates = len(class_names), len(CAPTION_TEMPLATES)
        pixels = image_inputs(np.asarray(images), self.pre)
        text = tokenize(prompts, self.pre.text)
        # The prefix takes both towers' inputs at once; run it on (image, prompt) pairs padded to equal length.
        n = max(len(pixels), len(prompts))
        feed = LocalDataset(inputs={"pixel_values": _pad(pixels, n), **{k: _pad(v, n) for k, v in text.items()}},
                            labels=None)
        features = compute_features(self.bundle, self.manifest, feed, self.threads)
        self.image_features = {k: v[: len(pixels)] for k, v in features.items() if k.startswith("image.")}
        self.text_features = {k: v[: len(prompts)] for k, v in features.items() if k.startswith("text.")}

    def accuracy(self, weights: np.ndarray) -> float:
        if self.manifest.task["kind"] == "classify":
            self.trainer.set_weights(weights)
            return float(evaluate(self.trainer, self.data, batch_size=256)["eval_accuracy"])
        return self._zero_shot(weights)

    def _zero_shot(self, weights: np.ndarray) -> float:
        ort = onnxruntime_module()
        options = session_options(self.threads)
        keep = []
        for t in self.manifest.trainable:
            value = ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(weights[t.offset : t.offset + t.size].reshape(t.shape)))
            keep.append(value)  # the session reads the buffer: keep it alive
            options.add_initializer(t.name, value)
        session = ort.InferenceSession(str(self.bundle / "inference.onnx"), options,
                                       providers=[CPU])
        names = [i.name for i in session.get_inputs()]
        n_prompts = self.num_classes * self.num_templates
        n_images = len(next(iter(self.image_features.values())))
        n = max(n_images, n_prompts)
        feed = {**{k: _pad(v, n) for k, v in self.image_features.items()},
                **{k: _pad(v, n) for k, v in self.text_features.items()}}
        image_embeds, text_embeds = session.run(["image_embeds", "text_embeds"], {k: feed[k] for k in names})
        classes = text_embeds[:n_prompts].reshape(self.num_classes, self.num_templates, -1).mean(axis=1)
        classes /= np.linalg.norm(classes, axis=1, keepdims=True)
        predicted = (image_embeds[:n_images] @ classes.T).argmax(axis=1)
        return float((predicted == self.test_y).mean())


def _pad(array: np.ndarray, n: int) -> np.ndarray:
    if len(array) >= n:
        return array
    reps = np.repeat(array[-1:], n - len(array), axis=0)
    return np.concatenate([array, reps])
