import subprocess
import sys

import numpy as np
import pytest

from speechquant.calibration import CalibrationOptions
from speechquant.decode import Decoder, DecoderOptions
from speechquant.errors import UserError
from speechquant.evaluate import EvalOptions, evaluate_split, model_outputs
from speechquant.export import export
from speechquant.model import ModelConfig, Wav2Letter
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import session
from speechquant.store import Store, StoreWriter, Utterance

GREEDY = Decoder(DecoderOptions(method="greedy"))


@pytest.mark.parametrize("variant", ["fp32", "static_int8"])
def test_results_do_not_depend_on_batch_size_or_on_decoding_in_worker_processes(exported, features, tmp_path, variant):
    path = tmp_path / f"{variant}.onnx"
    quantize(variant, exported, path, QuantOptions(calibration=CalibrationOptions(utterances=4)), features)
    decoder = Decoder(DecoderOptions(method="beam"))
    one, one_results = evaluate_split(path, features, decoder, EvalOptions(batch_size=1, workers=1))
    many, many_results = evaluate_split(path, features, decoder, EvalOptions(batch_size=32, workers=2))
    three, three_results = evaluate_split(path, features, decoder, EvalOptions(batch_size=3))
    assert [r.hypothesis for r in one_results] == [r.hypothesis for r in many_results]
    assert [r.hypothesis for r in one_results] == [r.hypothesis for r in three_results]
    assert one["cer"] == many["cer"] == three["cer"] and one["wer"] == many["wer"]
    assert [r.ctc_loss for r in one_results] == [r.ctc_loss for r in many_results]  # bit for bit
    assert one["scored"] == many["scored"] == three["scored"] == len(features)  # no partial batch dropped


def test_dynamic_variants_run_one_utterance_at_a_time_because_batching_would_change_them(exported, features, tmp_path):
    path = tmp_path / "dynamic_int8.onnx"
    quantize("dynamic_int8", exported, path, QuantOptions(), features)
    batched, _ = model_outputs(session(path), features, batch_size=32)
    alone, _ = model_outputs(session(path), features, batch_size=1)
    assert any(not np.array_equal(b, a) for b, a in zip(batched, alone, strict=True))  # ranges span the batch
    many, many_results = evaluate_split(path, features, GREEDY, EvalOptions(batch_size=32, workers=2))
    _, one_results = evaluate_split(path, features, GREEDY, EvalOptions(batch_size=1))
    assert many["batch_size"] == 1 and [r.hypothesis for r in many_results] == [r.hypothesis for r in one_results]
    assert [r.ctc_loss for r in many_results] == [r.ctc_loss for r in one_results]


def test_scores_are_edit_distances_to_the_references(exported, features):
    metrics, results = evaluate_split(exported, features, GREEDY, EvalOptions(batch_size=8))
    total_chars = sum(len(r.reference) for r in results)
    assert metrics["cer"] == pytest.approx(sum(r.edits for r in results) / total_chars, abs=1e-6)
    assert metrics["levenshtein_mean"] == pytest.approx(sum(r.edits for r in results) / len(results), abs=1e-4)
    assert metrics["unscored_without_reference"] == 0 and metrics["ctc_loss"] > 0
    assert [r.id for r in results] == [u.id for u in features.utterances]  # store order, whatever the batching


def test_utterances_without_a_reference_are_decoded_counted_and_not_scored(exported, features, tmp_path):
    with StoreWriter(tmp_path / "mixed", features.data.dtype, features.data.shape[1:], features.meta) as writer:
        for index, utterance in enumerate(features.utterances):
            text = utterance.text if index % 2 else None
            writer.append(Utterance(utterance.id, text, utterance.n_frames), np.asarray(features[index]))
    mixed = Store(tmp_path / "mixed")
    metrics, results = evaluate_split(exported, mixed, GREEDY, EvalOptions())
    _, all_results = evaluate_split(exported, features, GREEDY, EvalOptions())
    assert metrics["utterances"] == len(features)
    assert metrics["unscored_without_reference"] == (len(features) + 1) // 2
    assert metrics["scored"] == len(features) // 2
    assert [r.hypothesis for r in results] == [r.hypothesis for r in all_results]  # still decoded
    assert all(r.edits is None for r in results[::2])


def test_a_model_with_other_output_classes_is_refused(features, tmp_path):
    path = tmp_path / "other.onnx"
    export(Wav2Letter(ModelConfig(hidden_channels=8, wide_channels=8, num_classes=30)).eval(), path)
    with pytest.raises(UserError, match="30 classes per frame; the vocabulary has 35"):
        evaluate_split(path, features, GREEDY, EvalOptions())


def test_a_subset_of_utterances_runs_alone_and_gives_the_same_outputs(exported, features):
    model = session(exported)
    every, _ = model_outputs(model, features, batch_size=4)
    some, _ = model_outputs(model, features, batch_size=4, only=[3, 1])
    assert len(some) == 2 and np.array_equal(some[0], every[3]) and np.array_equal(some[1], every[1])


def test_evaluation_and_the_command_import_without_torch():
    # Evaluating ONNX models must not need PyTorch (the quantizer's QAT recipe does).
    code = "import sys; sys.modules['torch'] = None; import speechquant.evaluate, speechquant.cli"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_an_empty_split_scores_nothing_and_never_opens_the_model(tmp_path):
    with StoreWriter(tmp_path / "empty", np.float16, (40,), {"kind": "log_mel", "n_mels": 40}):
        pass
    decoder = Decoder(DecoderOptions(method="greedy"))
    metrics, results = evaluate_split(
        tmp_path / "no_such_model.onnx", Store(tmp_path / "empty"), decoder, EvalOptions()
    )
    assert results == [] and metrics["scored"] == 0 and metrics["cer"] is None
