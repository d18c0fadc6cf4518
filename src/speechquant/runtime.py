"""Opening ONNX models with ONNX Runtime: the one session factory, free of PyTorch.

Evaluation and `speechquant transcribe` must run where PyTorch is not installed, so this
lives apart from ``quantize.py`` (whose QAT recipe needs torch).
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from speechquant.audio import MelOptions
from speechquant.errors import UserError
from speechquant.text import NUM_CLASSES

N_MELS = MelOptions().n_mels  # the features every model reads
# Metadata key of the dtype the training features were stored in; a model without it
# (exported by an older version) was trained on the features stage's default, float16.
FEATURE_DTYPE = "feature_dtype"
DEFAULT_FEATURE_DTYPE = "float16"


def session(path: Path, optimized_path: Path | None = None, threads: int = 1) -> ort.InferenceSession:
    """A CPU session; ``optimized_path`` receives the graph ONNX Runtime will actually run."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise UserError(f"ONNX Runtime cannot load {path}: {str(error)[:300]}") from None


def open_model(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A session for a speech model, refused unless it reads (batch, frames, 40) and writes 35 classes."""
    model = session(path, threads=threads)
    inputs = {i.name: i.shape for i in model.get_inputs()}
    if set(inputs) != {"features", "lengths"} or len(inputs["features"]) != 3 or inputs["features"][2] != N_MELS:
        raise UserError(f"{path}: expected inputs features (batch, frames, {N_MELS}) and lengths, got {inputs}")
    outputs = model.get_outputs()
    classes = outputs[0].shape[-1] if outputs and outputs[0].shape else None
    if len(outputs) < 2 or len(outputs[0].shape) != 3 or classes != NUM_CLASSES:
        got = [(o.name, o.shape) for o in outputs]
        raise UserError(
            f"{path} outputs {classes} classes per frame; the vocabulary has {NUM_CLASSES} "
            f"(expected log_probs (batch, frames, {NUM_CLASSES}) and output_lengths, got {got})"
        )
    return model


def feature_dtype(model: ort.InferenceSession) -> str:
    """The dtype the model's training features had: runtime features are rounded to it."""
    return model.get_modelmeta().custom_metadata_map.get(FEATURE_DTYPE, DEFAULT_FEATURE_DTYPE)
