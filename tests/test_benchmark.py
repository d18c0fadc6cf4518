import numpy as np
import pytest

from speechquant.benchmark import (
    BenchmarkOptions,
    benchmark_inputs,
    latency_summary,
    onnx_runner,
    openvino_rows,
    peak_memory_mb,
    thread_checks,
)
from speechquant.hardware import hardware_stamp
from speechquant.timing import paired_speedup, time_interleaved


def test_configurations_sweep_batch_at_the_middle_length_and_length_at_batch_one():
    options = BenchmarkOptions(batches=(1, 8, 32), seconds=(2, 10, 20))
    assert options.configurations() == [(1, 2), (1, 10), (1, 20), (8, 10), (32, 10)]
    with pytest.raises(ValueError):
        BenchmarkOptions(batches=())


def test_inputs_are_real_frames_cut_or_tiled_to_the_asked_length(features):
    batch, lengths = benchmark_inputs(features, 3, 12.5)
    assert batch.shape == (3, 1250, 40) and lengths.tolist() == [1250] * 3
    first = np.asarray(features[0], dtype=np.float32)
    assert np.array_equal(batch[0, : len(first)], first)  # the utterance itself, then repeated
    assert np.array_equal(batch[0, len(first) : 2 * len(first)][: 1250 - len(first)], first[: 1250 - len(first)])


def test_rounds_interleave_the_variants_in_a_rotating_order():
    calls = []
    runners = {name: (lambda n: lambda features, lengths: calls.append(n))(name) for name in "abc"}
    times = time_interleaved(runners, np.zeros(1), np.zeros(1), rounds=3, warmup=1)
    assert {name: len(values) for name, values in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")


def test_latency_summary_reports_percentiles_and_real_time_factor():
    summary = latency_summary([0.1, 0.2, 0.3, 0.4, 1.0], batch=2, seconds=10)
    assert summary["latency_ms_p50"] == 300.0 and summary["latency_ms_p90"] > summary["latency_ms_p50"]
    assert summary["rtf"] == pytest.approx(0.3 / 20)


def test_the_speedup_is_taken_within_rounds_so_a_busy_round_slowing_both_leaves_it_unchanged():
    reference, twice_as_fast = [0.10, 0.30, 0.09, 0.10, 0.25], [0.05, 0.15, 0.045, 0.05, 0.125]
    assert paired_speedup(reference, twice_as_fast) == (2.0, [2.0, 2.0])  # busy rounds 2 and 5 slowed both
    noisy = [0.05, 0.09, 0.03, 0.07, 0.05]
    speedup, (low, high) = paired_speedup(reference, noisy)
    assert low <= speedup <= high and high - low > 0.5
    assert paired_speedup(reference, reference) == (1.0, [1.0, 1.0])


def test_all_cores_slower_than_one_at_the_largest_batch_is_reported():
    options = BenchmarkOptions(batches=(1, 32), seconds=(10,), threads=(1, 0))
    latency = {
        "fp32": {"batch32_10s_1thread": {"latency_ms_p50": 100.0}, "batch32_10s_allthread": {"latency_ms_p50": 50.0}},
        "int8": {"batch32_10s_1thread": {"latency_ms_p50": 30.0}, "batch32_10s_allthread": {"latency_ms_p50": 40.0}},
    }
    checks = thread_checks(latency, options)
    assert checks == {"all_cores_gain_batch32_10s": {"fp32": 2.0, "int8": 0.75}}


def test_openvino_runs_the_same_file_and_says_what_precision_its_convolutions_ran_in(exported, features, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    info = {"kernels": {}, "skipped": {}}
    runners = openvino_rows({"fp32": exported, "broken": broken}, 1, info)
    assert list(runners) == ["openvino:fp32"] and info["kernels"]["fp32"]["precisions"] == {"Convolution:f32": 11}
    assert sum(info["kernels"]["fp32"]["primitives"].values()) == 11  # oneDNN's kernel names, e.g. brgconv_avx512_f32
    assert list(info["skipped"]) == ["broken"] and "cannot compile" in info["skipped"]["broken"]
    inputs = benchmark_inputs(features, 2, 3)
    openvino_out = runners["openvino:fp32"](*inputs)
    onnxruntime_out = onnx_runner(exported, threads=1)[0](*inputs)
    assert np.allclose(openvino_out[0], onnxruntime_out[0], atol=1e-3)
    assert np.array_equal(openvino_out[1], onnxruntime_out[1])


def test_a_session_runs_and_its_peak_memory_is_measured_apart(exported, features):
    run, created = onnx_runner(exported, threads=1)
    log_probs, _ = run(*benchmark_inputs(features, 2, 3))
    assert log_probs.shape[:2] == (2, 151) and created > 0
    memory = peak_memory_mb(exported, 1, 2, 3, features)
    assert memory["peak_rss_mb"] > memory["added_by_model_mb"] > 5  # the weights, at least


EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
stepping\t: 1
flags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 avx512_vnni avx512bw

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 avx512_vnni avx512bw
"""
XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
OLD = "model name\t: Intel(R) Core(TM) i7-4770\nflags\t\t: fpu sse4_2 avx avx2\n"


def test_two_cpu_generations_named_and_flagged_alike_get_different_stamps():
    zen5 = EPYC.replace("cpu family\t: 25\nmodel\t\t: 17", "cpu family\t: 26\nmodel\t\t: 2")
    older, newer = hardware_stamp(EPYC), hardware_stamp(zen5)
    assert older["cpu"] == newer["cpu"] and older["isa"] == newer["isa"] and older != newer
    assert newer["cpu_id"] == "family 26 model 2 stepping 1"


@pytest.mark.parametrize(
    ("cpuinfo", "cpu", "isa", "amx"),
    [
        (EPYC, "AMD EPYC 9R14", "AVX-512, VNNI, BF16, no AMX", False),
        (XEON, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "AVX-512, VNNI, BF16, AMX", True),
        (OLD, "Intel(R) Core(TM) i7-4770", "AVX2, no AMX", False),
    ],
)
def test_the_hardware_stamp_reads_the_cpu_and_the_instruction_sets_that_decide_int8_speed(cpuinfo, cpu, isa, amx):
    stamp = hardware_stamp(cpuinfo)
    assert stamp["cpu"] == cpu and stamp["isa"] == isa
    assert stamp["cpu_id"] == ("family 25 model 17 stepping 1" if cpuinfo is EPYC else "")
    assert stamp["flags"]["amx_int8"] is amx and stamp["flags"]["avx2"] is True
    assert stamp["flags"]["avx512_vnni"] is (cpuinfo is not OLD)
