"""tools/compress_seeds.py: its report is the pipeline's own run for the pipeline's seed, and the README shows it."""

import dataclasses
import json
from hashlib import md5

import pytest
import yaml

from helpers import REPO, ZEN5_RUN, load_tool, readme_words, trained_model_md5, zen5_run_outputs
from speechquant.errors import UserError
from speechquant.params import load_params


def committed_report() -> dict:
    return json.loads((REPO / "reports" / "compress_seeds.json").read_text())


def mean_test_cer(report: dict, variant: str) -> str:
    """A variant's test CER averaged over a report's seeds, as the README quotes it."""
    return f"{sum(run[variant]['test']['cer'] for run in report['seeds'].values()) / len(report['seeds']):.4f}"


def test_the_readme_table_is_what_the_committed_report_renders():
    block = load_tool("compress_seeds").seeds_block(committed_report())
    assert block in (REPO / "README.md").read_text(encoding="utf-8")


def test_the_readme_quotes_the_800_step_report_of_the_zen5_runs_model_with_its_options_but_steps():
    """800 steps were measured on the Zen 5 run's trained model with that run's compress params;
    the README must quote their mean gaps."""
    fewer = json.loads((REPO / "reports" / "compress_seeds_800.json").read_text())
    assert fewer["model_md5"] == zen5_run_outputs()["models/model.pt"]
    locked = yaml.safe_load((ZEN5_RUN / "dvc.lock").read_text())["stages"]["compress"]["params"]["params.yaml"]
    for option, value in fewer["options"].items():
        if option not in ("steps", "precision"):  # precision: as resolved (bf16 for the lock's auto)
            assert locked["compress"][option] == value, option
    assert fewer["options"]["steps"] == 800 and sorted(fewer["seeds"]) == ["0", "1", "2"]
    gaps = fewer["mean_gaps"]
    int8, fp32 = gaps["pruned_int8"], gaps["pruned_fp32"]
    quoted = (
        f"**{int8['dev']:.2%} behind its control on dev and {int8['test']:.2%} on test** "
        f"(`pruned_fp32` {fp32['dev']:.2%} and {fp32['test']:.2%};"
    )
    assert quoted.replace("%", " %") in readme_words()


def test_the_control_teacher_run_left_the_control_as_it_was_and_the_readme_quotes_its_gaps():
    """Online distillation changes only the compressed model's teacher: the same seed's control must end
    bit-identical (equal CER) to the trained teacher's run, and the README quotes both gaps."""
    online = json.loads((REPO / "reports" / "compress_seeds_800_control_teacher.json").read_text())
    offline = json.loads((REPO / "reports" / "compress_seeds_800.json").read_text())
    assert online["model_md5"] == offline["model_md5"] and online["options"]["teacher"] == "control"
    assert {**online["options"], "teacher": "trained"} == offline["options"]
    for split in ("dev", "test"):
        assert online["seeds"]["0"]["fp32_finetuned"][split] == offline["seeds"]["0"]["fp32_finetuned"][split]

    def gap(report: dict, split: str) -> str:
        return f"{report['seeds']['0']['pruned_int8'][split]['vs_control']['relative_difference']:+.2%}".replace(
            "%", " %"
        )

    quoted = (
        f"{gap(online, 'dev')} on dev and {gap(online, 'test')} on test, against {gap(offline, 'dev')} and "
        f"{gap(offline, 'test')}"
    )
    assert quoted in readme_words()


def test_the_pipelines_seed_repeats_the_pipelines_scores_of_the_same_trained_model():
    """Fails when the tool stops doing what the compress, quantize, evaluate and compare stages do,
    or when the model changes and the report is not run again."""
    tool = load_tool("compress_seeds")
    report = committed_report()
    assert report["model_md5"] == trained_model_md5()
    seed = yaml.safe_load((REPO / "params.yaml").read_text())["compress"]["seed"]
    compare = json.loads((REPO / "metrics" / "compare.json").read_text())
    own = report["seeds"][str(seed)]
    for variant in (tool.CONTROL, *tool.COMPRESSED):
        for split in tool.SPLITS:
            assert own[variant][split]["cer"] == compare[variant][split]["cer"]
            if variant != tool.CONTROL:
                assert own[variant][split]["vs_control"] == compare[variant][split][f"vs_{tool.CONTROL}"]


