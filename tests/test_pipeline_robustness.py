"""The pipeline against hostile params and faults: one `error:` line naming what is wrong,
exit status 2, no traceback, and nothing half-written. (`speechquant transcribe` has its
own probes in test_transcribe_robustness.py.)"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO, write_feature_store
from speechquant import train
from speechquant.errors import UserError
from speechquant.fileio import atomic_path, write_json
from speechquant.model import ModelConfig
from speechquant.store import DamagedStore, Store


def run_stage(project: Path, stage: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{stage}.py"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_one_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exactly one `error:` line (other lines may be progress or warnings), exit 2, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for fragment in fragments:
        assert fragment in line, line
    return line


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def with_value(params: dict, dotted: str, value) -> dict:
    node = params
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return params


BAD_PARAMS = [
    # (stage, key, value, what the line must say)
    ("corpus", "data.synth.hours.train", "ten", "data.synth.hours.train is 'ten'; it must be a finite number"),
    ("corpus", "data.synth.hours.train", -1, "data.synth.hours.train is -1.0; it must be > 0"),
    ("corpus", "data.synth.hours.train", 0, "data.synth.hours.train is 0.0; it must be > 0"),
    ("corpus", "data.synth.hours", {"train": 1}, "data.synth.hours gives no hours for dev, test"),
    ("corpus", "data.synth.seed", "abc", "data.synth.seed is 'abc'; it must be a whole number"),
    ("corpus", "data.synth.words_per_minute", [-100, -50], "data.synth.words_per_minute[0] is -100; it must be >= 80"),
    ("corpus", "data.synth.noise_probability", float("nan"), "noise_probability is nan; it must be a finite number"),
    ("corpus", "data.synth.variants", ["m1", "m1"], "data.synth.variants lists m1 more than once"),
    ("features", "features.hop_ms", 0, "features.hop_ms is 0.0; it must be > 0"),
    ("features", "features.n_mels", 40.5, "features.n_mels is 40.5; it must be a whole number"),
    ("train", "model.hidden_channels", -5, "model.hidden_channels is -5; it must be >= 1"),
    ("train", "model.hidden_channels", "wide", "model.hidden_channels is 'wide'; it must be a whole number"),
    ("train", "train.learning_rate", "fast", "train.learning_rate is 'fast'; it must be a finite number"),
    ("train", "train.spec_augment.freq_masks", -1, "train.spec_augment.freq_masks is -1; it must be >= 0"),
    ("train", "train.epochs", True, "train.epochs is True; it must be a whole number"),
    ("train", "train.tempo.probability", 1.5, "train.tempo.probability is 1.5; it must be >= 0 and <= 1"),
    ("train", "train.tempo.factor", [1.0, 0.6], "train.tempo.factor: low 1.0 is above high 0.6"),
    ("quantize", "quant.check_utterances", -1, "quant.check_utterances is -1; it must be >= 1"),
    ("quantize", "quant.variants", ["fp32", "fp32"], "quant.variants lists fp32 more than once"),
    ("quantize", "quant.calibration.method", "kl", "quant.calibration.method is 'kl'; it must be one of"),
    ("evaluate", "eval.splits", ["dev", "train2"], "eval.splits[1] is 'train2'; it must be one of train, dev, test"),
    ("evaluate", "decode.beam_size", 0, "decode.beam_size is 0; it must be >= 1"),
    ("benchmark", "benchmark.threads", [-1], "benchmark.threads[0] is -1; it must be >= 0"),
    ("compare", "compare.bootstrap_samples", 0, "compare.bootstrap_samples is 0; it must be >= 1"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "key", "value", "message"), BAD_PARAMS, ids=[f"{p[1]}={p[2]}" for p in BAD_PARAMS])
def test_a_bad_param_is_one_line_naming_it_before_any_work(tmp_path, stage, key, value, message):
    params = with_value(yaml.safe_load((REPO / "params.yaml").read_text()), key, value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = {"quantize": ["static_int8"], "evaluate": ["fp32"]}.get(stage, [])
    assert_one_error(run_stage(tmp_path, stage, *args), message)
    assert files_under(tmp_path) == ["params.yaml"]  # no file written


def test_no_params_value_reaches_a_shell_command():
    """DVC interpolates `${...}` into `cmd` and runs it in a shell: a variant named
    `static_int8; touch X` in params.yaml would run `touch`. No command interpolates."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert all("${" not in stage["cmd"] for stage in stages.values())


@pytest.mark.slow
def test_a_stage_refuses_a_variant_its_params_do_not_list(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["quant"]["variants"] = ["fp32", "static_int8; touch X"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(tmp_path, "quantize", env={"DVC_STAGE": "quantize@static_int8; touch X"})
    assert_one_error(result, "quant.variants[1] is 'static_int8; touch X'; it must be one of fp32")
    params["quant"]["variants"] = ["fp32"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(tmp_path, "evaluate", env={"DVC_STAGE": "evaluate@../../etc/passwd"})
    assert_one_error(result, "'../../etc/passwd' is not in params.yaml quant.variants (fp32)")
    result = run_stage(tmp_path, "evaluate", env={"DVC_STAGE": "evaluate_lm@fp32-bigram"})
    assert_one_error(result, "'bigram' is not in params.yaml eval_lm.lms (char, word)")
    assert files_under(tmp_path) == ["params.yaml"]


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "features" / "dev"
    write_feature_store(path, 6, seed=0)
    return path


def _edit_offsets(path: Path, change) -> None:
    offsets = np.load(path / "offsets.npy")
    np.save(path / "offsets.npy", change(offsets.copy()))


def _truncate(file: Path, keep: int) -> None:
    with open(file, "r+b") as handle:
        handle.truncate(keep)


DAMAGE = {
    "data.npy cut short": (lambda p: _truncate(p / "data.npy", os.path.getsize(p / "data.npy") // 2), "data.npy"),
    "data.npy header only": (lambda p: _truncate(p / "data.npy", 60), "data.npy"),
    "offsets past the end": (lambda p: _edit_offsets(p, lambda o: o + np.arange(len(o)) * 1000), "offsets.npy"),
    "offsets decreasing": (lambda p: _edit_offsets(p, lambda o: o[[0, 2, 1, *range(3, len(o))]]), "offsets.npy"),
    "offsets not from 0": (lambda p: _edit_offsets(p, lambda o: o[1:] - 0), "offsets.npy"),
    "offsets not integers": (lambda p: _edit_offsets(p, lambda o: o.astype(np.float64)), "offsets.npy"),
    "manifest one record short": (
        lambda p: (p / "manifest.jsonl").write_text("".join((p / "manifest.jsonl").read_text().splitlines(True)[:-1])),
        "manifest.jsonl",
    ),
    "manifest not JSON": (lambda p: (p / "manifest.jsonl").write_text("{not json\n"), "manifest.jsonl"),
    "manifest frame count edited": (
        lambda p: (p / "manifest.jsonl").write_text(
            (p / "manifest.jsonl").read_text().replace('"n_frames": ', '"n_frames": 1', 1)
        ),
        "manifest.jsonl",
    ),
    "meta count edited": (
        lambda p: (p / "meta.json").write_text(
            json.dumps({**json.loads((p / "meta.json").read_text()), "utterances": 99})
        ),
        "meta.json",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_store_names_its_file_and_how_to_rebuild_it(store, damage):
    corrupt, file = DAMAGE[damage]
    corrupt(store)
    with pytest.raises(DamagedStore) as raised:
        Store(store)
    assert str(raised.value).startswith(f"{store / file} is damaged (")
    assert str(raised.value).endswith("rebuild it with `dvc repro -f -s features`")


@pytest.mark.slow
def test_evaluate_on_a_damaged_store_is_one_line(tmp_path, store, exported):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    models = tmp_path / "models" / "quantized"
    models.mkdir(parents=True)
    shutil.copy(exported, models / "fp32.onnx")
    DAMAGE["offsets past the end"][0](store)
    result = run_stage(tmp_path, "evaluate", "fp32", "--features", str(store.parent))
    assert_one_error(result, "offsets.npy is damaged", "dvc repro -f -s features")
    assert not (tmp_path / "metrics").exists()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_scratch_folders_of_killed_writers_are_removed_at_the_next_start(tmp_path, capsys):
    stale = tmp_path / f".corpus.{_dead_pid()}-x1.tmp"
    (stale / "corpus" / "train").mkdir(parents=True)
    (stale / "corpus" / "train" / "data.npy").write_bytes(b"\0" * 28_000)
    live = tmp_path / f".corpus.{os.getpid()}-x2.tmp"  # a writer still running: left alone
    live.mkdir()
    with atomic_path(tmp_path / "corpus") as temporary:
        temporary.mkdir()
    assert not stale.exists() and live.exists()
    assert capsys.readouterr().err == f"removed {stale} (0.0 MB), left by a run that was killed\n"


def test_an_old_output_moved_aside_by_a_killed_publish_is_put_back(tmp_path):
    """publish's fallback moves the old folder into the scratch folder before the new one goes in."""
    stale = tmp_path / f".corpus.{_dead_pid()}-x1.tmp"
    (stale / "old").mkdir(parents=True)
    (stale / "old" / "kept.txt").write_text("the previous corpus")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "corpus"):
        raise RuntimeError("this run fails too")
    assert (tmp_path / "corpus" / "kept.txt").read_text() == "the previous corpus"


def test_an_unreadable_saved_state_is_set_aside_and_training_starts_afresh(tmp_path, capsys):
    write_feature_store(tmp_path / "train", 20, seed=0)
    write_feature_store(tmp_path / "dev", 6, seed=1)
    config = ModelConfig(hidden_channels=16, wide_channels=32)
    options = train.TrainOptions(epochs=1, batch_frames=1000, precision="fp32")
    stores = Store(tmp_path / "train"), Store(tmp_path / "dev")
    train.run(config, options, *stores, tmp_path / "state")
    last = tmp_path / "state" / "last.pt"
    _truncate(last, os.path.getsize(last) // 3)  # a copy or a full disk cut it short
    trainer = train.run(config, options, *stores, tmp_path / "state")
    output = capsys.readouterr().out
    (aside,) = (tmp_path / "state").glob("last.unreadable-*.pt")
    assert f"starting afresh: {last} is unreadable (" in output and f"moved to {aside}" in output
    assert len(trainer.history) == 1 and last.exists()


WRITE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as ENOSPC would
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from speechquant.errors import exit_on_user_error
{body}
"""

WRITERS = {
    "json": "from speechquant.fileio import write_json\n"
    "exit_on_user_error(lambda: write_json(sys.argv[1], {'rows': list(range(100_000))}))",
    "checkpoint": "import torch\nfrom speechquant.model import save_checkpoint as save\n"
    "exit_on_user_error(lambda: save(__import__('pathlib').Path(sys.argv[1]), {'w': torch.zeros(200_000)}))",
    "store": "import numpy as np\nfrom speechquant.store import StoreWriter, Utterance\n"
    "def write():\n"
    "    with StoreWriter(sys.argv[1], np.float32, (40,), {}) as writer:\n"
    "        for i in range(10):\n"
    "            writer.append(Utterance(str(i), 'a', 0), np.zeros((1000, 40)))\n"
    "exit_on_user_error(write)",
}


@pytest.mark.slow
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_full_disk_is_one_line_and_leaves_the_previous_output(tmp_path, writer):
    target = tmp_path / "output"
    write_json(target, {"previous": True}) if writer != "store" else None
    before = files_under(tmp_path)
    script = WRITE_UNDER_A_SIZE_LIMIT.format(body=WRITERS[writer])
    result = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True, check=False)
    line = assert_one_error(result, f"could not write {target}: ", "MB free on its file system")
    assert "the previous output, if any, is unchanged" in line
    assert files_under(tmp_path) == before  # no scratch folder, no partial file
    assert not list(tmp_path.glob(".*.tmp"))


def test_limits_hold_for_options_made_in_code_too():
    with pytest.raises(ValueError, match="epochs is 0; it must be >= 1"):
        train.TrainOptions(epochs=0)
    with pytest.raises(UserError):
        from speechquant.params import build

        build(train.TrainOptions, {"epochs": 0}, "train")


@dataclasses.dataclass(frozen=True)
class _Trainer:
    """Options whose cross-field rule raises a message that starts with the section's name as a word."""

    steps: int = 1

    def __post_init__(self) -> None:
        if self.steps > 1:
            raise ValueError("trainer steps must be 1")


def test_a_cross_field_rule_is_prefixed_with_its_section_unless_it_names_its_full_key():
    from speechquant.params import build

    with pytest.raises(UserError, match=r"^params\.yaml: train: trainer steps must be 1$"):
        build(_Trainer, {"steps": 2}, "train")
    with pytest.raises(UserError, match=r"^params\.yaml: train\.tempo\.factor: low 1\.0 is above high 0\.6$"):
        build(train.TrainOptions, {"tempo": {"factor": [1.0, 0.6]}}, "train")
