"""The device's local data: readers for each format, manifest-driven preprocessing, and the typed container.

Torch-free: numpy, Pillow and ``tokenizers`` only. Entry point: :func:`read_local_data`, which detects the
format of a path (image folder, IDX files, ``.npz``, text JSONL/CSV, image-caption JSONL), checks the labels
against the manifest's and returns a :class:`LocalDataset` of model-ready arrays.
"""

from fmfl.edge_client.data.dataset import Batch, LocalDataset
from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.fingerprint import data_fingerprint
from fmfl.edge_client.data.preprocessing import ImagePreprocessing, Preprocessing, TextPreprocessing
from fmfl.edge_client.data.reader import DataFormat, detect_format, read_local_data
from fmfl.edge_client.data.writers import write_caption_jsonl, write_image_folder, write_npz, write_text_jsonl

__all__ = [
    "Batch",
    "DataError",
    "DataFormat",
    "ImagePreprocessing",
    "LocalDataset",
    "Preprocessing",
    "TextPreprocessing",
    "data_fingerprint",
    "detect_format",
    "read_local_data",
    "write_caption_jsonl",
    "write_image_folder",
    "write_npz",
    "write_text_jsonl",
]
