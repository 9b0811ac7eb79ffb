"""ONNX Runtime training artifacts (training, eval and optimizer graphs, checkpoint) for the suffix.

The loss is computed inside the exported graph (cross-entropy or the symmetric contrastive loss), so
``generate_artifacts`` gets ``loss=None`` and passes the ``loss`` output through; the task output
(``logits``) stays a graph output for local evaluation. Only ``requires_grad`` parameters go into
the checkpoint: frozen weights remain plain initializers of the graphs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from fmfl.errors import FmflError

log = logging.getLogger(__name__)


def generate_training_artifacts(
    model: onnx.ModelProto, requires_grad: list[str], output_name: str, optimizer: str, out: Path
) -> None:
    import onnxruntime
    from onnxruntime.training import artifacts

    onnxruntime.set_default_logger_severity(3)  # its INFO logs print one line per graph transformer

    optim = {"adamw": artifacts.OptimType.AdamW, "sgd": artifacts.OptimType.SGD}[optimizer]
    try:
        artifacts.generate_artifacts(
            model,
            requires_grad=requires_grad,
            frozen_params=[],
            loss=None,
            loss_input_names=["loss"],
            additional_output_names=[output_name],
            optimizer=optim,
            artifact_directory=str(out),
        )
    except Exception as exc:  # ORT raises bare RuntimeErrors from C++; give the user the context
        raise FmflError(f"ONNX Runtime could not build the training graph: {exc}") from exc
