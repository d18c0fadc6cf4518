"""tools/unseen_voice_factors.py: each factor set must differ from dev in its one held-out condition only,
or the table would credit one condition with another's cost."""

import dataclasses
import itertools
import json

from helpers import REPO, load_tool, readme_words
from speechquant.corpus import synth
from speechquant.corpus.augment import Augmentation
from speechquant.params import build, load_params, section

factors = load_tool("unseen_voice_factors")


def differences(plan: synth.Plan, reference: synth.Plan) -> set[str]:
    """The fields (voice fields by their own name) in which two plans differ."""
    changed = {
        name for name in ("text", "noise_snr_db", "augmentation") if getattr(plan, name) != getattr(reference, name)
    }
    voice, other = dataclasses.asdict(plan.voice), dataclasses.asdict(reference.voice)
    return changed | {f"voice.{name}" for name in voice if voice[name] != other[name]}


def test_each_factor_changes_one_held_out_condition_and_all_of_them_change_together():
    options = build(synth.SynthOptions, section(load_params(), "data.synth"), "data.synth")
    dev = list(itertools.islice(synth.plans(options, "dev"), 20))
    unseen = list(itertools.islice(synth.plans(options, "dev_unseen_voice"), 20))
    held = options.held_out
    for dev_plan, unseen_plan in zip(dev, unseen, strict=True):
        sets = factors.factor_plans(dev_plan, unseen_plan)
        assert sets["in_domain"] == dev_plan
        assert differences(sets["voice"], dev_plan) <= {"voice.name"}
        assert sets["voice"].voice.name.split("+") == [
            dev_plan.voice.name.split("+")[0],
            unseen_plan.voice.name.split("+")[1],
        ]
        assert sets["voice"].voice.name.split("+")[1] in held.variants
        assert differences(sets["speed"], dev_plan) <= {"voice.words_per_minute"}
        assert held.words_per_minute[0] <= sets["speed"].voice.words_per_minute <= held.words_per_minute[1]
        assert differences(sets["room"], dev_plan) == {"augmentation"}
        assert sets["room"].augmentation == Augmentation(
            rt60_s=unseen_plan.augmentation.rt60_s, seed=unseen_plan.augmentation.seed
        )
        brown = sets["brown_noise"]
        assert differences(brown, dev_plan) <= {"augmentation", "noise_snr_db"} and brown.noise_snr_db is None
        assert brown.augmentation.rt60_s is None and brown.augmentation.brown_noise_snr_db is not None
        both = sets["voice_brown_noise"]
        assert both == dataclasses.replace(brown, voice=sets["voice"].voice)
        assert sets["all"] == dataclasses.replace(unseen_plan, text=dev_plan.text)


def test_the_committed_report_is_of_the_pipelines_model_and_its_ratios_are_its_cers():
    report = json.loads((REPO / "reports" / "unseen_voice_factors.json").read_text())
    lock = (REPO / "dvc.lock").read_text()
    assert report["model_md5"] in lock
    in_domain = report["factors"]["in_domain"]["cer"]
    for entry in report["factors"].values():
        assert abs(entry["of_in_domain"] - entry["cer"] / in_domain) < 1e-3


def test_the_readme_quotes_both_reports():
    readme = (REPO / "README.md").read_text()
    for entry in json.loads((REPO / "reports" / "unseen_voice_factors.json").read_text())["factors"].values():
        assert f"| {entry['cer']:.4f} | {entry['of_in_domain']:.2f} |" in readme
    for report in (
        "augment_train_h100.json",
        "tempo_h100.json",
        "tempo_seeds_h100.json",
        "augment_train_xeon_amx.json",
        "augment_train_xeon_amx_seed1.json",
    ):
        for group, entry in json.loads((REPO / "reports" / report).read_text())["groups"].items():
            cer, ratio, factors = entry["cer"], entry["of_dev"], entry["factors_of_in_domain"]
            quoted = (
                f"| {cer['dev']:.4f} | {cer['test']:.4f} | {ratio['dev_unseen_text']:.2f} "
                f"| {ratio['dev_unseen_voice']:.2f} | {factors['speed']:.2f} | {factors['room']:.2f} |"
            )
            assert f"| {group} |" in readme and quoted in readme, (report, group)


