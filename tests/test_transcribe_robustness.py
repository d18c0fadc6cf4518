"""`speechquant transcribe` against hostile input: one line per problem, a documented exit
status, never a traceback, and the rest of the batch transcribed."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from speechquant import cli
from speechquant.audio import SAMPLE_RATE
from speechquant.errors import UserError
from speechquant.transcribe import Transcriber

pytestmark = pytest.mark.slow  # subprocesses: whole DVC runs or the command line

NO_TORCH = "import sys; sys.modules['torch'] = None; from speechquant.cli import main; main()"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def speech(features) -> np.ndarray:
    """About 36 s of the synthesized utterances behind the ``features`` store, as float32 samples."""
    from speechquant.store import Store

    audio = Store(features.path.parent / "audio")
    return np.concatenate([np.asarray(audio[i], dtype=np.float32) / 32768.0 for i in range(len(audio))])


def assert_clean(result: subprocess.CompletedProcess, status: int, errors: int) -> list[str]:
    assert "Traceback" not in result.stderr
    assert result.returncode == status, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == errors, result.stderr
    return lines


def test_non_finite_samples_are_read_as_silence_with_one_warning(exported, speech, tmp_path):
    broken = speech.copy()
    broken[SAMPLE_RATE * 7 : SAMPLE_RATE * 7 + 400] = np.nan  # inside the second of 5-second chunks
    broken[SAMPLE_RATE * 20] = np.inf
    soundfile.write(tmp_path / "nan.wav", broken, SAMPLE_RATE, subtype="FLOAT")
    soundfile.write(tmp_path / "zeroed.wav", np.nan_to_num(broken, nan=0.0, posinf=0.0), SAMPLE_RATE, subtype="FLOAT")
    files = [str(tmp_path / "nan.wav"), str(tmp_path / "zeroed.wav")]
    for method in ("greedy", "beam"):
        result = run_cli("transcribe", str(exported), *files, "--method", method, "--chunk-seconds", "5")
        assert_clean(result, 0, 0)
        assert result.stderr.strip() == f"warning: {files[0]}: 401 NaN or infinite samples read as silence"
        repaired, zeroed = result.stdout.splitlines()
        assert repaired == zeroed


def test_a_file_shorter_than_one_frame_is_named_and_the_others_go_on(exported, speech, tmp_path):
    soundfile.write(tmp_path / "short.wav", speech[:100], SAMPLE_RATE)
    soundfile.write(tmp_path / "good.wav", speech[: SAMPLE_RATE * 2], SAMPLE_RATE)
    result = run_cli("transcribe", str(exported), str(tmp_path / "short.wav"), str(tmp_path / "good.wav"))
    (line,) = assert_clean(result, cli.EXIT_BAD_FILE, 1)
    assert "short.wav: too short to transcribe" in line and len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--threads", "-1"], "--threads must be between 1 and"),
        (["--threads", "100000"], "--threads must be between 1 and"),
        (["--beam-size", "100000"], "--beam-size must be between 1 and 1000"),
        (["--context-seconds", "0"], "--context-seconds must be at least 0.97"),
        (["--chunk-seconds", "inf"], "--chunk-seconds must be between 1 and 3600"),
        (["--chunk-seconds", "nan"], "--chunk-seconds must be between 1 and 3600"),
        (["--lm-weight", "nan"], "must be finite numbers"),
    ],
)
def test_an_option_that_would_crash_hang_or_change_the_output_is_refused(exported, tmp_path, option, message):
    soundfile.write(tmp_path / "a.wav", np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    result = run_cli("transcribe", str(exported), str(tmp_path / "a.wav"), *option)
    (line,) = assert_clean(result, cli.EXIT_BAD_OPTIONS, 1)
    assert message in line and result.stdout == ""


WORD_ARPA_MISSING_FIELD = """\\data\\
ngram 1=3

