"""Which ONNX convolution nodes make up each of the model's layers.

A layer is one conv of the trained network (``conv0`` ... ``conv10``), but a compressed
model may run one as two: a low-rank ``conv8`` exports as the nodes ``conv8_taps`` and
``conv8_mix``. Reports, ``quant.exclude`` and the int8 checks all speak of layers, so each
reads a node's layer from the part of its name before the first underscore, which ONNX
Runtime's optimizer and quantizers keep (``conv8_mix_quant``).
"""

from __future__ import annotations

import onnx

from speechquant.ctc import LAYER_NAMES

CONV_OPS = ("Conv", "ConvInteger", "QLinearConv")


def node_name(weight: str) -> str:
    """A conv node's name from its weight's: ``conv3.weight`` -> ``conv3``, ``conv8.taps.weight`` -> ``conv8_taps``."""
    return weight.removesuffix(".weight").replace(".", "_")


def layer_of(node: str) -> str:
    """The layer a conv node belongs to: ``conv8_mix_quant`` -> ``conv8``."""
    return node.split("_")[0]


def layer_nodes(graph: onnx.GraphProto) -> dict[str, list[str]]:
    """Each layer's conv node names in graph order, the layers in network order; an error names
    any conv node that belongs to no layer."""
    nodes: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type in CONV_OPS:
            layer = layer_of(node.name)
            if layer not in LAYER_NAMES:
                raise ValueError(f"conv node {node.name!r} belongs to no layer ({', '.join(LAYER_NAMES)})")
            nodes.setdefault(layer, []).append(node.name)
    return {layer: nodes[layer] for layer in LAYER_NAMES if layer in nodes}
