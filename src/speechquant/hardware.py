"""What machine a number was measured on: the CPU and the instruction sets that decide speed.

Apart from the benchmark so that a tool run on another machine (``tools/runtime_check.py``)
stamps its numbers the same way without the pipeline's data libraries.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path
from typing import Any

import onnxruntime as ort

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16")


def hardware_stamp(cpuinfo: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on, so that unlike machines are never compared silently.

    ``cpuinfo`` is the text of ``/proc/cpuinfo`` (read when not given); ``isa`` names the
    instruction sets that decide int8 and bf16 speed, e.g. "AVX-512, VNNI, BF16, no AMX".
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's entry
    flags = set(fields.get("flags", "").split())
    has = {flag: flag in flags for flag in CPU_FLAGS}
    return {
        "cpu": fields.get("model name") or platform.processor() or "unknown",
        "cpu_id": cpu_id(fields),
        "cores": os.cpu_count(),
        "flags": has,
        "isa": isa_summary(has),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
    }


def cpu_id(fields: dict[str, str]) -> str:
    """Family, model and stepping, e.g. "family 26 model 2 stepping 1"; "" where /proc/cpuinfo has none.

    A virtual machine may name two CPU generations alike with the same flags: the 2-core "AMD
    EPYC" of this project's runs was an older core in some and a Zen 5 (family 26) in others,
    whose one-core fp32 GEMM is 2.4 times as fast. The name and ISA alone cannot tell them apart.
    """
    parts = [
        (word, fields.get(key))
        for word, key in (("family", "cpu family"), ("model", "model"), ("stepping", "stepping"))
    ]
    return " ".join(f"{word} {value}" for word, value in parts if value)


def machine_words(stamp: dict[str, Any]) -> str:
    """A stamp in words for a report's caption: "AMD EPYC (family 26 model 2 stepping 1; AVX-512, VNNI,
    BF16, no AMX), 2 cores"; stamps made before ``cpu_id`` read as they always did."""
    details = "; ".join(part for part in (stamp.get("cpu_id"), stamp["isa"]) if part)
    return f"{stamp['cpu']} ({details}), {stamp['cores']} cores"


def isa_summary(flags: dict[str, bool]) -> str:
    """The instruction sets a speed claim depends on, in words."""
    names = [
        ("AVX-512", flags["avx512f"]),
        ("VNNI", flags["avx512_vnni"]),
        ("BF16", flags["avx512_bf16"]),
        ("AMX", flags["amx_int8"]),
    ]
    present = [name for name, on in names if on]
    if not flags["avx512f"]:
        present.insert(0, "AVX2" if flags["avx2"] else "no AVX2")
    return ", ".join(present + ([] if flags["amx_int8"] else ["no AMX"]))


@cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX). Without it PyTorch's
    bf16 autocast emulates the type: the default model trained at 0.37x of its fp32 rate on an
    Intel Xeon with AVX-512 VNNI and neither (``reports/train_benchmark_xeon_no_bf16.json``),
    against 1.6x on the AMD EPYC with AVX-512 BF16 and 3.5x on a Xeon with AMX (DESIGN.md)."""
    flags = hardware_stamp()["flags"]
    return flags["avx512_bf16"] or flags["amx_bf16"]
