"""Which training-corpus conditions help: each group on alone, all on, and none, at one budget.

    python tools/augment_ablation.py [--hours 2] [--steps 300] [--output reports/augment_ablation.json]

Training the model again per group (47 min on 2 cores) is out of reach, and a model trained
from scratch on a small budget is too poor (CER near 0.6) for a condition's effect to show.
So each group fine-tunes the pipeline's trained model (``models/model.pt``) for ``--steps``
on a fresh ``--hours`` training corpus built from ``params.yaml``'s ``data.synth`` with only
that group's conditions on (at the probabilities below, or the params' own where those are
above zero), and is scored (greedy CER) on the pipeline's in-domain dev and test and on both
out-of-domain dev sets (``data/features``). The ``none`` group gets the same steps on a
corpus without conditions: it is the control, so what more training alone gives is not
credited to a condition. The ``text`` groups speak the ``sotu`` sentence list besides the
params' own (``data.synth.texts``). Every group gets the same hours, steps, seed and
evaluation data.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechquant.batching import TempoOptions, UtteranceSet
from speechquant.corpus import synth
from speechquant.features import FeatureOptions, build_split
from speechquant.lock import file_md5
from speechquant.model import Wav2Letter, load_model
from speechquant.params import build, load_params, section
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store
from speechquant.train import TrainOptions, autocast, cosine_rate, ctc_loss_sum, evaluate

ON_PROBABILITY = {"reverb": 0.3, "channel": 0.2, "speed": 0.5, "level": 0.5, "babble": 0.2}
ADDED_TEXT = "sotu"  # the text group: this sentence list spoken besides the params' own
GROUPS = {  # name: (conditions on, whether ADDED_TEXT is added)
    "none": ((), False),
    "reverb": (("reverb",), False),
    "channel": (("channel",), False),
    "speed_level": (("speed", "level"), False),
    "babble": (("babble",), False),
    "all": (tuple(ON_PROBABILITY), False),
    "text": ((), True),
    "reverb_text": (("reverb",), True),
}


def synth_params(params: dict, conditions: tuple[str, ...], add_text: bool, hours: float) -> dict:
    """``data.synth`` with only ``conditions`` on, ``ADDED_TEXT`` if asked, and ``hours`` of training audio."""
    synth_section = copy.deepcopy(section(params, "data.synth"))
    synth_section["hours"] = {"train": hours}
    if add_text:
        texts = synth_section["texts"]
        synth_section["texts"] = texts if ADDED_TEXT in texts else [*texts, ADDED_TEXT]
    augment = synth_section.setdefault("augment", {})
    for name in ON_PROBABILITY:
        entry = augment.setdefault(name, {})
        entry["probability"] = (entry.get("probability") or ON_PROBABILITY[name]) if name in conditions else 0.0
    return synth_section


def cosine(learning_rate: float, steps: int) -> Callable[[int], float]:
    """The compress stage's schedule: ``learning_rate`` along a cosine to zero over ``steps``."""
    return lambda step: cosine_rate(learning_rate, step / steps)


def fine_tune(
    model: Wav2Letter,
    data: UtteranceSet,
    options: TrainOptions,
    steps: int,
    rate: Callable[[int], float],
    tempo: TempoOptions | None = None,
) -> None:
    """``steps`` AdamW steps of CTC at ``rate(step)``, each batch with the training's SpecAugment
    (and ``tempo`` where given), on the CPU."""
    torch.manual_seed(options.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=rate(0), weight_decay=0.0)
    endless = (b for epoch in itertools.count() for b in data.batches(options.batch_frames, options.seed, epoch, True))
    cpu = torch.device("cpu")
    model.train()
    for step, positions in enumerate(tqdm(itertools.islice(endless, steps), total=steps, leave=False)):
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        batch = data.collate(positions, options.spec_augment, np.random.default_rng([options.seed, step]), tempo)
        with autocast(options, cpu):
            log_probs, lengths = model(batch.features, batch.lengths)
        loss = ctc_loss_sum(log_probs, lengths, batch) / len(positions)
        if torch.isfinite(loss):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            optimizer.step()
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=6e-4)
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"), help="the model every group starts from")
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--features", type=Path, default=Path("data/features"), help="the evaluation splits")
    parser.add_argument("--workdir", type=Path, default=Path("data/ablation"))
    parser.add_argument("--output", type=Path, default=Path("reports/augment_ablation.json"))
    args = parser.parse_args()
    params = load_params()
    train_options = build(TrainOptions, {**section(params, "train"), "device": "cpu"}, "train")
    feature_options = build(FeatureOptions, section(params, "features"), "features")
    evaluation = {split: UtteranceSet(Store(args.features / split)) for split in ALL_SPLITS if split != "train"}
    budget = {
        "hours": args.hours,
        "steps": args.steps,
        "learning_rate": args.learning_rate,
        "from": str(args.model),
        "model_md5": file_md5(args.model),  # a retrain starts afresh
    }
    saved = json.loads(args.output.read_text()) if args.output.exists() else {}
    results = saved.get("groups", {}) if saved.get("budget") == budget else {}
    for group in args.groups:
        started = time.perf_counter()
        options = build(synth.SynthOptions, synth_params(params, *GROUPS[group], args.hours), "data.synth")
        folder = args.workdir / group
        shutil.rmtree(folder, ignore_errors=True)
        synth.build_split(options, "train", folder / "corpus", workers=os.cpu_count() or 1)
        corpus_seconds = time.perf_counter() - started
        build_split(folder / "corpus", folder / "features", feature_options)
        model = load_model(args.model)
        rate = cosine(args.learning_rate, args.steps)
        fine_tune(model, UtteranceSet(Store(folder / "features")), train_options, args.steps, rate)
        cpu = torch.device("cpu")
        cers = {split: round(evaluate(model, data, train_options, cpu)[1], 4) for split, data in evaluation.items()}
        results[group] = {
            "conditions": {name: getattr(options.augment, name).probability for name in ON_PROBABILITY},
            "texts": list(options.texts),
            "greedy_cer": cers,
            "corpus_seconds": round(corpus_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
        }
        print(group, json.dumps(results[group]), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"budget": budget, "groups": results}, indent=1) + "\n")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
