"""tools/train_end_lr.py and train.schedule: the README's account of where training stops is the committed
run's and the reports'. The reports are of the last model trained with ``plateau`` (``PLATEAU_MODEL_MD5``):
they are why the default is now ``anneal``, and the committed run must be their ``anneal`` row."""

import csv
import itertools
import json

from helpers import PLATEAU_MODEL_MD5, REPO, load_tool, readme_words
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


def test_the_report_is_of_the_plateau_model_the_readme_names_and_the_params_rates():
    report = committed_report()
    assert report["model_md5"] == PLATEAU_MODEL_MD5
    assert f"`{PLATEAU_MODEL_MD5[:8]}`" in readme_words()
    params = load_params()
    schedules = report["schedules"]
    assert schedules["same_rate"]["learning_rate"]["last"] == section(params, "train")["learning_rate"]
    assert schedules["lower_rate"]["learning_rate"]["first"] == section(params, "quant.qat")["learning_rate"]


def test_the_readme_table_is_the_report():
    for name, entry in committed_report()["schedules"].items():
        cells = " | ".join(f"{entry['cer'][split]:.4f}" for split in SPLITS)
        change = "" if name == "trained" else f" | {entry['of_trained']['test']:+.1%}".replace("-", "\u2212")
        assert f"| {cells}{change} |" in readme_words(), name


def test_the_readme_says_where_the_rate_falls_only_while_the_committed_run_shows_it():
    with (REPO / "dvclive" / "plots" / "metrics" / "learning_rate.tsv").open() as rows:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(rows, delimiter="\t")]
    train = section(load_params(), "train")
    claim = "every epoch but the last runs at `train.learning_rate`, the last ends near zero"
    annealed = len(rates) == train["epochs"] and set(rates[:-1]) == {train["learning_rate"]}
    annealed = annealed and rates[-1] < train["learning_rate"] / 100
    assert (claim in readme_words()) == annealed


def schedule_report() -> dict:
    return json.loads((REPO / "reports" / "schedule_cpu.json").read_text())


def test_the_schedule_report_is_of_the_plateau_model_and_the_tools_groups():
    groups, tool_groups = schedule_report()["groups"], load_tool("augment_train").GROUPS
    assert groups["trained"]["model_md5"] == PLATEAU_MODEL_MD5
    for name in ("tempo_cosine", "tempo_anneal"):
        assert groups[name]["schedule"] == tool_groups[name]["train"]["schedule"] == name.removeprefix("tempo_")
        assert groups[name]["tempo"] == tool_groups[name]["tempo"] == section(load_params(), "train.tempo")


def test_the_committed_run_is_the_reports_anneal_row():
    """The README reads the report's anneal row as the pipeline's model: training is deterministic, so the
    committed run must repeat it epoch by epoch. Fails when training changes and the report is not run again."""
    with (REPO / "dvclive" / "plots" / "metrics" / "dev" / "cer.tsv").open() as rows:
        committed = [round(float(row["cer"]), 4) for row in csv.DictReader(rows, delimiter="\t")]
    assert schedule_report()["groups"]["tempo_anneal"]["dev_cer_per_epoch"] == committed
    assert section(load_params(), "train")["schedule"] == "anneal"


def test_the_readme_schedule_table_and_ratios_are_the_report():
    groups, readme = schedule_report()["groups"], readme_words()
    plateau = groups["trained"]["cer"]
    rows = {
        "plateau (the default before, `c4b47ea4`)": "trained",
        "cosine": "tempo_cosine",
        "anneal (the default)": "tempo_anneal",
    }
    for label, name in rows.items():
        cer = groups[name]["cer"]
        cells = " | ".join(f"{cer[split]:.4f}" for split in SPLITS)
        changes = (
            ""
            if name == "trained"
            else " | ".join(f"{cer[split] / plateau[split] - 1:+.1%}" for split in ("test", "dev_unseen_voice"))
        )
        assert f"| {label} | {cells} | {changes} |".replace("-", "\u2212").replace("  ", " ") in readme, name
    for split, words in (("dev_unseen_voice", "unseen voice"), ("dev_unseen_text", "unseen text")):
        before, after = (
            groups[name]["cer"][split] / groups[name]["cer"]["dev"] for name in ("trained", "tempo_anneal")
        )
        assert f"{words} / dev {before:.2f} \u2192 {after:.2f}x" in readme, split


def test_the_readme_quotes_the_second_seeds_pair_from_its_report():
    """Each change is computed here from the pair's CERs; a seed whose rate fell would not be a pair."""
    entry = json.loads((REPO / "reports" / "anneal_pairs_cpu.json").read_text())["seeds"]["1"]
    plateau, anneal = entry["plateau"]["cer"], entry["anneal"]["cer"]
    assert entry["rate_fell"] is False

    def change(split: str) -> str:
        return f"{100 * (anneal[split] / plateau[split] - 1):+.1f} %".replace("-", "\u2212")

    readme = readme_words()
    assert f"test {plateau['test']:.4f} \u2192 {anneal['test']:.4f} ({change('test')})" in readme
    for words, split in (("dev", "dev"), ("unseen text", "dev_unseen_text"), ("unseen voice", "dev_unseen_voice")):
        assert f"{words} {change(split)}" in readme, split
