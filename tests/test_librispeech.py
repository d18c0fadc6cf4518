import numpy as np
import pytest
import soundfile

from speechquant.corpus import build_corpus
from speechquant.corpus.librispeech import EMPTY_AUDIO, UNREADABLE_AUDIO
from speechquant.errors import UserError
from speechquant.store import Store


def write_chapter(root, subset, lines, rate=22_050, channels=2):
    """A LibriSpeech-style chapter folder; ``lines`` maps id -> (transcript, seconds or None)."""
    chapter = root / subset / "19" / "198"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for utterance_id, (_, seconds) in lines.items():
        if seconds is not None:  # zero seconds: a readable but empty WAV (an empty FLAC is unreadable)
            samples = rng.uniform(-0.5, 0.5, (int(rate * seconds), channels))
            soundfile.write(chapter / f"{utterance_id}.flac", samples, rate, format="FLAC" if seconds else "WAV")
    (chapter / "19-198.trans.txt").write_text("".join(f"{i} {text}\n" for i, (text, _) in lines.items()))
    return chapter


def params(root, subsets) -> dict:
    return {"source": "librispeech", "librispeech": {"root": str(root), "subsets": subsets}}


def test_flac_and_transcripts_become_a_16khz_store(tmp_path):
    write_chapter(tmp_path / "ls", "dev-clean", {"19-198-0001": ("HELLO WORLD", 1.0), "19-198-0000": ("IT'S OK", 0.5)})
    subsets = {"train": ["dev-clean"], "dev": ["dev-clean"], "test": []}
    build_corpus(params(tmp_path / "ls", subsets), tmp_path / "corpus", workers=1)
    store = Store(tmp_path / "corpus" / "train")
    assert [u.id for u in store.utterances] == ["19-198-0000", "19-198-0001"]
    assert [u.text for u in store.utterances] == ["it's ok", "hello world"]
    assert abs(len(store[1]) - 16_000) <= 1 and store.data.dtype == np.int16
    assert len(Store(tmp_path / "corpus" / "test")) == 0


def test_corrupt_missing_empty_and_unwritable_utterances_are_skipped(tmp_path):
    chapter = write_chapter(
        tmp_path / "ls",
        "dev-clean",
        {
            "19-198-0000": ("GOOD ONE", 1.0),
            "19-198-0001": ("CORRUPT", 1.0),
            "19-198-0002": ("MISSING", None),
            "19-198-0003": ("", 1.0),
            "19-198-0004": ("EMPTY AUDIO", 0.0),
            "19-198-0005": ("CHAPTER 12", 1.0),
        },
    )
    (chapter / "19-198-0001.flac").write_bytes(b"not a flac file at all")
    subsets = {"train": ["dev-clean"], "dev": [], "test": []}
    meta = build_corpus(params(tmp_path / "ls", subsets), tmp_path / "corpus", workers=1)["train"]
    skipped = meta["skipped"]
    assert skipped[UNREADABLE_AUDIO]["first_ids"] == ["19-198-0001", "19-198-0002"]
    assert skipped[EMPTY_AUDIO]["first_ids"] == ["19-198-0004"]
    assert skipped["empty transcript"]["count"] == 1
    assert skipped["transcript has characters outside the vocabulary"]["first_ids"] == ["19-198-0005"]
    assert [u.id for u in Store(tmp_path / "corpus" / "train").utterances] == ["19-198-0000"]


def test_a_missing_subset_lists_what_exists(tmp_path):
    write_chapter(tmp_path / "ls", "dev-clean", {"1-2-3": ("A", 1.0)})
    with pytest.raises(UserError, match=r"subset 'train-other-500' .* found: \['dev-clean'\]"):
        build_corpus(params(tmp_path / "ls", {"train": ["train-other-500"]}), tmp_path / "corpus", workers=1)


def test_an_unknown_split_in_subsets_is_refused(tmp_path):
    (tmp_path / "ls").mkdir()
    with pytest.raises(UserError, match="unknown splits"):
        build_corpus(params(tmp_path / "ls", {"validation": ["dev-clean"]}), tmp_path / "corpus", workers=1)
