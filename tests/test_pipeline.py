"""The pipeline as a user runs it: `dvc repro` in a fresh git repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from helpers import REPO, copy_project
from speechquant.hardware import hardware_stamp
from speechquant.report.figures import read_table
from speechquant.runtime import open_model
from speechquant.store import Store

pytestmark = pytest.mark.slow  # subprocesses: whole DVC runs or the command line

FIGURES = ("size_latency_cer", "latency_vs_batch", "training", "cer_by_length", "sensitivity")

ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)


def dvc(cwd: Path, *args: str) -> str:
    result = run([sys.executable, "-m", "dvc", *args], cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def project(tmp_path, tiny_params) -> Path:
    copy_project(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params, sort_keys=False))
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        assert run(command, tmp_path).returncode == 0
    dvc(tmp_path, "config", "core.analytics", "false")
    shutil.copytree(REPO / ".dvc" / "plots", tmp_path / ".dvc" / "plots")  # the plot templates dvc.yaml names
    commit = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "project"]
    for command in (["git", "add", "-A"], commit):
        assert run(command, tmp_path).returncode == 0
    return tmp_path


def test_repro_builds_everything_then_reruns_only_what_changed(project):
    dvc(project, "repro")
    train = Store(project / "data" / "features" / "train")
    assert len(train) > 0 and train.meta["kind"] == "log_mel" and train.data.shape[1] == 40
    metrics = json.loads((project / "metrics" / "data.json").read_text())
    assert metrics["train"]["utterances"] == len(train)
    assert metrics["dev"]["hours"] > 0
    assert (project / "plots" / "data" / "utterance_frames.csv").read_text().startswith("frames,train,dev,test")

    quantized = json.loads((project / "metrics" / "quantize" / "static_int8.json").read_text())
    assert quantized["conv_kernels"] == {"QLinearConv": 11}
    assert (project / "models" / "quantized" / "dynamic_semi_int8.onnx").exists()
    train_metrics = json.loads((project / "metrics" / "train.json").read_text())
    curve = (project / "dvclive" / "plots" / "metrics" / "dev" / "cer.tsv").read_text().splitlines()[1:]
    assert train_metrics["epochs"] == 2
    assert train_metrics["best_dev_cer"] == round(min(float(line.split("\t")[-1]) for line in curve), 5)
    assert (project / "models" / "model.pt").exists() and not (project / "models" / "train_state").exists()
    assert len((project / "dvclive" / "plots" / "metrics" / "dev" / "cer.tsv").read_text().splitlines()) == 3

    dev = Store(project / "data" / "features" / "dev")
    evaluation = json.loads((project / "metrics" / "eval" / "static_int8.json").read_text())
    assert set(evaluation) == {"decoder", "dev", "test", "dev_unseen_text", "dev_unseen_voice"}
    assert evaluation["dev"]["scored"] == len(dev)  # none dropped
    for split in ("dev_unseen_text", "dev_unseen_voice"):  # built by the corpus stage and scored like dev
        assert evaluation[split]["scored"] == len(Store(project / "data" / "features" / split)) > 0
    rows = read_table(project / "plots" / "eval" / "static_int8" / "dev.csv")
    assert len(rows) == len(dev) and evaluation["dev"]["ctc_loss"] > 0
    edits, characters = sum(int(r["edits"]) for r in rows), sum(len(r["reference"]) for r in rows)
    assert evaluation["dev"]["cer"] == pytest.approx(edits / characters, abs=1e-6)
    assert evaluation["decoder"]["method"] == "beam" and evaluation["decoder"]["lm"] == "none"
    with_lm = json.loads((project / "metrics" / "eval_lm" / "static_int8-char.json").read_text())
    assert with_lm["decoder"]["lm"] == "char" and with_lm["dev"]["scored"] == len(dev)
    assert set(with_lm) == {"decoder", "dev", "test"}  # the LMs know in-domain text only
    comparison = json.loads((project / "metrics" / "compare.json").read_text())
    interval = comparison["static_int8"]["dev"]["vs_fp32"]
    assert interval["ci95_low"] <= interval["cer_difference"] <= interval["ci95_high"]
    assert "| static_int8 |" in (project / "reports" / "evaluation.md").read_text()
    plots = json.loads(dvc(project, "plots", "show", "--json"))["data"]
    assert not [name for name, renders in plots.items() if not renders]  # every plot has data to draw
    titles = [renders[0]["content"]["title"]["text"] for renders in plots.values()]
    assert {"size_latency_cer", "cer_by_length_dev", "cer_per_variant", "latency_vs_batch"} <= set(plots)
    assert len(set(titles)) == len(titles) and not any(name.startswith("plots/") for name in plots)
    shown = json.loads(dvc(project, "metrics", "show", "--json"))
    assert list(shown[""]["data"]) == ["metrics/summary.json"]  # "": the workspace

    benchmark = json.loads((project / "metrics" / "benchmark.json").read_text())
    stamp = hardware_stamp()  # this machine's, read from /proc/cpuinfo like the stage's
    assert {key: benchmark["hardware"][key] for key in stamp} == stamp
    assert set(benchmark["variants"]) == {
        *json.loads((project / "metrics" / "compare.json").read_text()),
        "pytorch_fp32",
    }
    fp32_latency = benchmark["variants"]["fp32"]["latency"]["batch1_1s_1thread"]
    assert fp32_latency["speedup_vs_fp32"] == 1.0 and fp32_latency["latency_ms_p50"] > 0
    sensitivity = json.loads((project / "metrics" / "sensitivity.json").read_text())
    assert list(sensitivity["layers"]) == [f"conv{i}" for i in range(11)]
    assert (
        sensitivity["auto_float_layers"]
        == json.loads((project / "metrics" / "quantize" / "auto_int8.json").read_text())["float_layers"]
    )
    report = (project / "REPORT.md").read_text()
    assert "| static_int8 |" in report and "## Against the study" in report and "**worst**" in report
    assert "## Which layers to keep in float" in report and "| auto_int8 |" in report
    assert "## Decoding with an n-gram LM" in report and "beam search (beam 20), word n-gram LM" in report
    assert all((project / "reports" / "figures" / f"{name}.png").stat().st_size > 10_000 for name in FIGURES)

    assert "Data and pipelines are up to date" in dvc(project, "status")

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["features"]["dtype"] = "float32"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rerun = dvc(project, "repro")
    assert "Running stage 'features'" in rerun and "Running stage 'train'" in rerun
    assert "Running stage 'corpus'" not in rerun

    params["train"]["learning_rate"] = 0.01
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dry_run = dvc(project, "repro", "--dry")
    assert "Running stage 'train'" in dry_run and "Running stage 'features'" not in dry_run


def test_bad_params_give_one_clear_line_not_a_traceback(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "timit"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([sys.executable, str(REPO / "stages" / "corpus.py")], project)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown data.source 'timit'; valid: synth, hw4p2, librispeech"

    params["data"]["source"] = "synth"
    params["data"]["synth"]["pitch_range"] = [20, 95]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([sys.executable, str(REPO / "stages" / "corpus.py")], project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pitch_range" in result.stderr


def test_excluding_a_layer_reruns_only_the_quantize_and_evaluation_stages(project):
    dvc(project, "repro")
    for command in (["git", "add", "-A"], ["git", "commit", "-qm", "baseline"]):
        assert run(command, project).returncode == 0
    experiment = dvc(project, "exp", "run", "-S", "quant.exclude=[conv0]")
    assert "Running stage 'quantize@static_int8'" in experiment
    assert "Running stage 'evaluate@static_int8'" in experiment and "Running stage 'compare'" in experiment
    assert "Running stage 'evaluate_lm@static_int8-char'" in experiment
    unchanged = (
        "corpus",
        "features",
        "train",
        "export",
        "lm",
        "convert@fp32",  # the float variants do not read quant.exclude
        "convert@fp16",
        "convert@bf16",
        "evaluate@fp32",
        "evaluate@fp16",
        "evaluate@bf16",
        "evaluate_lm@fp32-char",
        "compress",  # pruning and its control do not read quant.exclude; pruned_int8 does
        "evaluate@pruned_fp32",
        "evaluate@fp32_finetuned",
    )
    assert "Running stage 'benchmark'" in experiment and "Running stage 'report'" in experiment
    assert not any(f"Running stage '{stage}'" in experiment for stage in unchanged)
    assert json.loads((project / "metrics" / "quantize" / "static_int8.json").read_text())["float_layers"] == ["conv0"]
    differences = json.loads(dvc(project, "metrics", "diff", "--json"))
    assert list(differences) == ["metrics/summary.json"]
    changed = differences["metrics/summary.json"]
    assert "static_int8.mb" in changed and "static_semi_int8.mb" not in changed  # conv0 was float already
    assert len(changed) <= 60, sorted(changed)
    assert len(dvc(project, "metrics", "diff").splitlines()) <= 61  # and a header line
    columns = dvc(project, "exp", "show", "--csv", "--only-changed", "--drop", ".*/.*").splitlines()[0].split(",")
    assert "quant.exclude" in columns and "static_int8.mb" in columns and "fp32.mb" not in columns
    assert len(columns) <= 5 + 1 + 60, columns  # experiment, rev, typ, created, parent; the param; the metrics


def test_a_new_rank_reruns_only_compress_and_what_reads_the_compressed_models(project):
    dvc(project, "repro")
    for command in (["git", "add", "-A"], ["git", "commit", "-qm", "baseline"]):
        assert run(command, project).returncode == 0
    dvc(project, "repro", "--force", "--single-item", "compress")  # the same models again, another clock
    assert "benchmark:" not in dvc(project, "status"), "the benchmark must not re-run for a compress timing"
    before = json.loads((project / "metrics" / "quantize" / "pruned_int8.json").read_text())
    experiment = dvc(project, "exp", "run", "-S", "compress.ranks.conv8=4")
    for stage in ("compress", "quantize_pruned", "evaluate@pruned_fp32", "evaluate@pruned_int8", "compare", "report"):
        assert f"Running stage '{stage}'" in experiment, stage
    for stage in ("train", "export", "sensitivity", "quantize@static_int8", "quantize_qat", "evaluate@static_int8"):
        assert f"Running stage '{stage}'" not in experiment, stage
    after = json.loads((project / "metrics" / "quantize" / "pruned_int8.json").read_text())
    assert (
        after["parameters"] < before["parameters"] and after["macs_per_output_frame"] < before["macs_per_output_frame"]
    )
    compare = json.loads((project / "metrics" / "compare.json").read_text())
    assert "vs_fp32_finetuned" in compare["pruned_int8"]["test"] and "vs_fp32_finetuned" not in compare["fp16"]["test"]
    bad = run([sys.executable, "-m", "dvc", "exp", "run", "-S", "compress.ratio=0.0001"], project)
    said = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "error: compress.ratio 0.0001 would leave a layer with no channels" in said


def test_the_int8_model_is_fetched_by_its_artifact_name_from_another_folder(project, tmp_path_factory):
    dvc(project, "repro", "convert@fp32", "quantize@static_int8")
    for command in (["git", "add", "-A"], ["git", "commit", "-qm", "models"]):
        assert run(command, project).returncode == 0
    tag = ["git", "tag", "-a", "wav2letter-int8@v0.1.0", "-m", "Registering artifact wav2letter-int8 version v0.1.0"]
    assert run(tag, project).returncode == 0
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    dvc(elsewhere, "artifacts", "get", str(project), "wav2letter-int8", "-o", "int8.onnx")
    fetched = elsewhere / "int8.onnx"
    assert fetched.read_bytes() == (project / "models" / "quantized" / "static_int8.onnx").read_bytes()
    assert open_model(fetched).card.features.n_mels == 40


def test_a_model_of_80_bands_every_20_ms_is_fed_80_bands_every_20_ms(project):
    """The front-end travels with the model: evaluation and `transcribe` read it from the ONNX file."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["features"].update(n_mels=80, hop_ms=20.0)
    params["eval"]["batch_size"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(project, "repro", "evaluate@fp32")
    model = project / "models" / "quantized" / "fp32.onnx"
    card = open_model(model).card
    assert (card.features.n_mels, card.features.hop_ms, card.corpus_source) == (80, 20.0, "synth")
    audio = Store(project / "data" / "corpus" / "dev")
    files = []
    for index in range(min(4, len(audio))):
        files.append(project / f"{audio.utterances[index].id}.wav")
        soundfile.write(files[-1], np.asarray(audio[index]), 16_000, subtype="PCM_16")
    result = run(
        [sys.executable, "-m", "speechquant.cli", "transcribe", str(model), *map(str, files), "--json"], project
    )
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    transcribed = {Path(json.loads(line)["file"]).stem: json.loads(line)["text"] for line in result.stdout.splitlines()}
    evaluated = {row["id"]: row["hypothesis"] for row in read_table(project / "plots" / "eval" / "fp32" / "dev.csv")}
    assert transcribed == {name: evaluated[name] for name in transcribed}
    assert json.loads((project / "metrics" / "eval" / "fp32.json").read_text())["dev"]["scored"] > 0
