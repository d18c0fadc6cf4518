"""tools/train_end_lr.py: the README's account of where training stops is the committed run's and the report's."""

import csv
import itertools
import json

from helpers import REPO, load_tool, readme_words, trained_model_md5
from speechquant.params import load_params, section

SPLITS = ("dev", "test", "dev_unseen_text", "dev_unseen_voice")


def committed_report() -> dict:
    return json.loads((REPO / "reports" / "train_end_lr.json").read_text())


def test_the_schedules_are_the_ones_named():
    rates = load_tool("train_end_lr").schedules(0.002, 1e-4, 200)
    assert [rates["same_rate"](step) for step in (0, 199)] == [0.002, 0.002]
    assert [rates["lower_rate"](step) for step in (0, 199)] == [1e-4, 1e-4]
    cosine = [rates["cosine"](step) for step in range(200)]
    assert cosine[0] == 0.002 and cosine[100] == 0.001 and 0 < cosine[-1] < 1e-6
    assert all(later < earlier for earlier, later in itertools.pairwise(cosine))


def test_the_report_is_of_the_committed_model_and_the_params_rates():
    """Fails when the model is trained again and the report is not run again on it."""
    report = committed_report()
    assert report["model_md5"] == trained_model_md5()
    params = load_params()
    schedules = report["schedules"]
    assert schedules["same_rate"]["learning_rate"]["last"] == section(params, "train")["learning_rate"]
    assert schedules["lower_rate"]["learning_rate"]["first"] == section(params, "quant.qat")["learning_rate"]


def test_the_readme_table_is_the_report():
    for name, entry in committed_report()["schedules"].items():
        cells = " | ".join(f"{entry['cer'][split]:.4f}" for split in SPLITS)
        change = "" if name == "trained" else f" | {entry['of_trained']['test']:+.1%}".replace("-", "\u2212")
        assert f"| {cells}{change} |" in readme_words(), name


def test_the_readme_says_the_rate_never_fell_only_while_the_committed_run_shows_it():
    with (REPO / "dvclive" / "plots" / "metrics" / "learning_rate.tsv").open() as rows:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(rows, delimiter="\t")]
    claim = "all ten epochs run at `train.learning_rate`"
    never_fell = len(rates) == 10 and set(rates) == {section(load_params(), "train")["learning_rate"]}
    assert (claim in readme_words()) == never_fell
