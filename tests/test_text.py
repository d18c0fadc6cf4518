import pytest

from speechquant.text import NUM_CLASSES, detokenize, normalize, tokenize


def test_vocabulary_matches_the_study():
    assert tokenize("hello world") == [8, 5, 12, 12, 15, 32, 23, 15, 18, 12, 4]
    assert tokenize("-'._+") == [27, 28, 29, 30, 31]
    assert NUM_CLASSES == 35


def test_detokenize_inverts_tokenize_and_skips_blank():
    assert detokenize([0, *tokenize("it's ok"), 0, 34]) == "it's ok"


@pytest.mark.parametrize("text", ["a<b", "end>", "caps", "x1"])
def test_tokenize_rejects_what_a_transcript_cannot_hold(text):
    with pytest.raises(ValueError):
        tokenize(text.replace("caps", "Caps"))


def test_normalize_drops_unspoken_punctuation_and_counts_it():
    result = normalize("Hello, World!  “Quoted”")
    assert result.text == "hello world quoted"
    assert result.dropped == 4
    assert result.out_of_vocabulary == ""


def test_normalize_keeps_apostrophes_and_strips_accents():
    assert normalize("Isn\u2019t it naïve").text == "isn't it naive"


def test_normalize_reports_spoken_characters_it_cannot_write():
    result = normalize("Chapter 12 costs $5")
    assert result.out_of_vocabulary == "$125"
