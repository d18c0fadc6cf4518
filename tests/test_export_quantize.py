import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from speechquant.audio import FeatureOptions
from speechquant.calibration import CalibrationOptions, utterance_inputs
from speechquant.ctc import LAYER_NAMES
from speechquant.errors import UserError
from speechquant.modelcard import ModelCard
from speechquant.openvino_session import NotRunnableHere, bf16_missing_reason
from speechquant.params import build
from speechquant.qat import QatOptions, make_qat_variant
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import load_onnx, open_model, session
from speechquant.store import Store
from speechquant.variants import VARIANTS
from speechquant.verify import check_kernels, conv_kernels, report


def padded(store: Store, indices: list[int], frames: int) -> dict[str, np.ndarray]:
    rows = [np.asarray(store[i], dtype=np.float32)[:frames] for i in indices]
    features = np.zeros((len(rows), max(len(r) for r in rows), 40), dtype=np.float32)
    for row, r in enumerate(rows):
        features[row, : len(r)] = r
    return {"features": features, "lengths": np.array([len(r) for r in rows], dtype=np.int64)}


@pytest.mark.parametrize(("batch", "frames"), [(1, 150), (1, 400), (4, 150), (4, 400)])
def test_onnx_matches_pytorch_within_1e_4(exported, trained_like_model, features, batch, frames):
    feed = padded(features, list(range(batch)), frames)
    onnx_log_probs, onnx_lengths = session(exported).run(None, feed)
    with torch.no_grad():
        torch_log_probs, torch_lengths = trained_like_model(
            torch.from_numpy(feed["features"]), torch.from_numpy(feed["lengths"])
        )
    assert np.abs(onnx_log_probs - torch_log_probs.numpy()).max() <= 1e-4
    assert onnx_lengths.tolist() == torch_lengths.tolist()


def test_export_is_checked_folded_and_names_its_convs(exported):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    ops = [node.op_type for node in model.graph.node]
    assert "BatchNormalization" not in ops and "Dropout" not in ops
    assert [node.name for node in model.graph.node if node.op_type == "Conv"] == list(LAYER_NAMES)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["batch", "frames"] and dims[2] == 40


@pytest.mark.parametrize("variant", [v for v in VARIANTS if VARIANTS[v].kind not in ("qat", "compressed")])
def test_every_variant_runs_the_kernels_its_name_promises(exported, features, tmp_path, variant):
    options = QuantOptions(calibration=CalibrationOptions(utterances=4))
    source, output = tmp_path / "model.onnx", tmp_path / f"{variant}.onnx"
    model = onnx.load(str(exported))
    card = ModelCard(features=FeatureOptions(dtype="float32"), preset="default", parameters=5, corpus_source="synth")
    onnx.helper.set_model_props(model, card.metadata())
    onnx.save(model, str(source))
    keep_float, _ = quantize(variant, source, output, options, features)
    metrics = report(variant, output, source, keep_float, utterance_inputs(features, 2, seed=0))
    kernels = metrics["conv_kernels"]
    if VARIANTS[variant].kind == "static":  # static_*, auto_int8, pruned_int8 (here from the export)
        assert kernels.get("QLinearConv") == 11 - len(keep_float)
        # each quantized conv's ReLU folded into its output range: only float layers keep theirs
        relus = [node for node in onnx.load(str(output)).graph.node if node.op_type == "Relu"]
        assert len(relus) == len([layer for layer in keep_float if layer != "conv10"])
    elif VARIANTS[variant].kind == "dynamic":
        assert kernels.get("ConvInteger") == 11 - len(keep_float)
    else:
        assert kernels == {"Conv": 11}
    float_layers = list(LAYER_NAMES) if variant in ("fp32", "fp16", "bf16") else ["conv0"] if "semi" in variant else []
    assert metrics["float_layers"] == float_layers
    props = {prop.key: prop.value for prop in onnx.load(str(output)).metadata_props}
    assert ModelCard.from_metadata(props, str(output)) == card  # the front-end's metadata survives quantization
    if variant == "bf16" and (reason := bf16_missing_reason()):
        with pytest.raises(NotRunnableHere, match=re.escape(reason)):  # said; evaluate and benchmark skip it
            open_model(output)
    else:
        assert open_model(output).card == card
    if variant == "static_int8":
        assert metrics["smaller_than_fp32"] >= 3.9
    if variant == "fp16":
        assert 1.9 <= metrics["smaller_than_fp32"] <= 2.1 and metrics["max_abs_logprob_diff_vs_fp32"] < 0.5


def test_excluded_layers_stay_float_in_every_int8_variant(exported, features, tmp_path):
    options = QuantOptions(exclude=("conv0", "conv9"), calibration=CalibrationOptions(utterances=2))
    for variant in ("dynamic_int8", "static_int8"):
        keep_float, _ = quantize(variant, exported, tmp_path / f"{variant}.onnx", options, features)
        assert keep_float == ["conv0", "conv9"]
        kernels = conv_kernels(tmp_path / f"{variant}.onnx")
        assert kernels["conv0"] == kernels["conv9"] == "Conv" and kernels["conv5"] != "Conv"