def test_mean_gaps_average_each_model_and_split_over_the_seeds():
    tool = load_tool("compress_seeds")

    def gap(value: float) -> dict:
        return {"vs_control": {"relative_difference": value}}

    seeds = {
        seed: {variant: {"dev": gap(low), "test": gap(high)} for variant in tool.COMPRESSED}
        for seed, (low, high) in {"0": (0.01, 0.02), "1": (0.03, 0.05)}.items()
    }
    means = tool.mean_gaps(seeds)
    assert means["pruned_fp32"] == {"dev": 0.02, "test": 0.035} == means["pruned_int8"]


def test_seeds_added_later_join_the_table_only_from_the_same_model_options_and_cpu(tmp_path):
    """`--add` must refuse, before 25 minutes of measuring, runs that would not be comparable."""
    tool = load_tool("compress_seeds")
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"trained")
    own = tool.provenance(tool.compress_options(load_params(), None), checkpoint)
    report = {**own, "seeds": {"0": {}}, "seconds": 10.0}
    tool.check_addable(report, own, [1, 2])  # the same model, options and CPU: accepted
    refusals = {
        "another model": {**report, "model_md5": "0" * 32},
        "other options": {**report, "options": {**report["options"], "steps": 1}},
        "another CPU": {**report, "machine": {**report["machine"], "cpu": "another"}},
        "another generation of it": {**report, "machine": {**report["machine"], "cpu_id": "family 0 model 0"}},
        "a seed twice": {**report, "seeds": {"1": {}}},
    }
    for why, unlike in refusals.items():
        with pytest.raises(SystemExit, match="error:"):
            tool.check_addable(unlike, own, [1, 2])
            pytest.fail(why)


def test_merged_seeds_are_ordered_and_averaged_together():
    tool = load_tool("compress_seeds")

    def run(gap: float) -> dict:
        return {
            variant: {split: {"vs_control": {"relative_difference": gap}} for split in tool.SPLITS}
            for variant in tool.COMPRESSED
        }

    first = {"seeds": {"0": run(0.01)}, "seconds": 100.0, "model_md5": "m"}
    later = {"seeds": {"2": run(0.05), "1": run(0.03)}, "seconds": 250.0}
    report = tool.merged(first, later)
    assert list(report["seeds"]) == ["0", "1", "2"]
    assert report["mean_gaps"]["pruned_int8"] == {"dev": 0.03, "test": 0.03}
    assert report["seconds"] == 350.0 and report["model_md5"] == "m"


def test_added_seeds_are_written_to_the_report_as_well_as_the_readme(tmp_path, monkeypatch):
    tool = load_tool("compress_seeds")
    gap = {"vs_control": {"relative_difference": 0.01, "relative_ci95_low": 0.0, "relative_ci95_high": 0.02}}
    run = {tool.CONTROL: {s: {"cer": 0.1} for s in tool.SPLITS}}
    run.update({v: {s: {"cer": 0.1, **gap} for s in tool.SPLITS} for v in tool.COMPRESSED})
    machine = {"cpu": "cpu", "isa": "isa", "cores": 2}
    first = {"machine": machine, "options": {"steps": 1}, "seeds": {"0": run}, "seconds": 60.0}
    output, readme = tmp_path / "report.json", tmp_path / "README.md"
    output.write_text(json.dumps(first))
    readme.write_text(f"{tool.SEEDS_BEGIN}\n{tool.SEEDS_END}\n")
    monkeypatch.setattr(tool, "check_addable", lambda report, own, seeds: None)
    monkeypatch.setattr(tool, "measure", lambda args, options, stamp: {"seeds": {"1": run}, "seconds": 60.0})
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"trained")
    argv = ["compress_seeds.py", "--seeds", "1", "--add", "--checkpoint", str(checkpoint)]
    argv += ["--output", str(output), "--readme", str(readme)]
    monkeypatch.setattr("sys.argv", argv)
    tool.main()
    assert list(json.loads(output.read_text())["seeds"]) == ["0", "1"]
    assert "| 1 |" in readme.read_text()


