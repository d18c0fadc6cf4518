import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO
from speechquant.audio import FeatureOptions
from speechquant.corpus import build_corpus, hw4p2
from speechquant.errors import UserError
from speechquant.features import NON_FINITE, TOO_SHORT, build_split
from speechquant.store import Store

RNG = np.random.default_rng(0)


def object_array(elements) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    for index, element in enumerate(elements):
        array[index] = element
    return array


def power(frames: int) -> np.ndarray:
    return RNG.random((frames, 40)).astype(np.float32) + 1e-3


def words(text: str, as_object: bool = False) -> np.ndarray:
    encoded = [word.encode() for word in text.split()]
    return np.array(encoded, dtype=object) if as_object else np.array(encoded)


def write_competition(directory, train_features, train_transcripts, dev_count=2, test_count=2):
    """Files laid out as the Kaggle download unpacks them."""
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "train.npy", object_array(train_features), allow_pickle=True)
    np.save(directory / "train_transcripts.npy", object_array(train_transcripts), allow_pickle=True)
    np.save(directory / "dev.npy", object_array([power(80) for _ in range(dev_count)]), allow_pickle=True)
    np.save(
        directory / "dev_transcripts.npy",
        object_array([words("THE CAT SAT") for _ in range(dev_count)]),
        allow_pickle=True,
    )
    np.save(directory / "test.npy", object_array([power(60) for _ in range(test_count)]), allow_pickle=True)


def hw4p2_params(download_dir) -> dict:
    return {"source": "hw4p2", "hw4p2": {"competition": "11785-spring2021-hw4p2", "download_dir": str(download_dir)}}


def test_competition_files_become_stores_and_their_log_is_taken(tmp_path):
    features = [power(100), power(120)]
    write_competition(tmp_path / "dl" / "hw4p2", features, [words("HELLO WORLD"), words("IT'S A TEST", True)])
    build_corpus(hw4p2_params(tmp_path / "dl"), tmp_path / "corpus", workers=1)
    train = Store(tmp_path / "corpus" / "train")
    assert [u.text for u in train.utterances] == ["hello world", "it's a test"]
    np.testing.assert_array_equal(train[1], features[1])
    test = Store(tmp_path / "corpus" / "test")
    assert len(test) == 2 and all(u.text is None for u in test.utterances)

    build_split(tmp_path / "corpus" / "train", tmp_path / "features", FeatureOptions(dtype="float32"))
    np.testing.assert_allclose(Store(tmp_path / "features")[0], np.log(features[0]), rtol=1e-6)
    build_split(tmp_path / "corpus" / "test", tmp_path / "test_features", FeatureOptions())
    assert len(Store(tmp_path / "test_features")) == 2  # decoded later, though never scored


def test_bad_utterances_are_skipped_with_counts_and_ids(tmp_path):
    nan = power(100)
    nan[3, 5] = np.nan
    features = [power(100), nan, power(100), power(100), power(10), power(100)]
    transcripts = [
        words("GOOD"),
        words("GOOD"),
        np.array([], dtype="S1"),
        words("ROOM 101"),
        words("TOO LONG"),
        words("OK"),
    ]
    write_competition(tmp_path / "dl", features, transcripts)
    corpus_meta = build_corpus(hw4p2_params(tmp_path / "dl"), tmp_path / "corpus", workers=1)["train"]
    assert corpus_meta["skipped"]["empty transcript"]["first_ids"] == ["hw4p2-train-000002"]
    assert corpus_meta["skipped"]["transcript has characters outside the vocabulary"]["count"] == 1
    meta = build_split(tmp_path / "corpus" / "train", tmp_path / "features", FeatureOptions())
    assert meta["skipped"][NON_FINITE]["first_ids"] == ["hw4p2-train-000001"]
    assert meta["skipped"][TOO_SHORT]["first_ids"] == ["hw4p2-train-000004"]
    assert sum(entry["count"] for entry in meta["skipped"].values()) == 4
    assert [u.id for u in Store(tmp_path / "features").utterances] == ["hw4p2-train-000000", "hw4p2-train-000005"]


def test_features_and_transcripts_of_different_counts_is_one_clear_error(tmp_path):
    write_competition(tmp_path / "dl", [power(50)] * 3, [words("A B")] * 2)
    with pytest.raises(UserError, match=r"train\.npy has 3 utterances but train_transcripts\.npy has 2"):
        build_corpus(hw4p2_params(tmp_path / "dl"), tmp_path / "corpus", workers=1)
    assert not (tmp_path / "corpus").exists()


def test_an_element_of_the_wrong_type_is_named(tmp_path):
    write_competition(tmp_path / "dl", [power(50), RNG.random((50, 13))], [words("A B")] * 2)
    with pytest.raises(UserError, match=r"train.npy: element 1 .* expected \(T, 40\)"):
        build_corpus(hw4p2_params(tmp_path / "dl"), tmp_path / "corpus", workers=1)