def test_an_int8_variant_running_in_float_is_refused():
    with pytest.raises(UserError, match="named int8 but runs every conv in float"):
        check_kernels("static_int8", dict.fromkeys(LAYER_NAMES, "Conv behind DequantizeLinear"), [])
    kernels = dict.fromkeys(LAYER_NAMES, "QLinearConv") | {"conv3": "Conv"}
    with pytest.raises(UserError, match=r"layers \['conv3'\] run in float, but only \[\] should"):
        check_kernels("static_int8", kernels, [])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"exclude": ["conv11"]}, "quant.exclude\\[0\\] is 'conv11'; it must be one of conv0, conv1"),
        ({"variants": ["int4"]}, "quant.variants\\[0\\] is 'int4'; it must be one of fp32, fp16"),
        ({"calibration": {"method": "kl"}}, "quant.calibration.method is 'kl'; it must be one of minmax, entropy"),
        ({"weight_bits": 6}, "quant.weight_bits is 6; it must be >= 7 and <= 8"),
        ({"weight_bits": 8.5}, "quant.weight_bits is 8.5; it must be a whole number"),
    ],
)
def test_bad_quant_params_list_the_valid_names(values, message):
    with pytest.raises(UserError, match=message):
        build(QuantOptions, values, "quant")


def test_a_missing_or_corrupt_model_is_one_clear_error(tmp_path, features):
    with pytest.raises(UserError, match="not found"):
        quantize("dynamic_int8", tmp_path / "nope.onnx", tmp_path / "out.onnx", QuantOptions(), features)
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a valid ONNX model"):
        load_onnx(tmp_path / "bad.onnx")
    with pytest.raises(UserError, match="unknown variant 'int2'; valid: fp32"):
        quantize("int2", tmp_path / "bad.onnx", tmp_path / "out.onnx", QuantOptions(), features)


def test_qat_fine_tunes_and_exports_int8_kernels(trained_like_model, features, exported, tmp_path):
    checkpoint = tmp_path / "model.pt"
    torch.save(
        {"config": trained_like_model.config.as_dict(), "state_dict": trained_like_model.state_dict()}, checkpoint
    )
    options = QuantOptions(calibration=CalibrationOptions(utterances=2))
    output = tmp_path / "qat_int8.onnx"
    qat = QatOptions(steps=2, batch_frames=600)
    keep_float, measured = make_qat_variant(checkpoint, exported, output, options, qat, features, features)
    assert measured["qat_steps"] == 2 and {"qat_dev_cer_before", "qat_dev_cer_after"} <= set(measured)
    metrics = report("qat_int8", output, exported, keep_float, utterance_inputs(features, 2, seed=0), 64)
    assert metrics["conv_kernels"] == {"QLinearConv": 11}
    assert metrics["int8_weight_max"] == 64  # fake-quantized on the 7-bit grid, and exported on it
    assert open_model(output).card == open_model(exported).card
    assert metrics["max_abs_logprob_diff_vs_fp32"] > 0  # fine-tuned and quantized: not the float model
    assert metrics["smaller_than_fp32"] >= 3.9


@pytest.mark.parametrize("variant", ["static_int8", "dynamic_int8_s8"])
def test_signed_weights_are_7_bit_by_default_8_bit_when_asked_and_the_guard_refuses_wider(
    exported, features, tmp_path, variant
):
    inputs = utterance_inputs(features, 1, seed=0)
    peaks = {}
    for bits in (7, 8):
        options = QuantOptions(calibration=CalibrationOptions(utterances=2), weight_bits=bits)
        output = tmp_path / f"{bits}.onnx"
        quantize(variant, exported, output, options, features)
        peaks[bits] = report(variant, output, exported, [], inputs, options.weight_limit)["int8_weight_max"]
    assert peaks == {7: 64, 8: 127}  # each layer's largest weight on its range's end
    assert QuantOptions().weight_bits == 7
    with pytest.raises(UserError, match=rf"{variant}: int8 weights beyond \[-64, 64\] \(quant.weight_bits\) in "):
        report(variant, tmp_path / "8.onnx", exported, [], inputs, 64)


def test_unsigned_weights_keep_8_bits_whatever_weight_bits_says(exported, features, tmp_path):
    for bits in (7, 8):
        options = QuantOptions(weight_bits=bits)
        quantize("dynamic_int8", exported, tmp_path / f"{bits}.onnx", options, features)
    assert (tmp_path / "7.onnx").read_bytes() == (tmp_path / "8.onnx").read_bytes()  # uint8 x uint8: exact anywhere


def test_histogram_calibration_takes_utterances_of_any_length(exported, features, tmp_path):
    # ORT's percentile calibrator stacks outputs into one array; whole utterances of
    # different lengths made it fail. Middle crops of equal length do not.
    calibration = CalibrationOptions(method="percentile", utterances=3, frames=150)
    inputs = calibration.inputs(features)
    assert len(inputs) == 3 and {batch["features"].shape for batch in inputs} == {(1, 150, 40)}
    quantize("static_int8", exported, tmp_path / "p.onnx", QuantOptions(calibration=calibration), features)
    assert conv_kernels(tmp_path / "p.onnx") == {name: "QLinearConv" for name in LAYER_NAMES}
    with pytest.raises(UserError, match="no calibration utterance has 100000 frames"):
        CalibrationOptions(frames=100_000).inputs(features)


def test_making_a_variant_loads_neither_torch_nor_qat():
    """fp32, fp16 and the int8 conversions need no PyTorch; only qat_int8 does (its own stage)."""
    code = "import sys, speechquant.quantize, speechquant.export; print('speechquant.qat' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    code = "import sys, speechquant.quantize, speechquant.verify; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