def test_the_pipelines_seed_is_read_from_its_scores_only_where_dvc_lock_records_this_model_and_those_scores(tmp_path):
    """Reusing the compare stage's scores saves 24 minutes a report; stale scores or another model must
    instead be measured again."""
    tool = load_tool("compress_seeds")
    options = tool.compress_options(load_params(), None)
    compare, lock = tmp_path / "compare.json", tmp_path / "dvc.lock"
    trained = md5(b"trained").hexdigest()  # the run's provenance names the checkpoint by its md5
    gap = {"relative_difference": 0.01, "relative_ci95_low": -0.01, "relative_ci95_high": 0.03}
    scores = {tool.CONTROL: {split: {"cer": 0.1} for split in tool.SPLITS}}
    scores |= {
        name: {split: {"cer": 0.11, f"vs_{tool.CONTROL}": gap} for split in tool.SPLITS} for name in tool.COMPRESSED
    }
    compare.write_text(json.dumps(scores))

    def write_lock(model: bytes, scores_file: bytes) -> None:
        outs = {"train": ("models/model.pt", model), "compare": ("metrics/compare.json", scores_file)}
        stages = {
            stage: {"outs": [{"path": path, "md5": md5(data).hexdigest()}]} for stage, (path, data) in outs.items()
        }
        lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))

    write_lock(b"trained", compare.read_bytes())
    run = tool.pipeline_run(options, trained, lock, compare)
    assert run["pruned_int8"]["test"] == {"cer": 0.11, "vs_control": gap}
    assert run[tool.CONTROL]["dev"] == {"cer": 0.1}
    assert tool.pipeline_run(dataclasses.replace(options, seed=options.seed + 1), trained, lock, compare) is None
    write_lock(b"another model", compare.read_bytes())
    assert tool.pipeline_run(options, trained, lock, compare) is None
    write_lock(b"trained", b"scores before the last change")
    assert tool.pipeline_run(options, trained, lock, compare) is None


def test_where_it_stands_quotes_the_committed_runs_compressed_model():
    """The README's headline figures for `pruned_int8` are the metrics files', not typed by hand."""
    summary = json.loads((REPO / "metrics" / "summary.json").read_text())["pruned_int8"]
    compare = json.loads((REPO / "metrics" / "compare.json").read_text())["pruned_int8"]
    readme = readme_words()
    assert f"**{summary['x_smaller']:.2f}x smaller**" in readme and f"**{summary['x_faster']:.2f}x faster**" in readme
    for split in ("dev", "test"):
        versus = compare[split]["vs_fp32_finetuned"]
        low, high = versus["relative_ci95_low"], versus["relative_ci95_high"]
        quoted = f"**{versus['relative_difference']:+.2%} [{100 * low:+.2f}, {100 * high:+.2f}] on {split}"
        assert quoted.replace("%", " %").replace("-", "\u2212") in readme, split


def test_the_readme_quotes_the_seeds_mean_gaps_from_the_committed_report():
    report = committed_report()
    int8, fp32 = report["mean_gaps"]["pruned_int8"], report["mean_gaps"]["pruned_fp32"]
    readme = readme_words()
    quoted = f"is on average **{int8['dev']:.2%} behind its control on dev and {int8['test']:.2%} on test**"
    assert quoted.replace("%", " %") in readme
    assert f"`pruned_fp32` is {fp32['dev']:.2%} and {fp32['test']:.2%} behind".replace("%", " %") in readme


def test_set_changes_compress_params_as_dvc_exp_run_s_does_and_refuses_what_is_not_a_param():
    tool = load_tool("compress_seeds")
    changes = tool.changes(["teacher=control", "ranks={conv8: 96}"])
    assert changes == {"teacher": "control", "ranks": {"conv8": 96}}
    options = tool.compress_options(load_params(), 800, changes)
    assert (options.teacher, options.ranks, options.steps) == ("control", {"conv8": 96}, 800)
    with pytest.raises(SystemExit, match="is not KEY=VALUE"):
        tool.changes(["teacher"])
    with pytest.raises(UserError, match=r"compress\.teacher is 'student'"):
        tool.compress_options(load_params(), None, {"teacher": "student"})


def test_the_options_record_the_precision_auto_resolves_to_so_the_committed_report_still_joins_on_its_cpu(
    tmp_path, monkeypatch
):
    """`compress.precision: auto` replaced `bf16`; on a CPU with native bf16 the same run must still be addable."""
    from speechquant import train

    tool = load_tool("compress_seeds")
    options = tool.compress_options(load_params(), None)
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"trained")
    monkeypatch.setattr(train, "native_bf16", lambda: True)
    assert options.precision == "auto"
    assert tool.provenance(options, checkpoint)["options"] == committed_report()["options"]
    monkeypatch.setattr(train, "native_bf16", lambda: False)
    assert tool.provenance(options, checkpoint)["options"]["precision"] == "fp32"