def test_the_tempo_report_names_the_tools_groups_with_the_tools_settings():
    """The H100 numbers were made by the tool's scratch predecessor: its groups must be the tool's, so
    that `tools/augment_train.py --groups ...` repeats them."""
    groups = load_tool("augment_train").GROUPS
    for name, entry in json.loads((REPO / "reports" / "tempo_h100.json").read_text())["groups"].items():
        tempo = entry["tempo"]
        assert name in groups and entry["augment"] == groups[name].get("augment", {})
        assert tempo["probability"] == groups[name]["tempo"]["probability"]
        if tempo["probability"]:
            assert tempo["factor"] == groups[name]["tempo"]["factor"]
    assert section(load_params(), "train.tempo") == groups["tempo"]["tempo"]  # the default is the group measured


def test_the_readme_quotes_tempos_change_per_seed_from_the_reports():
    """The claim that tempo's in-domain cost is within a training run's spread rests on these
    per-seed changes and ranges; each is computed here from the two H100 reports."""
    groups = load_tool("augment_train").GROUPS
    runs = {
        (name, 0): entry
        for name, entry in json.loads((REPO / "reports" / "tempo_h100.json").read_text())["groups"].items()
    }
    for name, entry in json.loads((REPO / "reports" / "tempo_seeds_h100.json").read_text())["groups"].items():
        group, seed = name.split("/seed")
        assert entry["seed"] == int(seed) and entry["tempo"] == {**groups["tempo"]["tempo"], **groups[group]["tempo"]}
        runs[(group, int(seed))] = entry
    seeds = sorted(seed for group, seed in runs if group == "tempo")
    assert seeds == [0, 1, 2, 3] and sorted(seed for group, seed in runs if group == "base") == seeds
    readme = readme_words()
    for split in ("test", "dev_unseen_voice"):
        changes = [100 * (runs[("tempo", s)]["cer"][split] / runs[("base", s)]["cer"][split] - 1) for s in seeds]
        listed = ", ".join(f"{c:+.1f}" for c in changes[:-1]) + f" and {changes[-1]:+.1f} %"
        assert listed.replace("-", "\u2212") in readme, split
        assert f"(mean {sum(changes) / len(changes):+.1f} %".replace("-", "\u2212") in readme, split
    for group in ("base", "tempo"):
        test = [runs[(group, s)]["cer"]["test"] for s in seeds]
        assert f"{min(test):.4f} to {max(test):.4f} (`{group}`)" in readme, group


def test_the_cpu_runs_of_both_factors_pushed_further_are_the_tools_group_against_the_default_recipe():
    """The Xeon runs compare the group with the default recipe trained alike, seed by seed: seed 0's
    default is the pipeline's own model on that CPU (its md5 is the kept run's), seed 1's the tool's
    `tempo` group, which is the params' recipe. The per-seed changes the README quotes are computed here."""
    groups = load_tool("augment_train").GROUPS
    pushed = groups["tempo_0.8_reverb_0.6"]
    first = json.loads((REPO / "reports" / "augment_train_xeon_amx.json").read_text())
    second = json.loads((REPO / "reports" / "augment_train_xeon_amx_seed1.json").read_text())
    kept_run = (REPO / "reports" / "pipeline_xeon_amx" / "dvc.lock").read_text()
    assert first["groups"]["trained"]["model_md5"] in kept_run
    assert section(load_params(), "train.tempo") == groups["tempo"]["tempo"]
    assert second["groups"]["tempo/seed1"]["augment"] == {} and "augment" not in groups["tempo"]
    for report in (first, second):
        assert report["machine"]["cpu_id"] == "family 6 model 167 stepping 1" and report["train"]["precision"] == "bf16"
    pairs = {
        0: (first["groups"]["trained"], first["groups"]["tempo_0.8_reverb_0.6"]),
        1: (second["groups"]["tempo/seed1"], second["groups"]["tempo_0.8_reverb_0.6/seed1"]),
    }
    readme = readme_words()
    for seed, (default, changed) in pairs.items():
        assert changed["augment"] == pushed["augment"] and changed["tempo"] == pushed["tempo"]
        assert changed["seed"] == seed
        listed = ", ".join(
            f"{split} {100 * (changed['cer'][split] / default['cer'][split] - 1):+.1f} %"
            for split in ("dev", "test", "dev_unseen_text", "dev_unseen_voice")
        )
        assert f"seed {seed}: {listed}".replace("-", "\u2212") in readme, seed