\\1-grams:
-1.0\t<s>\t-0.5
-1.0\t</s>
-0.5

\\end\\
"""


@pytest.mark.parametrize(("lm", "text"), [("char", "not an ARPA file\n"), ("word", WORD_ARPA_MISSING_FIELD)])
def test_a_broken_language_model_is_one_error_not_one_per_file(exported, speech, tmp_path, lm, text):
    (tmp_path / "lm.arpa").write_text(text)
    for name in ("a.wav", "b.wav"):
        soundfile.write(tmp_path / name, speech[: SAMPLE_RATE * 2], SAMPLE_RATE)
    files = [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
    result = run_cli("transcribe", str(exported), *files, "--lm", lm, "--lm-path", str(tmp_path / "lm.arpa"))
    (line,) = assert_clean(result, cli.EXIT_BAD_OPTIONS, 1)
    assert "lm.arpa" in line and result.stdout == ""


def test_output_closed_early_stops_quietly(exported, speech, tmp_path):
    soundfile.write(tmp_path / "a.wav", speech[: SAMPLE_RATE * 2], SAMPLE_RATE)
    files = [str(tmp_path / "a.wav")] * 40
    command = [sys.executable, "-c", NO_TORCH, "transcribe", str(exported), *files, "--method", "greedy", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    stderr = process.stderr.read()
    assert process.wait() == cli.EXIT_OUTPUT_CLOSED and "Traceback" not in stderr and "Exception" not in stderr


def test_an_internal_error_is_named_its_own_status_and_the_batch_goes_on(
    exported, speech, tmp_path, monkeypatch, capsys
):
    for name in ("a.wav", "b.wav", "c.wav"):
        soundfile.write(tmp_path / name, speech[: SAMPLE_RATE * 2], SAMPLE_RATE)
    original = Transcriber.__call__

    def failing_on_b(self, path):
        if path.name == "b.wav":
            raise IndexError("a bug")
        return original(self, path)

    monkeypatch.setattr(Transcriber, "__call__", failing_on_b)
    args = cli.parser().parse_args(
        ["transcribe", str(exported), *(str(tmp_path / n) for n in "abc"), "--method", "greedy"]
    )
    args.audio = [tmp_path / f"{n}.wav" for n in "abc"]
    assert cli.transcribe(args) == cli.EXIT_INTERNAL
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: {tmp_path / 'b.wav'}: internal error (IndexError: a bug)"
    assert len(captured.out.splitlines()) == 2


def test_options_are_checked_before_any_model_is_opened():
    with pytest.raises(UserError):
        cli._options(cli.parser().parse_args(["transcribe", "m.onnx", "a.wav", "--beam-size", "0"]))


def test_the_chunk_filler_stays_bounded_on_audio_that_barely_varies():
    from speechquant.transcribe import MAX_FILLER_RATIO, filler

    rng = np.random.default_rng(0)
    chunk = rng.normal(0.0, 1.0, (500, 40))  # a burst...
    quiet_file_mean, quiet_file_variance = np.zeros(40), np.full(40, 1e-6)  # ...in a near-constant file
    frames = filler(chunk, 500, quiet_file_mean, quiet_file_variance)
    assert len(frames) <= MAX_FILLER_RATIO * len(chunk) and np.isfinite(frames).all()
    both = np.concatenate([chunk, frames])
    np.testing.assert_allclose(both.mean(axis=0), quiet_file_mean, atol=1e-9)  # the mean is still exact


def test_a_constant_offset_file_in_chunks_is_transcribed(exported, tmp_path):
    soundfile.write(tmp_path / "dc.wav", np.full(SAMPLE_RATE * 40, 0.25, dtype=np.float32), SAMPLE_RATE)
    result = run_cli(
        "transcribe", str(exported), str(tmp_path / "dc.wav"), "--chunk-seconds", "5", "--method", "greedy"
    )
    assert_clean(result, 0, 0)
