"""The README's table of pipeline times: each row with a kept log is that log's, not typed by hand."""

import itertools
import json
import re
from datetime import datetime

import pytest

from helpers import REPO, readme_words

LOGS = {
    "AMD EPYC Zen 4 (cpu family 25 model 17; the committed run)": REPO / "reports" / "pipeline_zen4" / "stages.log",
    "Intel Xeon with AMX (family 6 model 167), fresh clone of 29b23c4, setup included": REPO
    / "reports"
    / "pipeline_xeon_amx"
    / "stages.log",
}


def stage_minutes(log: str) -> dict[str, float]:
    """Minutes from each stage's start to the next stage's, from a `time make pipeline` log whose lines
    are stamped HH:MM:SS; `all` is what `time` printed."""
    starts = [
        (match[2], datetime.strptime(match[1], "%H:%M:%S"))
        for match in re.finditer(r"^(\d\d:\d\d:\d\d) Running stage '([^']+)'", log, re.MULTILINE)
    ]
    minutes = {name: (following - began).seconds / 60 for (name, began), (_, following) in itertools.pairwise(starts)}
    real = re.search(r"^real\s+(\d+)m([\d.]+)s", log, re.MULTILINE)
    assert real is not None
    return {**minutes, "all": int(real[1]) + float(real[2]) / 60}


@pytest.mark.parametrize("cpu", list(LOGS))
def test_the_readme_row_of_a_cpu_with_a_kept_log_is_that_logs(cpu):
    minutes = stage_minutes(LOGS[cpu].read_text())
    row = f"| {cpu} | {minutes['all']:.0f} | {minutes['train']:.0f} | {minutes['compress']:.0f} |"
    assert row in (REPO / "README.md").read_text(encoding="utf-8")


def test_stage_minutes_run_from_one_stage_to_the_next():
    log = "10:00:00 Running stage 'train':\n10:39:30 Running stage 'export':\n"
    log += "10:40:00 Running stage 'lm':\nreal\t50m6.0s\n"
    assert stage_minutes(log) == {"train": 39.5, "export": 0.5, "all": 50.1}


@pytest.mark.parametrize("cpu", ["zen3", "icelake"])
def test_a_training_estimate_is_five_times_its_cpus_two_epoch_run(cpu):
    run = json.loads((REPO / "reports" / f"pipeline_{cpu}" / "train_2_epochs.json").read_text())
    assert run["epochs"] == 2 and run["precision"] == "fp32"
    estimate = run["wall_seconds"] * 5 / 60
    rate = run["train_audio_seconds_per_second"]
    minutes = run["wall_seconds"] / 60
    row = f"about {estimate:.0f} in fp32 (5 x the {minutes:.0f} min of `train.epochs=2`, {rate:.0f} audio-s/s)"
    assert row in (REPO / "README.md").read_text(encoding="utf-8")


def test_the_readme_quotes_both_trainings_of_one_model_on_the_xeon_with_amx():
    """The claim that a time moves by a quarter between sessions rests on one model trained twice, byte
    for byte: the kept run's, and the one the augment_train report scored as the pipeline's own."""
    folder = REPO / "reports" / "pipeline_xeon_amx"
    first = json.loads((folder / "train.json").read_text())
    again = json.loads((folder / "train_again.json").read_text())
    assert first["best_dev_cer"] == again["best_dev_cer"] and first["final_dev_loss"] == again["final_dev_loss"]
    scored = json.loads((REPO / "reports" / "augment_train_xeon_amx.json").read_text())["groups"]["trained"]
    assert scored["model_md5"] in (folder / "dvc.lock").read_text()
    readme = readme_words()
    assert f"(md5 `{scored['model_md5'][:8]}…` in both)" in readme
    assert f"took {again['wall_seconds']:,.0f} s to train here against {first['wall_seconds']:,.0f} s" in readme
