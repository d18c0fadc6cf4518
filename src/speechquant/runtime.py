"""Opening ONNX models: the one ONNX Runtime session factory, and ``open_model``, free of PyTorch.

Evaluation and `speechquant transcribe` must run where PyTorch is not installed, so this
lives apart from ``quantize.py`` (whose QAT recipe needs torch). A model file says which
runtime it is made for in its ``metadata_props`` (``runtime``, ``inference_precision``):
the ``bf16`` variant is the fp32 graph that OpenVINO runs in bfloat16, so evaluation and
``transcribe`` take the runtime from the file unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxruntime as ort

from speechquant.errors import UserError
from speechquant.modelcard import ModelCard
from speechquant.openvino_session import PRECISIONS, OpenVinoSession
from speechquant.store import Store

RUNTIMES = ("onnxruntime", "openvino")
RUNTIME_KEY, PRECISION_KEY = "runtime", "inference_precision"  # metadata_props naming how a file runs


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


@dataclass(frozen=True)
class RunsIn:
    """The runtime a model file is made for, and the precision OpenVINO runs its float layers in."""

    runtime: str = "onnxruntime"
    precision: str = "f32"

    @classmethod
    def of_metadata(cls, props: dict[str, str], name: str) -> RunsIn:
        runs_in = cls(props.get(RUNTIME_KEY, cls.runtime), props.get(PRECISION_KEY, cls.precision))
        if runs_in.runtime not in RUNTIMES or runs_in.precision not in PRECISIONS:
            raise UserError(
                f"{name}: unknown runtime {runs_in.runtime!r} or precision {runs_in.precision!r} in its metadata"
            )
        return runs_in

    def metadata(self) -> dict[str, str]:
        return {RUNTIME_KEY: self.runtime, PRECISION_KEY: self.precision}


def runs_in(path: Path) -> RunsIn:
    """What ``path``'s metadata says it runs in (ONNX Runtime at f32 when it says nothing)."""
    return RunsIn.of_metadata(_metadata(path), str(path))


@dataclass
class Model:
    """A speech model ready to run, with the card that says how to feed it and read it."""

    session: ort.InferenceSession | OpenVinoSession
    card: ModelCard
    path: Path
    runs_in: RunsIn = field(default_factory=RunsIn)

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


def open_model(path: Path, threads: int = 1, runtime: str | None = None, concurrent: int = 1) -> Model:
    """A speech model and its card, in the runtime its file names (or ``runtime``); refused
    unless its inputs and outputs are the card's. ``concurrent``: how many threads will call
    it at once (OpenVINO gives each its own stream; ONNX Runtime sessions need nothing)."""
    props = _metadata(path)
    how = RunsIn.of_metadata(props, str(path))
    if runtime is not None and runtime != how.runtime:
        how = RunsIn(runtime, how.precision if runtime == "openvino" else "f32")
    card = ModelCard.from_metadata(props, str(path))
    if how.runtime == "openvino":
        model = OpenVinoSession(path, threads, how.precision, concurrent)
        inputs, outputs = model.inputs(), model.outputs()
    else:
        model = session(path, threads=threads)
        inputs = {i.name: i.shape for i in model.get_inputs()}
        outputs = [(o.name, o.shape) for o in model.get_outputs()]
    _check_interface(path, card, inputs, outputs)
    return Model(model, card, Path(path), how)


def _metadata(path: Path) -> dict[str, str]:
    """A model file's ``metadata_props``, without its weights' bulk mattering (read once)."""
    if not Path(path).is_file():
        raise UserError(f"model {path} not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise UserError(f"{path} is not an ONNX model ({type(error).__name__}: {str(error)[:200]})") from None
    return {prop.key: prop.value for prop in model.metadata_props}


def _check_interface(path: Path, card: ModelCard, inputs: dict[str, list], outputs: list[tuple[str, list]]) -> None:
    n_mels, classes = card.features.n_mels, card.num_classes
    if set(inputs) != {"features", "lengths"} or len(inputs["features"]) != 3 or inputs["features"][2] != n_mels:
        raise UserError(f"{path}: expected inputs features (batch, frames, {n_mels}) and lengths, got {inputs}")
    got_classes = outputs[0][1][-1] if outputs and outputs[0][1] else None
    if len(outputs) < 2 or len(outputs[0][1]) != 3 or got_classes != classes:
        raise UserError(
            f"{path} outputs {got_classes} classes per frame; the vocabulary has {classes} "
            f"(expected log_probs (batch, frames, {classes}) and output_lengths, got {outputs})"
        )


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
