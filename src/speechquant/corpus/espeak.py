"""A minimal ctypes binding to the espeak-ng library shipped in ``espeakng-loader``.

Pinned to espeakng-loader 0.2.4: another espeak-ng release gives different audio, and
the synthetic corpus must be byte-identical for the same params. The library seeds its
own noise generator (breathy variants such as f3 or whisper) from the clock, so every
utterance is given a seed here; it also keeps state between calls (output depends on
what it said before), so callers that need reproducible audio give each fixed batch of
sentences a fresh process.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import espeakng_loader
import numpy as np

_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the audio is done
_UTF8 = 1  # espeakCHARS_UTF8
_RATE, _PITCH, _RANGE, _WORDGAP = 1, 3, 4, 7  # espeak_PARAMETER values

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """How one utterance is spoken. ``name`` is a language voice plus a variant, ``en-us+f3``."""

    name: str
    words_per_minute: int
    pitch: int  # 0-100, espeak's default 50
    pitch_range: int  # 0-100; keep <= 70, some variants crash the library above 80
    word_gap: int  # extra pause between words, in units of 10 ms


@cache
def available_voices() -> tuple[frozenset[str], frozenset[str]]:
    """(language voices, voice variants) in the packaged data, read from files.

    Read from disk rather than asked of the library so that the parent process never
    initializes espeak-ng: its workers must each start from a fresh library.
    """
    data = Path(espeakng_loader.get_data_path())
    languages = frozenset(path.name.lower() for path in (data / "lang").rglob("*") if path.is_file())
    variants = frozenset(path.name for path in (data / "voices" / "!v").iterdir() if path.is_file())
    return languages, variants


class Espeak:
    """One initialized espeak-ng library in this process."""

    def __init__(self) -> None:
        self._library = ctypes.CDLL(espeakng_loader.get_library_path())
        self._library.espeak_Initialize.restype = ctypes.c_int
        self._library.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._library.espeak_Initialize(_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialize with data at {data_path.decode()}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library calls it later
        self._library.espeak_SetSynthCallback(self._callback)
        self._library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]

    def _collect(self, wave: ctypes.Array, n_samples: int, events: int) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wave, (n_samples,)).copy())
        return 0

    def synthesize(self, text: str, voice: Voice, seed: int) -> np.ndarray:
        """Speak ``text``; int16 samples at ``self.sample_rate``. ``seed`` fixes breath noise."""
        if self._library.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r}")
        for parameter, value in (
            (_RATE, voice.words_per_minute),
            (_PITCH, voice.pitch),
            (_RANGE, voice.pitch_range),
            (_WORDGAP, voice.word_gap),
        ):
            self._library.espeak_SetParameter(parameter, value, 0)
        self._library.espeak_ng_SetRandSeed(seed)
        self._chunks = []
        encoded = text.encode("utf-8")
        status = self._library.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        self._library.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
