"""The bundle: the files a device needs to fine-tune one model, their manifest and its signature.

Torch-free and onnx-free: the edge client and the aggregator verify bundles with this package before
any ONNX file is parsed.
"""

from fmfl.bundle.manifest import MANIFEST_FILE, SCHEMA, SIGNATURE_FILE, Manifest, TrainableTensor
from fmfl.bundle.verify import BundleError, verify_bundle

__all__ = [
    "MANIFEST_FILE",
    "SCHEMA",
    "SIGNATURE_FILE",
    "BundleError",
    "Manifest",
    "TrainableTensor",
    "verify_bundle",
]
