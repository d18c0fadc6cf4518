import ctypes
import hashlib

import numpy as np
import pytest

from speechquant.corpus import sentences, synth
from speechquant.errors import UserError
from speechquant.params import build
from speechquant.store import Store


def digest(path) -> str:
    return hashlib.sha256(
        b"".join((path / name).read_bytes() for name in sorted(p.name for p in path.iterdir()))
    ).hexdigest()


def test_same_params_give_byte_identical_audio_whatever_the_workers(tmp_path, tiny_synth):
    options = build(synth.SynthOptions, tiny_synth, "data.synth")
    synth.build_split(options, "train", tmp_path / "one", workers=1)
    synth.build_split(options, "train", tmp_path / "two", workers=2)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    store = Store(tmp_path / "one")
    seconds = (store.offsets[-1]) / 16000
    assert 0.006 * 3600 <= seconds < 0.006 * 3600 + 15  # stops at the first utterance past the target
    assert all(u.text and u.source["voice"].count("+") == 1 for u in store.utterances)
    assert np.abs(store.data).max() > 1000  # real audio, not silence


def test_a_different_seed_gives_different_utterances(tmp_path, tiny_synth):
    first = list(zip(range(5), synth.plans(build(synth.SynthOptions, tiny_synth, "s"), "train"), strict=False))
    tiny_synth["seed"] += 1
    second = list(zip(range(5), synth.plans(build(synth.SynthOptions, tiny_synth, "s"), "train"), strict=False))
    assert [p.text for _, p in first] != [p.text for _, p in second]


def test_no_dev_or_test_sentence_occurs_in_train():
    pools = sentences.sentence_pools(sentences.TEXTS)
    train = set(pools["train"])
    assert len(train) > 70_000
    assert not train & set(pools["dev"])
    assert not train & set(pools["test"])
    assert len(pools["dev"]) > 4000 and len(pools["test"]) > 4000


def test_texts_choose_the_sentence_lists_the_corpus_speaks(tiny_synth):
    without, with_sotu = (
        sentences.sentence_pools(("wordnet", "web")),
        sentences.sentence_pools(("wordnet", "web", "sotu")),
    )
    assert set(without["train"]) < set(with_sotu["train"]) and set(without["dev"]) < set(with_sotu["dev"])
    tiny_synth["texts"] = ["wordnet", "web", "sotu"]
    plans = synth.plans(build(synth.SynthOptions, tiny_synth, "s"), "train")
    spoken = [plan.text for _, plan in zip(range(40), plans, strict=False)]
    assert set(spoken) <= set(with_sotu["train"])
    assert set(spoken) - set(without["train"])  # some sentences come from the added list


def test_an_espeak_crash_is_survived_and_counted(tmp_path, tiny_synth, monkeypatch):
    real_speak = synth.speak

    def crashing_speak(plan):
        if plan.id.endswith("000002"):
            ctypes.string_at(0)
        return real_speak(plan)

    monkeypatch.setattr(synth, "speak", crashing_speak)
    meta = synth.build_split(build(synth.SynthOptions, tiny_synth, "s"), "train", tmp_path / "s", workers=2)
    (reason,) = meta["skipped"]
    assert "signal 11" in reason
    assert meta["skipped"][reason] == {"count": 1, "first_ids": ["synth-train-000002"]}
    ids = [u.id for u in Store(tmp_path / "s").utterances]
    assert "synth-train-000002" not in ids and "synth-train-000003" in ids


def test_an_unknown_voice_variant_is_refused_with_the_valid_names(tiny_synth):
    tiny_synth["variants"] = ["m1", "m99"]
    with pytest.raises(UserError, match=r"espeak-ng has no \['m99'\]; valid: .*'f3'"):
        build(synth.SynthOptions, tiny_synth, "data.synth")


def test_synthesis_that_always_fails_stops_with_an_error(tmp_path, tiny_synth, monkeypatch):
    def broken_speak(plan):
        raise RuntimeError("no audio device")

    monkeypatch.setattr(synth, "speak", broken_speak)
    with pytest.raises(UserError, match="keeps failing, last: RuntimeError: no audio device"):
        synth.build_split(build(synth.SynthOptions, tiny_synth, "s"), "train", tmp_path / "s", workers=2)
    assert not (tmp_path / "s").exists()


