"""PyTorch checkpoint to ONNX: batch norm folded into the convs, dropout gone.

Conv nodes are renamed ``conv0`` ... ``conv10`` after their weights, whatever names the
exporter gave them, so that ``quant.exclude`` and every report speak of the same layers.
The graph takes ``features`` (batch, frames, n_mels) and ``lengths`` (batch,) and returns
``log_probs`` (batch, frames', classes) and ``output_lengths``, with dynamic batch and
time axes.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from speechquant.ctc import LAYER_NAMES, N_LAYERS
from speechquant.fileio import atomic_path
from speechquant.layers import layer_nodes, node_name
from speechquant.model import Wav2Letter
from speechquant.runtime import session
from speechquant.store import Store, pad_rows

OPSET = 17
INPUTS = ("features", "lengths")
OUTPUTS = ("log_probs", "output_lengths")
DYNAMIC_AXES = {
    "features": {0: "batch", 1: "frames"},
    "lengths": {0: "batch"},
    "log_probs": {0: "batch", 1: "output_frames"},
    "output_lengths": {0: "batch"},
}


def fold_batch_norm(model: Wav2Letter) -> Wav2Letter:
    """An equivalent eval-mode model without batch norm: each norm scaled into its conv.

    A model with neither batch norm nor dropout is copied as it is: a compressed one may hold
    low-rank layers."""
    if not model.config.batch_norm and model.config.dropout == 0:
        return copy.deepcopy(model).eval()
    config = dataclasses.replace(model.config, batch_norm=False, dropout=0.0)
    folded = Wav2Letter(config).eval()
    state = {key: value for key, value in model.state_dict().items() if key.startswith("input_")}
    for index in range(N_LAYERS):
        conv = getattr(model, f"conv{index}")
        weight, bias = conv.weight.detach().double(), conv.bias.detach().double()
        if model.config.batch_norm and index < N_LAYERS - 1:
            norm = getattr(model, f"norm{index}")
            scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
            weight = weight * scale[:, None, None]
            bias = (bias - norm.running_mean.double()) * scale + norm.bias.double()
        state[f"conv{index}.weight"] = weight.float()
        state[f"conv{index}.bias"] = bias.float()
    folded.load_state_dict(state)
    return folded


def name_conv_nodes(graph: onnx.GraphProto) -> None:
    """Rename every Conv node after its weight (``conv3.weight`` -> conv3; a low-rank layer's
    ``conv8.taps.weight`` -> conv8_taps): ``layers.layer_nodes`` then finds every layer."""
    for node in graph.node:
        if node.op_type == "Conv":
            node.name = node_name(node.input[1])
    found = list(layer_nodes(graph))
    if found != list(LAYER_NAMES):
        raise RuntimeError(f"exported graph has conv layers {found}, expected {list(LAYER_NAMES)}")


def name_dynamic_axes(graph: onnx.GraphProto) -> None:
    """Call the input's dynamic axes ``batch`` and ``frames`` wherever they appear (the exporter
    names them s0, s1, ... when given ``dynamic_shapes``), as a runtime or a reader expects."""
    axes = graph.input[0].type.tensor_type.shape.dim
    names = {axes[0].dim_param: "batch", axes[1].dim_param: "frames"}
    symbol = re.compile(r"\b(" + "|".join(re.escape(name) for name in names) + r")\b")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = symbol.sub(lambda found: names[found.group(0)], dim.dim_param)


def export(model: Wav2Letter, path: Path, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """Write the ONNX model to ``path`` (atomically) and return it, checked.

    ``metadata`` goes to the model's ``metadata_props``: what a runtime must know to
    feed the model as training did (``modelcard.ModelCard.metadata``).
    """
    folded = fold_batch_norm(model)
    example = (torch.zeros(2, 300, model.config.n_mels), torch.tensor([300, 200]))
    with atomic_path(path) as temporary, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            folded,
            example,
            kwargs={"zero_all_padding": False},  # the same log-probs, two fewer masks (Wav2Letter.run_layers)
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_shapes={**{name: DYNAMIC_AXES[name] for name in INPUTS}, "zero_all_padding": None},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
        proto = program.model_proto
        name_conv_nodes(proto.graph)
        name_dynamic_axes(proto.graph)
        onnx.helper.set_model_props(proto, metadata or {})
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, temporary)
    return proto


def parity(model: Wav2Letter, path: Path, store: Store, utterances: int) -> tuple[float, int]:
    """Largest |log-prob| difference between the ONNX file and the PyTorch model on a padded batch
    of the store's first utterances, and how many were compared."""
    rows = [np.asarray(store[i], dtype=np.float32) for i in range(min(utterances, len(store)))]
    features, lengths = pad_rows(rows)
    onnx_log_probs = session(path).run(["log_probs"], {"features": features, "lengths": lengths})[0]
    with torch.no_grad():
        torch_log_probs = model(torch.from_numpy(features), torch.from_numpy(lengths))[0].numpy()
    return float(np.abs(onnx_log_probs - torch_log_probs).max()), len(rows)
