"""Public data sets for the demo and the tests, read with numpy and the standard library only.

- :mod:`~fmfl.datasets.fashion_mnist`: Fashion-MNIST images (Debian ``dataset-fashion-mnist`` or download);
- :mod:`~fmfl.datasets.wordnet`: WordNet 3.0 noun glosses by lexicographer category (Debian ``wordnet-base``);
- :mod:`~fmfl.datasets.partition`: Dirichlet label-skew partitioning across clients;
- :mod:`~fmfl.datasets.captions`: captions and zero-shot prompts for Fashion-MNIST classes;
- :mod:`~fmfl.datasets.idx`: the IDX file format.
"""

from fmfl.datasets.captions import (
    CAPTION_TEMPLATES,
    FASHION_MNIST_CAPTION_NAMES,
    caption_labels,
    zero_shot_prompts,
)
from fmfl.datasets.errors import DatasetCorrupt, DatasetUnavailable
from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES, FashionMnist, load_fashion_mnist
from fmfl.datasets.idx import IdxFormatError, read_idx, write_idx
from fmfl.datasets.partition import dirichlet_partition
from fmfl.datasets.wordnet import LEXNAMES, WordnetGlosses, load_wordnet_glosses, wordnet_category_counts

__all__ = [
    "CAPTION_TEMPLATES",
    "FASHION_MNIST_CAPTION_NAMES",
    "FASHION_MNIST_CLASSES",
    "LEXNAMES",
    "DatasetCorrupt",
    "DatasetUnavailable",
    "FashionMnist",
    "IdxFormatError",
    "WordnetGlosses",
    "caption_labels",
    "dirichlet_partition",
    "load_fashion_mnist",
    "load_wordnet_glosses",
    "read_idx",
    "wordnet_category_counts",
    "write_idx",
    "zero_shot_prompts",
]
