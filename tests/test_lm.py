import json
import subprocess
import sys
from collections import defaultdict

import pytest
import yaml
from test_decode import log_probs

from helpers import REPO, write_feature_store
from speechquant.corpus.sentences import sentence_pools
from speechquant.decode import Decoder, DecoderOptions, arpa_unigrams
from speechquant.lm import lm_units, write_arpa

TRANSCRIPTS = ["the cat sat on the mat", "the cat ran", "a dog sat on a log", "the dog ran to the cat"]


def read_arpa(path) -> tuple[dict, dict]:
    probabilities, backoffs, order = {}, {}, 0
    for line in path.read_text().splitlines():
        if line.endswith("-grams:"):
            order = int(line[1])
        elif order and line and not line.startswith("\\"):
            fields = line.split("\t")
            gram = tuple(fields[1].split())
            probabilities[gram] = float(fields[0])
            if len(fields) == 3:
                backoffs[gram] = float(fields[2])
    return probabilities, backoffs


def arpa_log10(probabilities: dict, backoffs: dict, history: tuple, unit: str) -> float:
    """ARPA semantics: the longest seen n-gram, plus the backoff weights of the shorter histories."""
    if (*history, unit) in probabilities:
        return probabilities[(*history, unit)]
    return backoffs.get(history, 0.0) + arpa_log10(probabilities, backoffs, history[1:], unit)


@pytest.mark.parametrize(("level", "order"), [("char", 4), ("word", 3)])
def test_every_history_gives_a_distribution_that_sums_to_one(tmp_path, level, order):
    counts = write_arpa(TRANSCRIPTS, level, order, tmp_path / "lm.arpa")
    probabilities, backoffs = read_arpa(tmp_path / "lm.arpa")
    assert counts["1-grams"] == sum(len(gram) == 1 for gram in probabilities)
    vocabulary = [gram[0] for gram in probabilities if len(gram) == 1 and gram[0] != "<s>"]
    histories = defaultdict(set)
    for gram in probabilities:
        if len(gram) > 1:
            histories[len(gram)].add(gram[:-1])
    assert histories[order], "the model should hold n-grams of the full order"
    for history in [(), *histories[2], *histories[order]]:
        total = sum(10 ** arpa_log10(probabilities, backoffs, history, unit) for unit in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-5), history


def test_seen_continuations_beat_unseen_ones(tmp_path):
    write_arpa(TRANSCRIPTS, "word", 3, tmp_path / "lm.arpa")
    probabilities, backoffs = read_arpa(tmp_path / "lm.arpa")
    assert arpa_log10(probabilities, backoffs, ("the",), "cat") > arpa_log10(probabilities, backoffs, ("the",), "log")
    assert lm_units("a b", "char") == ["a", "|", "b"]
    assert arpa_unigrams(tmp_path / "lm.arpa") == sorted({w for t in TRANSCRIPTS for w in t.split()})


def ambiguous(word_frames: str) -> list[dict[str, float]]:
    """Frames spelling a text where the acoustics slightly prefer 'o' wherever 'a' or 'o' is spoken."""
    frames = []
    for char in word_frames:
        frames.append({"o": 0.5, "a": 0.4} if char in "oa" else ({"<": 0.9} if char == "_" else {char: 0.9}))
    return frames


@pytest.mark.parametrize(("lm", "weight"), [("char", 1.0), ("word", 1.0)])
def test_a_language_model_resolves_what_the_acoustics_cannot(tmp_path, lm, weight):
    write_arpa(TRANSCRIPTS, lm, 3 if lm == "word" else 4, tmp_path / "lm.arpa")
    frames = log_probs(ambiguous("the_ c_a_t_ r_a_n"))
    with_lm = Decoder(DecoderOptions(lm=lm, lm_weight=weight, word_score=0.0), tmp_path / "lm.arpa")
    assert Decoder(DecoderOptions())(frames, len(frames)) == "the cot ron"
    assert with_lm(frames, len(frames)) == "the cat ran"


def test_a_missing_language_model_is_one_clear_error(tmp_path):
    from speechquant.errors import UserError

    frames = log_probs(ambiguous("c_a_t"))
    with pytest.raises(UserError, match="not found"):
        Decoder(DecoderOptions(lm="char"), tmp_path / "absent.arpa")(frames, len(frames))


def run_lm_stage(folder, lm_params: dict, source: str):
    """stages/lm.py in ``folder`` with the repository's params but ``lm`` and ``data.source`` replaced."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["lm"].update(lm_params)
    params["data"]["source"] = source
    params["data"]["synth"]["texts"] = ["wordnet"]  # the smallest list: a pool of seconds
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    write_feature_store(folder / "train", 10, seed=0)
    command = [sys.executable, str(REPO / "stages" / "lm.py"), "--features", "train", "--output-dir", "lm"]
    return subprocess.run([*command, "--metrics", "lm.json"], cwd=folder, capture_output=True, text=True)


def test_the_lms_learn_synths_whole_training_pool_or_the_transcripts(tmp_path):
    pool = sentence_pools(("wordnet",))["train"]
    for source, text, expected in [("synth", "pool", "pool"), ("librispeech", "pool", "transcripts")]:
        folder = tmp_path / f"{source}-{text}"
        folder.mkdir()
        result = run_lm_stage(folder, {"text": text, "char_order": 3, "word_order": 2}, source)
        assert result.returncode == 0, result.stderr
        metrics = json.loads((folder / "lm.json").read_text())
        words = set(arpa_unigrams(folder / "lm" / "word.arpa"))
        assert metrics["text"] == expected and metrics["transcripts"] == 10
        if expected == "pool":  # every pool sentence, none of dev's
            assert metrics["sentences"] == len(pool) and words >= set(pool[0].split()) | set(pool[-1].split())
        else:  # another source has no unspoken text: its transcripts alone
            assert metrics["sentences"] == 10 and words == {"a", "cab", "bad", "dab", "add", "be", "bee"}


def test_an_unknown_lm_text_is_one_error_line_and_writes_nothing(tmp_path):
    result = run_lm_stage(tmp_path, {"text": "books"}, "synth")
    assert result.returncode != 0
    assert result.stderr.strip() == "error: params lm.text is 'books'; valid: pool, transcripts"
    assert not (tmp_path / "lm").exists() and not (tmp_path / "lm.json").exists()