def test_the_readme_quotes_the_half_batch_report_of_the_committed_runs_model_with_its_options_but_batch_frames():
    """`compress.batch_frames: 4000` was measured on the committed run's trained model with its compress
    params otherwise; the README must quote its mean gaps and the CERs it compares with the committed seeds'."""
    half = json.loads((REPO / "reports" / "compress_seeds_batch4000.json").read_text())
    full = committed_report()
    assert half["model_md5"] == trained_model_md5() == full["model_md5"]
    assert half["machine"]["cpu_id"] == full["machine"]["cpu_id"]
    assert {**half["options"], "batch_frames": full["options"]["batch_frames"]} == full["options"]
    assert half["options"]["batch_frames"] == 4000 and sorted(half["seeds"]) == sorted(full["seeds"])
    int8, fp32 = half["mean_gaps"]["pruned_int8"], half["mean_gaps"]["pruned_fp32"]
    readme = readme_words()
    quoted = f"**{int8['dev']:+.2%} on dev and {int8['test']:+.2%} on test** (`pruned_fp32` {fp32['dev']:+.2%} and"
    assert quoted.replace("%", " %").replace("-", "\u2212") in readme

    for variant, words in (("fp32_finetuned", "the control"), ("pruned_int8", "of `pruned_int8`")):
        assert f"{words} {mean_test_cer(full, variant)} → {mean_test_cer(half, variant)}" in readme, variant


def test_the_readme_quotes_the_step_profile_and_it_says_the_step_is_mostly_convolution():
    profile = json.loads((REPO / "reports" / "train_step_profile.json").read_text())
    assert profile["machine"]["cpu_id"] == committed_report()["machine"]["cpu_id"]
    part = profile["part_ms"]
    quoted = (
        f"**{profile['step_ms']} ms a step** here (forward {part['forward']}, CTC {part['ctc']}, backward "
        f"{part['backward']}, clipping {part['clip']}, AdamW {part['adamw']}), {profile['conv_share']:.1%}"
    )
    assert quoted.replace("%", " %") in readme_words()
    assert f"computes {profile['forward_gflops']} GFLOP/s" in readme_words()
    assert f"against {profile['matmul_gflops']} for a 2048²" in readme_words()
    assert profile["conv_share"] > 0.5 and abs(profile["step_ms"] - sum(part.values())) < 0.5


def test_the_readme_quotes_the_800_step_report_at_the_default_weight_of_the_committed_runs_model():
    """800 steps at distillation weight 0.2, on the committed run's model with its compress params but
    the steps; the README must quote its mean gaps and the mean test CERs it compares with 1,600 steps'."""
    fewer = json.loads((REPO / "reports" / "compress_seeds_800_w02.json").read_text())
    full = committed_report()
    assert fewer["model_md5"] == trained_model_md5() and fewer["machine"]["cpu_id"] == full["machine"]["cpu_id"]
    assert {**fewer["options"], "steps": full["options"]["steps"]} == full["options"]
    assert fewer["options"]["steps"] == 800 and sorted(fewer["seeds"]) == sorted(full["seeds"])
    int8, fp32 = fewer["mean_gaps"]["pruned_int8"], fewer["mean_gaps"]["pruned_fp32"]
    readme = readme_words()
    quoted = f"**{int8['dev']:.2%} behind on dev and {int8['test']:.2%} on test** (`pruned_fp32` {fp32['dev']:.2%} and"
    assert quoted.replace("%", " %") in readme

    for variant, words in (("fp32_finetuned", "the control"), ("pruned_int8", "of `pruned_int8`")):
        assert f"{words} {mean_test_cer(fewer, variant)} at 800 and {mean_test_cer(full, variant)}" in readme, variant
    int8, fp32 = full["mean_gaps"]["pruned_int8"], full["mean_gaps"]["pruned_fp32"]
    quoted = f"at 1,600 steps {int8['dev']:.2%} and {int8['test']:.2%}, and {fp32['dev']:.2%} and {fp32['test']:.2%})"
    assert quoted.replace("%", " %") in readme
