"""Which of dev_unseen_voice's held-out conditions costs the model its accuracy, one at a time.

    python tools/unseen_voice_factors.py [--utterances 240] [--model models/model.pt]
                                         [--output reports/unseen_voice_factors.json]

``dev_unseen_voice`` differs from dev in four ways at once (``data.synth.held_out``): voice
variants training never has, faster speech, a far-field room and brown noise. Its CER alone
cannot say which one to train for, or whether one of them is beyond what any training
condition short of the held-out one itself could teach. So each of dev's first
``--utterances`` utterances is spoken again seven times, the sentence, accent, pitch and seeds
kept: as dev speaks it (``in_domain``); with exactly one held-out condition taken from the
dev_unseen_voice utterance of the same index (``voice``, ``speed``, ``room``, ``brown_noise``;
brown noise replaces dev's white or pink noise, as in dev_unseen_voice); with the voices and
brown noise together (``voice_brown_noise``: held-out voices under a noise training lacks,
with neither speed nor room beyond training's); and with all four (``all``). Every set is
scored by greedy CER with the same model; the ratio to ``in_domain`` is each condition's
cost. Takes about 40 s on 2 cores; ``tools/augment_train.py`` measures the same sets for
models trained under other training conditions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from speechquant.audio import SAMPLE_RATE
from speechquant.batching import UtteranceSet
from speechquant.corpus import synth
from speechquant.corpus.augment import Augmentation
from speechquant.corpus.isolation import run_isolated
from speechquant.features import FeatureOptions, build_split
from speechquant.hardware import hardware_stamp
from speechquant.lock import file_md5
from speechquant.model import load_model
from speechquant.params import build, load_params, section
from speechquant.store import Store, StoreWriter, Utterance
from speechquant.train import TrainOptions, evaluate

FACTORS = ("in_domain", "voice", "speed", "room", "brown_noise", "voice_brown_noise", "all")


def factor_plans(dev: synth.Plan, unseen: synth.Plan) -> dict[str, synth.Plan]:
    """``dev``'s utterance as dev speaks it, with each of ``unseen``'s held-out conditions alone, and with all."""
    language = dev.voice.name.split("+")[0]
    variant = unseen.voice.name.split("+")[1]
    held = unseen.augmentation
    brown = Augmentation(brown_noise_snr_db=held.brown_noise_snr_db, seed=held.seed)
    voice = replace(dev.voice, name=f"{language}+{variant}")
    return {
        "in_domain": dev,
        "voice": replace(dev, voice=voice),
        "speed": replace(dev, voice=replace(dev.voice, words_per_minute=unseen.voice.words_per_minute)),
        "room": replace(dev, augmentation=Augmentation(rt60_s=held.rt60_s, seed=held.seed)),
        "brown_noise": replace(dev, noise_snr_db=None, augmentation=brown),
        "voice_brown_noise": replace(dev, voice=voice, noise_snr_db=None, augmentation=brown),
        "all": replace(unseen, text=dev.text),
    }


def speak_into(plans: list[synth.Plan], output: Path, workers: int) -> int:
    """An audio store of ``plans`` spoken in isolated workers, as the corpus stage speaks; the failures."""
    failures = 0
    meta = {"kind": "audio", "sample_rate": SAMPLE_RATE, "source": "synth"}
    with StoreWriter(output, np.int16, (), meta) as writer:
        for outcome in run_isolated(synth.speak, iter(plans), synth.SHARD_SIZE, workers):
            if outcome.failure is not None:
                failures += 1
                continue
            writer.append(Utterance(outcome.item.id, outcome.item.text, 0, {}), outcome.result)
        writer.meta.update(skipped={}, dropped_chars=0)
    return failures


def build_factor_sets(
    options: synth.SynthOptions, feature_options: FeatureOptions, utterances: int, folder: Path
) -> tuple[dict[str, UtteranceSet], dict[str, int]]:
    """Per factor, dev's first ``utterances`` utterances spoken that way as a log-mel set under ``folder``;
    and per factor, the utterances whose synthesis failed (left out)."""
    pairs = zip(
        itertools.islice(synth.plans(options, "dev"), utterances),
        itertools.islice(synth.plans(options, "dev_unseen_voice"), utterances),
        strict=True,
    )
    by_factor: dict[str, list[synth.Plan]] = {factor: [] for factor in FACTORS}
    for dev, unseen in pairs:
        for factor, plan in factor_plans(dev, unseen).items():
            by_factor[factor].append(plan)
    sets, failures = {}, {}
    for factor, plans in by_factor.items():
        failures[factor] = speak_into(plans, folder / factor / "audio", os.cpu_count() or 1)
        build_split(folder / factor / "audio", folder / factor / "features", feature_options)
        sets[factor] = UtteranceSet(Store(folder / factor / "features"))
    return sets, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=240, help="of dev's, each spoken seven ways")
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--output", type=Path, default=Path("reports/unseen_voice_factors.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    params = load_params()
    options = build(synth.SynthOptions, section(params, "data.synth"), "data.synth")
    feature_options = build(FeatureOptions, section(params, "features"), "features")
    settings = build(TrainOptions, {**section(params, "train"), "device": "cpu", "precision": "fp32"}, "train")
    model = load_model(args.model).eval()
    results: dict[str, dict[str, float | int]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        sets, failures = build_factor_sets(options, feature_options, args.utterances, Path(scratch))
        for factor, data in sets.items():
            _, cer = evaluate(model, data, settings, torch.device("cpu"))
            results[factor] = {"cer": round(cer, 4), "utterances": len(data), "synthesis_failures": failures[factor]}
    for factor, entry in results.items():
        entry["of_in_domain"] = round(entry["cer"] / results["in_domain"]["cer"], 3)
        print(f"{factor:12s} CER {entry['cer']:.4f}  x{entry['of_in_domain']:.2f} of in_domain")
    report = {
        "command": f"python tools/unseen_voice_factors.py --utterances {args.utterances}",
        "model": str(args.model),
        "model_md5": file_md5(args.model),
        "held_out": section(params, "data.synth")["held_out"],
        "scoring": "greedy CER, PyTorch fp32",
        "machine": hardware_stamp(),
        "seconds": round(time.perf_counter() - started, 1),
        "factors": results,
    }
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
