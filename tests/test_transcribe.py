import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import soxr

from speechquant.audio import SAMPLE_RATE, FeatureOptions, mel_filterbank, mel_power
from speechquant.decode import Decoder, DecoderOptions
from speechquant.errors import UserError
from speechquant.export import export
from speechquant.model import ModelConfig, Wav2Letter
from speechquant.modelcard import ModelCard
from speechquant.runtime import open_model
from speechquant.store import Store
from speechquant.transcribe import ChunkOptions, Transcriber, chunks_of

GREEDY = Decoder(DecoderOptions(method="greedy"))
# torch made unimportable: `import torch` raises ImportError in the command's process.
NO_TORCH = "import sys; sys.modules['torch'] = None; from speechquant.cli import main; main()"


@pytest.fixture(scope="module")
def speech(features) -> list[np.ndarray]:
    """The synthesized utterances behind the ``features`` store, as float32 samples."""
    audio = Store(features.path.parent / "audio")
    return [np.asarray(audio[i], dtype=np.float32) / 32768.0 for i in range(len(audio))]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, check=False)


def test_transcribe_feeds_the_model_exactly_the_features_training_stored(features, speech, exported, tmp_path):
    """Same function, same rounding to the store's float16: equal to the last bit on any CPU."""
    assert Transcriber(open_model(exported), GREEDY).features == FeatureOptions.of_store(features.meta)
    for index, samples in enumerate(speech):
        path = tmp_path / f"{index}.wav"
        soundfile.write(path, samples, SAMPLE_RATE, subtype="PCM_16")  # the corpus's own int16 samples
        (chunk,) = chunks_of(path, ChunkOptions(1000, 3), FeatureOptions.of_store(features.meta))
        np.testing.assert_array_equal(chunk.features, np.asarray(features[index], dtype=np.float32))


def test_the_float64_stft_is_torch_stft(speech):
    """The NumPy STFT follows torch.stft's conventions (centering, reflect pad, periodic Hann)."""
    import torch

    options = FeatureOptions()
    for samples in speech[:3]:
        spectrum = torch.stft(
            torch.from_numpy(samples).double(),
            n_fft=options.n_fft,
            hop_length=options.hop_length,
            win_length=options.win_length,
            window=torch.hann_window(options.win_length, dtype=torch.float64),
            center=True,
            return_complex=True,
        )
        filters = torch.from_numpy(mel_filterbank(options.n_mels, options.n_fft)).double()
        expected = (filters @ spectrum.abs().pow(2)).T.numpy()
        np.testing.assert_allclose(mel_power(samples, options), expected, rtol=1e-9, atol=1e-12)


def test_chunked_long_files_decode_like_one_pass(exported, speech, tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, np.concatenate(speech), SAMPLE_RATE)  # ~36 s
    session = open_model(exported)
    one_pass = np.concatenate(list(Transcriber(session, GREEDY, ChunkOptions(1000, 2)).file_log_probs(path)))
    chunked = np.concatenate(list(Transcriber(session, GREEDY, ChunkOptions(5, 2)).file_log_probs(path)))
    transcript = Transcriber(session, GREEDY, ChunkOptions(5, 2))(path)
    assert transcript.audio_seconds == pytest.approx(sum(len(s) for s in speech) / SAMPLE_RATE, abs=1e-3)
    assert transcript.text == GREEDY(one_pass, len(one_pass))
    assert chunked.shape == one_pass.shape
    assert np.abs(chunked - one_pass).max() < 1e-3  # the file's statistics, not the chunk's
    assert GREEDY(chunked, len(chunked)) == GREEDY(one_pass, len(one_pass))


def test_the_command_runs_without_torch_on_any_rate_and_channel_count(exported, speech, tmp_path):
    mono = tmp_path / "mono.wav"
    soundfile.write(mono, speech[0], SAMPLE_RATE)
    stereo = tmp_path / "stereo.flac"
    resampled = soxr.resample(speech[0], SAMPLE_RATE, 44_100)
    soundfile.write(stereo, np.stack([resampled, resampled], axis=1), 44_100)
    result = run_cli("transcribe", str(exported), str(mono), str(stereo), "--json", "--method", "greedy")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(mono), str(stereo)]
    assert lines[0]["audio_seconds"] == pytest.approx(len(speech[0]) / SAMPLE_RATE, abs=1e-3)
    assert lines[1]["audio_seconds"] == pytest.approx(lines[0]["audio_seconds"], abs=1e-3)
    assert all(line["compute_seconds"] > 0 for line in lines)


def test_bad_files_each_get_one_line_and_the_others_go_on(exported, speech, tmp_path):
    good = tmp_path / "good.wav"
    soundfile.write(good, speech[1], SAMPLE_RATE)
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    (tmp_path / "empty.wav").write_bytes(b"")
    silent = tmp_path / "no_samples.wav"
    soundfile.write(silent, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    files = [str(tmp_path / name) for name in ("broken.wav", "good.wav", "empty.wav", "no_samples.wav")]
    result = run_cli("transcribe", str(exported), *files, "--method", "greedy")
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1  # the good file's transcript
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "broken.wav" in errors[0] and "empty.wav" in errors[1] and "no audio" in errors[2]


CARD = ModelCard(preset="default", corpus_source="synth").metadata()


def test_a_model_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "other.onnx"
    export(Wav2Letter(ModelConfig(hidden_channels=8, wide_channels=8, num_classes=30)).eval(), path, CARD)
    with pytest.raises(UserError, match="expected log_probs"):
        open_model(path)
    result = run_cli("transcribe", str(path), "whatever.wav")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_a_model_without_a_card_runs_with_the_default_front_end_and_one_warning(speech, trained_like_model, tmp_path):
    path = tmp_path / "old.onnx"
    export(trained_like_model, path, {"feature_dtype": "float16"})  # what versions before model cards wrote
    soundfile.write(tmp_path / "a.wav", speech[0], SAMPLE_RATE)
    result = run_cli("transcribe", str(path), str(tmp_path / "a.wav"))
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    (warning,) = result.stderr.splitlines()
    assert warning.startswith(f"warning: {path} carries no front-end metadata")
    assert open_model(path).card == ModelCard()
