"""What the benchmark ran on: CPU model, cores, instruction sets, torch build, threads, int8 engine.

Hardware is an input DVC cannot hash, so every benchmark output links to this record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; ('unknown', {}) where it does not exist."""
    if not path.is_file():
        return platform.processor() or "unknown", set()
    model, flags = "unknown", set()
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def isa_record(flags: set[str]) -> dict[str, bool]:
    """The flags of ISA_FLAGS (True/False) plus every other avx512* / amx* flag the CPU has."""
    extra = {f: True for f in flags if f.startswith(("avx512", "amx"))}
    return dict(sorted(({f: f in flags for f in ISA_FLAGS} | extra).items()))


def device_info(threads: int) -> dict:
    """A JSON-able description of this machine and the torch settings used for timing. Call it
    after the models are deployed: `quantized_engine` is the engine PTQ selected."""
    import torch

    model, flags = _cpuinfo()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(affinity) if affinity is not None else os.cpu_count(),
        "isa": isa_record(flags),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": threads,
        "quantized_engine": torch.backends.quantized.engine,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def device_id(info: dict) -> str:
    """Short stable hash of a device record, to link result rows to their device.json."""
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:12]