def test_missing_credentials_give_one_line_and_leave_nothing(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = "hw4p2"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"))
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "corpus.py")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Kaggle credentials not found")
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "params.yaml" and "home" not in p.parts]
    assert leftovers == []


class FailingKaggle:
    """Stands in for KaggleApi: writes part of the archive, then fails as the server would."""

    def __init__(self, error: Exception):
        self.error = error

    def competition_download_files(self, competition, path, quiet):
        (Path(path) / f"{competition}.zip").write_bytes(b"partial")
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RuntimeError("403 Client Error: Forbidden for url"), "accept the competition rules at https://www.kaggle.com"),
        (RuntimeError("401 Client Error: Unauthorized"), "Kaggle rejected the credentials"),
        (ConnectionError("Max retries exceeded: Name or service not known"), "check the network"),
    ],
)
def test_a_failed_download_says_what_to_do_and_leaves_nothing(tmp_path, monkeypatch, error, expected):
    monkeypatch.setattr(hw4p2, "_authenticated_api", lambda competition: FailingKaggle(error))
    with pytest.raises(UserError, match=re.escape(expected)):
        build_corpus(hw4p2_params(tmp_path / "downloads" / "hw4p2"), tmp_path / "corpus", workers=1)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


class RunsCommand:
    """A pickled element that runs a shell command when unpickled (the classic payload)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class EvaluatesCode:
    """A quieter payload: ``eval`` leaves a trace on disk and returns a valid array."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        code = f"__import__('pathlib').Path({str(self.marker)!r}).touch() or __import__('numpy').ones((80, 40))"
        return (eval, (code,))


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_a_crafted_file_is_refused_with_one_line_and_its_code_never_runs(tmp_path, payload):
    marker = tmp_path / "marker"
    element = RunsCommand(f"touch {marker}") if payload == "system" else EvaluatesCode(marker)
    write_competition(tmp_path / "dl", [power(80), element], [words("A B")] * 2)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(hw4p2_params(tmp_path / "dl"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "corpus.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert not marker.exists()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'dl' / 'train.npy'} is not a readable")
    assert not (tmp_path / "data" / "corpus").exists()


def test_real_files_pickled_by_python_2_still_load(tmp_path):
    """Arrays pickled with protocol 2 carry their bytes as latin-1 text through _codecs.encode."""
    features = object_array([power(90), power(70)])
    with open(tmp_path / "train.npy", "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "|O", "fortran_order": False, "shape": (2,)})
        __import__("pickle").dump(features, file, protocol=2)
    loaded = hw4p2._load_object_array(tmp_path / "train.npy")
    np.testing.assert_array_equal(loaded[1], features[1])


class SucceedingKaggle:
    """Stands in for KaggleApi: 'downloads' a valid competition archive."""

    def competition_download_files(self, competition, path, quiet):
        write_competition(Path(path) / "unpacked", [power(80)], [words("A B")])


def test_a_download_never_replaces_a_folder_the_project_did_not_create(tmp_path, monkeypatch):
    monkeypatch.setattr(hw4p2, "_authenticated_api", lambda competition: SucceedingKaggle())
    mine = tmp_path / "data"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="not a download of ours") as refused:
        hw4p2.fetch(hw4p2.Hw4p2Options(download_dir=str(mine)))
    assert "\n" not in str(refused.value)
    assert (mine / "thesis.tex").read_text() == "years of work" and len(list(mine.iterdir())) == 1

    fresh = tmp_path / "downloads" / "hw4p2"
    assert hw4p2.fetch(hw4p2.Hw4p2Options(download_dir=str(fresh))) == fresh
    assert (fresh / hw4p2.DOWNLOAD_MARK).is_file() and (fresh / "unpacked" / "train.npy").is_file()
    (fresh / "unpacked" / "dev.npy").unlink()  # an incomplete earlier download of ours is replaced
    hw4p2.fetch(hw4p2.Hw4p2Options(download_dir=str(fresh)))
    assert (fresh / "unpacked" / "dev.npy").is_file()
    assert sorted(p.name for p in fresh.parent.iterdir()) == ["hw4p2"]  # no scratch folder left beside it


def test_two_files_of_one_name_are_refused_rather_than_one_picked(tmp_path):
    write_competition(tmp_path / "dl", [power(80)], [words("A B")])
    write_competition(tmp_path / "dl" / "a_old_backup", [power(50), power(60)], [words("C"), words("D")])
    with pytest.raises(UserError, match=r"several train\.npy under .*a_old_backup/train\.npy, .*dl/train\.npy"):
        build_corpus(hw4p2_params(tmp_path / "dl"), tmp_path / "corpus", workers=1)
    assert not (tmp_path / "corpus").exists()
