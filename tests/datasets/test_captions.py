"""Captions and zero-shot prompts for Fashion-MNIST."""

import numpy as np
import pytest

from fmfl.datasets import (
    CAPTION_TEMPLATES,
    FASHION_MNIST_CAPTION_NAMES,
    FASHION_MNIST_CLASSES,
    caption_labels,
    zero_shot_prompts,
)


def test_captions_name_the_class_with_its_article() -> None:
    labels = np.array([9, 0, 8])

    captions = caption_labels(labels, seed=0)

    assert "an ankle boot" in captions[0]
    assert "a t-shirt" in captions[1]
    assert "a bag" in captions[2]
    assert len(FASHION_MNIST_CAPTION_NAMES) == len(FASHION_MNIST_CLASSES)


def test_captions_are_deterministic_and_use_several_templates() -> None:
    labels = np.arange(200) % 10

    first = caption_labels(labels, seed=1)

    assert first == caption_labels(labels, seed=1)
    assert first != caption_labels(labels, seed=2)
    assert len({caption.replace(FASHION_MNIST_CAPTION_NAMES[0], "") for caption in first[::10]}) > 3


def test_zero_shot_prompts_cover_every_class_and_template() -> None:
    prompts = zero_shot_prompts()

    assert len(prompts) == 10
    assert all(len(p) == len(CAPTION_TEMPLATES) for p in prompts)
    assert prompts[3][0] == "a photo of a dress."
    assert zero_shot_prompts(["apple"], ["{a} {name}"]) == [["an apple"]]


def test_rejects_out_of_range_labels_and_no_templates() -> None:
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        caption_labels([10], seed=0)
    with pytest.raises(ValueError, match="template"):
        caption_labels([0], seed=0, templates=[])
