"""Captions for Fashion-MNIST images and prompts for zero-shot classification with a dual encoder.

Following CLIP (Radford et al. 2021, section 3.1.4): a class is described by several templates ("a photo of
a {}.") and zero-shot classification compares an image with the mean embedding of each class's prompts.
Training captions draw from the same templates, so that the prompts used for evaluation are in the
distribution the text tower was fine-tuned on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FASHION_MNIST_CAPTION_NAMES: tuple[str, ...] = (
    "t-shirt",
    "pair of trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
"""Natural-language names of the Fashion-MNIST classes, in label order ("T-shirt/top" reads badly in text)."""

CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of {a} {name}.",
    "a black and white photo of {a} {name}.",
    "a low resolution photo of {a} {name}.",
    "a grayscale picture of {a} {name}.",
    "a small image of {a} {name}.",
    "a product photo of {a} {name}.",
    "{a} {name}, an item of fashion.",
    "a centered photo of {a} {name} on a black background.",
)
"""Templates with ``{a}`` (the article, "a" or "an") and ``{name}``."""


def _article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def render(template: str, name: str) -> str:
    """Fill one template with a class name and its article."""
    return template.format(a=_article(name), name=name)


def caption_labels(
    labels: npt.ArrayLike,
    seed: int,
    class_names: Sequence[str] = FASHION_MNIST_CAPTION_NAMES,
    templates: Sequence[str] = CAPTION_TEMPLATES,
) -> list[str]:
    """One caption per label: the class name in a template drawn at random (deterministic in ``seed``).

    Raises:
        ValueError: a label outside ``range(len(class_names))`` or no templates.
    """
    label_array = np.asarray(labels, dtype=np.int64)
    if not templates:
        raise ValueError("at least one template is needed")
    if label_array.size and (label_array.min() < 0 or label_array.max() >= len(class_names)):
        raise ValueError(f"labels must be in 0..{len(class_names) - 1}")
    choices = np.random.default_rng(seed).integers(len(templates), size=label_array.size)
    return [render(templates[int(t)], class_names[int(y)]) for y, t in zip(label_array, choices, strict=True)]


def zero_shot_prompts(
    class_names: Sequence[str] = FASHION_MNIST_CAPTION_NAMES,
    templates: Sequence[str] = CAPTION_TEMPLATES,
) -> list[list[str]]:
    """Every template filled with every class: ``prompts[c]`` lists class ``c``'s prompts (for ensembling)."""
    if not templates:
        raise ValueError("at least one template is needed")
    return [[render(template, name) for template in templates] for name in class_names]
