"""Opening ONNX models with ONNX Runtime: the one session factory, free of PyTorch.

Evaluation and `speechquant transcribe` must run where PyTorch is not installed, so this
lives apart from ``quantize.py`` (whose QAT recipe needs torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from speechquant.errors import UserError
from speechquant.modelcard import ModelCard
from speechquant.store import Store


def session(
    path: Path,
    optimized_path: Path | None = None,
    threads: int = 1,
    basic_optimizations: bool = False,
    spinning: bool = True,
) -> ort.InferenceSession:
    """The one way a CPU session is made; ``optimized_path`` receives the graph ONNX Runtime will run.

    ``basic_optimizations`` keeps the graph to what every execution provider reads (no
    fused CPU kernels), for a file that is saved rather than run. ``spinning=False`` lets the
    pool's threads sleep between runs instead of spinning: where a process holds several
    sessions (the benchmark), spinning idle pools steal the cores the timed one needs.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if basic_optimizations:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise UserError(f"ONNX Runtime cannot load {path}: {str(error)[:300]}") from None


@dataclass
class Model:
    """A speech model ready to run, with the card that says how to feed it and read it."""

    session: ort.InferenceSession
    card: ModelCard
    path: Path

    def check_features(self, store: Store) -> None:
        """Refuse a feature store computed otherwise than the model's training features."""
        features, meta = self.card.features, store.meta
        given = (meta.get("n_mels"), meta.get("hop_ms"), meta.get("window_ms"))
        if given != (features.n_mels, features.hop_ms, features.window_ms):
            raise UserError(
                f"{self.path} reads {features.n_mels} mel bands every {features.hop_ms:g} ms "
                f"({features.window_ms:g} ms windows), but {store.path} holds {given[0]} bands every {given[1]} ms "
                f"({given[2]} ms windows): evaluate with the features it was trained on"
            )


def open_model(path: Path, threads: int = 1) -> Model:
    """A speech model and its card; refused unless its inputs and outputs are the card's."""
    model = session(path, threads=threads)
    card = ModelCard.from_metadata(model.get_modelmeta().custom_metadata_map, str(path))
    n_mels, classes = card.features.n_mels, card.num_classes
    inputs = {i.name: i.shape for i in model.get_inputs()}
    if set(inputs) != {"features", "lengths"} or len(inputs["features"]) != 3 or inputs["features"][2] != n_mels:
        raise UserError(f"{path}: expected inputs features (batch, frames, {n_mels}) and lengths, got {inputs}")
    outputs = model.get_outputs()
    got_classes = outputs[0].shape[-1] if outputs and outputs[0].shape else None
    if len(outputs) < 2 or len(outputs[0].shape) != 3 or got_classes != classes:
        got = [(o.name, o.shape) for o in outputs]
        raise UserError(
            f"{path} outputs {got_classes} classes per frame; the vocabulary has {classes} "
            f"(expected log_probs (batch, frames, {classes}) and output_lengths, got {got})"
        )
    return Model(model, card, Path(path))


def load_onnx(path: Path) -> onnx.ModelProto:
    """An ONNX model from disk, or one clear error if it is missing or corrupt."""
    if not Path(path).is_file():
        raise UserError(f"model {path} not found: run the export stage first (dvc repro export)")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:
        raise UserError(f"{path} is not a valid ONNX model ({type(error).__name__}: {str(error)[:200]})") from None
    return model
