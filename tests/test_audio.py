import numpy as np
import soundfile

from speechquant.audio import SAMPLE_RATE, FeatureOptions, load_audio, log_mel, mel_filterbank


def test_log_mel_shape_is_one_frame_per_hop():
    samples = np.zeros(SAMPLE_RATE * 2, dtype=np.float32)
    features = log_mel(samples)
    assert features.shape == (2 * 100 + 1, 40)
    assert np.isfinite(features).all()  # digital silence stays finite


def test_a_tone_lights_the_band_that_holds_its_frequency():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    options = FeatureOptions()
    filters = mel_filterbank(options.n_mels, options.n_fft)
    for hz in (300.0, 1000.0, 4000.0):
        features = log_mel(np.sin(2 * np.pi * hz * t).astype(np.float32) * 0.5, options)
        expected_band = int(np.argmax(filters[:, round(hz / (SAMPLE_RATE / options.n_fft))]))
        assert abs(int(np.argmax(features[50])) - expected_band) <= 1


def test_load_audio_mixes_down_and_resamples(tmp_path):
    rate = 44_100
    stereo = np.stack([np.full(rate, 0.25), np.full(rate, -0.25)], axis=1)
    stereo[:, 0] += 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    soundfile.write(tmp_path / "x.flac", stereo, rate)
    samples = load_audio(tmp_path / "x.flac")
    assert samples.dtype == np.float32
    assert abs(len(samples) - SAMPLE_RATE) <= 1
    assert abs(float(samples.std()) - 0.25 / np.sqrt(2)) < 0.01  # the tone, halved by the mix
