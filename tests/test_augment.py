"""Each acoustic condition does to the audio what its name says, and nothing else."""

import numpy as np

from speechquant.corpus import augment

RATE = 16000


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(RATE * seconds)) / RATE)).astype(np.float32)


def band_energy(samples: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[(frequencies >= low) & (frequencies <= high)].sum())


def test_a_telephone_keeps_the_voice_band_and_drops_what_lies_outside_it():
    mixed = tone(1000) + tone(6000) + tone(100)
    out = augment.telephone(mixed)
    assert len(out) == len(mixed)
    assert band_energy(out, 900, 1100) > 0.5 * band_energy(mixed, 900, 1100)
    assert band_energy(out, 5000, 7000) < 1e-3 * band_energy(mixed, 5000, 7000)
    assert band_energy(out, 50, 150) < 1e-2 * band_energy(mixed, 50, 150)


def test_an_opus_round_trip_keeps_length_and_most_of_a_voice_band_tone():
    original = tone(800)
    out = augment.opus_round_trip(original)
    assert len(out) == len(original)
    assert band_energy(out, 700, 900) > 0.3 * band_energy(original, 700, 900)
    assert not np.allclose(out, original, atol=1e-3)  # lossy


def test_reverberation_smears_a_click_over_about_its_decay_time():
    click = np.zeros(RATE, dtype=np.float32)
    click[100] = 1.0
    out = augment.convolve(click, augment.impulse_response(0.5, np.random.default_rng(0)))
    assert out[100] == 1.0  # the direct sound
    tail = np.abs(out[100 + int(0.05 * RATE) : 100 + int(0.1 * RATE)]).max()
    late = np.abs(out[100 + int(0.55 * RATE) :]).max()
    assert tail > 10 * late > 0  # decaying, 60 dB over 0.5 s


def test_speed_shortens_and_raises_pitch_by_its_factor():
    out = augment.change_speed(tone(500), 1.25)
    assert abs(len(out) - RATE / 1.25) < 5
    assert band_energy(out, 600, 650) > 10 * band_energy(out, 450, 550)


def test_noise_colours_fall_off_as_named_and_mix_at_the_asked_snr():
    rng = np.random.default_rng(0)
    white, brown = (augment.coloured_noise(RATE * 4, colour, rng) for colour in ("white", "brown"))
    assert band_energy(brown, 50, 500) > 100 * band_energy(brown, 4000, 7000)
    assert 0.5 < band_energy(white, 50, 500) / band_energy(white, 3550, 4000) < 2
    speech = tone(300)
    mixed = augment.mix_at_snr(speech, white[:RATE], 10.0)
    noise_power = np.mean((mixed - speech) ** 2)
    assert abs(10 * np.log10(np.mean(speech**2) / noise_power) - 10.0) < 0.01


def test_babble_loops_short_talkers_to_the_utterance_length():
    out = augment.babble_of([tone(200, 0.3), tone(300, 2.0), np.zeros(0, dtype=np.float32)], RATE)
    assert len(out) == RATE and np.abs(out[-100:]).max() > 0