ALL_ON = {
    "reverb": {"probability": 0.5},
    "channel": {"probability": 0.5},
    "speed": {"probability": 0.5},
    "level": {"probability": 0.5},
    "babble": {"probability": 0.5},
}


def test_augmented_training_audio_is_byte_identical_whatever_the_workers(tmp_path, tiny_synth):
    tiny_synth["augment"] = ALL_ON
    options = build(synth.SynthOptions, tiny_synth, "data.synth")
    synth.build_split(options, "train", tmp_path / "one", workers=1)
    synth.build_split(options, "train", tmp_path / "two", workers=2)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    conditions = [set(u.source.get("conditions", {})) for u in Store(tmp_path / "one").utterances]
    for name in ("rt60_s", "channel", "speed", "gain_db", "babble_snr_db"):  # each drawn per utterance
        assert any(name in drawn for drawn in conditions) and not all(name in drawn for drawn in conditions)


def test_augmentation_off_leaves_every_other_choice_as_before(tiny_synth):
    plain = list(zip(range(8), synth.plans(build(synth.SynthOptions, tiny_synth, "s"), "train"), strict=False))
    tiny_synth["augment"] = ALL_ON
    augmented = list(zip(range(8), synth.plans(build(synth.SynthOptions, tiny_synth, "s"), "train"), strict=False))
    assert [(p.text, p.voice, p.noise_snr_db) for _, p in plain] == [
        (p.text, p.voice, p.noise_snr_db) for _, p in augmented
    ]
    assert all(p.augmentation.babble_talkers == 0 and not p.babble for _, p in plain)
    assert any(p.babble for _, p in augmented)


def test_out_of_domain_splits_differ_from_training_as_their_names_say(tiny_synth):
    options = build(synth.SynthOptions, tiny_synth, "s")
    pools = sentences.sentence_pools(options.texts)
    unseen_text = list(zip(range(20), synth.plans(options, "dev_unseen_text"), strict=False))
    assert not {p.text for _, p in unseen_text} & (set(pools["train"]) | set(pools["dev"]))
    assert all(p.voice.name.split("+")[1] in options.variants for _, p in unseen_text)  # training's voices
    unseen_voice = list(zip(range(20), synth.plans(options, "dev_unseen_voice"), strict=False))
    assert {p.text for _, p in unseen_voice} <= set(pools["dev"])  # training's text domain, never its sentences
    for _, plan in unseen_voice:
        assert plan.voice.name.split("+")[1] in options.held_out.variants
        assert plan.voice.words_per_minute > max(options.words_per_minute)
        assert plan.augmentation.rt60_s > max(options.augment.reverb.rt60_s)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"held_out": {"variants": ["m8", "nobody"]}},
            r"data\.synth\.held_out\.variants: espeak-ng has no \['nobody'\]",
        ),
        (
            {"held_out": {"variants": ["m8", "f3"]}},
            r"data\.synth\.held_out\.variants: \['f3'\] also in data\.synth\.variants",
        ),
        ({"augment": {"reverb": {"probability": 1.5}}}, r"data\.synth\.augment\.reverb\.probability is 1\.5"),
        ({"augment": {"babble": {"probability": -0.1}}}, r"data\.synth\.augment\.babble\.probability is -0\.1"),
        ({"augment": {"echo": {"probability": 0.1}}}, r"unknown params data\.synth\.augment\.echo"),
        (
            {"augment": {"babble": {"snr_db": [20, 5]}}},
            r"data\.synth\.augment\.babble\.snr_db: low 20\.0 is above high 5\.0",
        ),
        ({"held_out": {"rt60_s": [1.2, 0.7]}}, r"data\.synth\.held_out\.rt60_s: low 1\.2 is above high 0\.7"),
        ({"texts": ["web", "jargon"]}, r"data\.synth\.texts: 'jargon' is reserved for dev_unseen_text"),
        ({"texts": ["web", "news"]}, r"data\.synth\.texts: no sentence list 'news'; valid: \['wordnet'"),
        ({"texts": []}, r"data\.synth\.texts must not be empty"),
    ],
)
def test_a_bad_held_out_voice_augmentation_or_text_is_one_error_naming_the_key(tiny_synth, change, message):
    tiny_synth.update(change)
    with pytest.raises(UserError, match=message):
        build(synth.SynthOptions, tiny_synth, "data.synth")
