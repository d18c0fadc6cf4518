"""Corpus sources: each turns its raw input into one utterance store per split.

``synth`` and ``librispeech`` give 16 kHz audio stores, ``hw4p2`` gives mel power
stores; the features stage turns either into log-mel. The out-of-domain dev splits
(``splits.OUT_OF_DOMAIN_SPLITS``) come from ``synth`` alone; every other source, and synth
given no hours for one, writes them empty, so each stage can name all five splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from speechquant.audio import SAMPLE_RATE
from speechquant.errors import UserError
from speechquant.fileio import atomic_path
from speechquant.params import build, section
from speechquant.splits import OUT_OF_DOMAIN_SPLITS
from speechquant.store import SPLITS, StoreWriter

SOURCES = ("synth", "hw4p2", "librispeech")


def build_corpus(data_params: dict[str, Any], output: Path, workers: int) -> dict[str, dict[str, Any]]:
    """Build every split of the source named by ``data.source`` into ``output/<split>``.

    All splits are written to a temporary folder that replaces ``output`` only when
    every split succeeded: a failure leaves the previous corpus untouched.
    """
    source = data_params.get("source")
    if source not in SOURCES:
        raise UserError(f"unknown data.source {source!r}; valid: {', '.join(SOURCES)}")
    metas: dict[str, dict[str, Any]] = {}
    # Every param is checked before the first file is written.
    if source == "synth":
        from speechquant.corpus.synth import SynthOptions, build_split

        synth_options = build(SynthOptions, section(data_params, "synth"), "data.synth")
        missing = [split for split in SPLITS if split not in synth_options.hours]
        if missing:
            raise UserError(f"params.yaml: data.synth.hours gives no hours for {', '.join(missing)}")
    elif source == "hw4p2":
        from speechquant.corpus.hw4p2 import Hw4p2Options, convert_split, fetch

        hw4p2_options = build(Hw4p2Options, section(data_params, "hw4p2"), "data.hw4p2")
    else:
        from speechquant.corpus.librispeech import LibrispeechOptions
        from speechquant.corpus.librispeech import build_split as build_librispeech_split

        librispeech_options = build(LibrispeechOptions, section(data_params, "librispeech"), "data.librispeech")
    with atomic_path(output) as temporary:
        temporary.mkdir()
        if source == "synth":
            for split in SPLITS:
                metas[split] = build_split(synth_options, split, temporary / split, workers)
        elif source == "hw4p2":
            directory = fetch(hw4p2_options)
            for split in SPLITS:
                metas[split] = convert_split(directory, split, temporary / split)
        else:
            for split in SPLITS:
                metas[split] = build_librispeech_split(librispeech_options, split, temporary / split)
        for split in OUT_OF_DOMAIN_SPLITS:
            if source == "synth" and synth_options.hours.get(split, 0) > 0:
                metas[split] = build_split(synth_options, split, temporary / split, workers)
            else:
                metas[split] = empty_split(temporary / split, source)
    return metas


def empty_split(output: Path, source: str) -> dict[str, Any]:
    """An audio store with no utterances: a split this source does not have."""
    meta = {"kind": "audio", "sample_rate": SAMPLE_RATE, "source": source, "skipped": {}, "dropped_chars": 0}
    with StoreWriter(output, np.int16, (), meta) as writer:
        pass
    return writer.meta
