"""tools/unseen_text_vocabulary.py: the per-word split of a CER must add up to the CER, put each edit on the
word it damaged, and the README must quote the committed report."""

import json
from collections import Counter

from helpers import REPO, load_tool
from speechquant.metrics import char_edits

vocabulary = load_tool("unseen_text_vocabulary")


def test_each_edit_falls_on_the_word_it_damaged_and_the_parts_add_up():
    words = vocabulary.edits_per_word("the cat sat", "the cot sat down")
    assert [(word, edits) for word, _, edits in words] == [("the", 0), ("cat", 1), ("sat", 5)]
    assert sum(chars for _, chars, _ in words) == len("the cat sat")
    for reference, hypothesis in [("a b", ""), ("hello world", "jello wurld again"), ("x", "xyz"), ("ab cd", "abcd")]:
        parts = vocabulary.edits_per_word(reference, hypothesis)
        assert sum(edits for *_, edits in parts) == char_edits(reference, hypothesis)
        assert sum(chars for _, chars, _ in parts) == len(reference)


def test_classes_weighted_by_their_shares_give_the_split_cer():
    heard = Counter({"the": 9, "cat": 2})
    rows = [
        {"reference": "the cat sat", "hypothesis": "the cot sad"},
        {"reference": "the dog", "hypothesis": "a dog"},
        {"reference": "", "hypothesis": "ignored"},
    ]
    classes = vocabulary.by_class(rows, heard)
    assert classes["familiar"]["cer"] == 3 / 8  # "the " twice; "a" for "the" is 3 edits
    assert classes["rare"]["cer"] == 1 / 4  # "cat "
    assert classes["unheard"]["cer"] == 1 / 6  # "sat" and "dog", each its sentence's last word
    assert abs(vocabulary.mixed_cer(classes, classes) - classes["all"]["cer"]) < 1e-12
    assert classes["all"]["cer"] == 5 / 18


def test_the_readme_quotes_the_committed_report():
    report = json.loads((REPO / "reports" / "unseen_text_vocabulary.json").read_text())
    readme = (REPO / "README.md").read_text()
    for split, classes in report["splits"].items():
        cells = " | ".join(f"{classes[c]['char_share']:.1%} | {classes[c]['cer']:.3f}" for c in vocabulary.CLASSES)
        assert f"| `{split}` | {cells} | {classes['all']['cer']:.4f} |" in readme, split
    assert f"{report['mix_adjusted_of_dev']:.2f}x" in readme and f"{report['unseen_text_of_dev']:.2f}x" in readme


def test_the_readme_quotes_the_lm_report():
    report = json.loads((REPO / "reports" / "unseen_text_lm.json").read_text())
    readme = (REPO / "README.md").read_text()
    for cers in report["lms"].values():
        assert abs(cers["unseen_text_of_dev"] - cers["dev_unseen_text"] / cers["dev"]) < 1e-3
        quoted = f"| {cers['dev']:.4f} | {cers['test']:.4f} | {cers['dev_unseen_text']:.4f} | "
        assert f"{quoted}{cers['unseen_text_of_dev']:.2f} |" in readme
    evaluated = json.loads((REPO / "metrics" / "eval" / f"{report['variant']}.json").read_text())
    assert [report["lms"]["none"][split] for split in ("dev", "test")] == [evaluated[s]["cer"] for s in ("dev", "test")]
    pipeline_lm = json.loads((REPO / "metrics" / "eval_lm" / f"{report['variant']}-char.json").read_text())
    assert json.loads((REPO / "metrics" / "lm.json").read_text())["text"] == "pool"  # the stage learns the pool
    assert [report["lms"]["pool"][split] for split in ("dev", "test")] == [
        pipeline_lm[s]["cer"] for s in ("dev", "test")
    ]
