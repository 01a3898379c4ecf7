"""What GPUs this host has: NVIDIA's `nvidia-smi` when present, or a fake list for tests and CPU-only machines."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    index: int
    gpu_type: str
    memory_bytes: int | None


def parse_fake_gpus(text: str) -> list[Gpu]:
    """`"A100:2,T4"` → two A100s and one T4 (what `FNSERVE_FAKE_GPUS` holds)."""
    gpus: list[Gpu] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition(":")
        for _ in range(int(count) if count.isdigit() else 1):
            gpus.append(Gpu(index=len(gpus), gpu_type=name, memory_bytes=None))
    return gpus


def detect_gpus(fake: str | None = None, *, timeout_s: float = 5.0) -> list[Gpu]:
    """The host's GPUs; none is a valid answer (no driver, or `nvidia-smi` missing or failing)."""
    if fake is not None:
        return parse_fake_gpus(fake)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        output = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in output.strip().splitlines():
        index, name, memory_mib = (field.strip() for field in line.split(","))
        memory = int(float(memory_mib)) * 1024 * 1024 if memory_mib.replace(".", "").isdigit() else None
        gpus.append(Gpu(index=int(index), gpu_type=name, memory_bytes=memory))
    return gpus


def gpu_types(gpus: list[Gpu]) -> list[tuple[str, int, int | None]]:
    """(type, count, memory of one) per GPU type."""
    counts = Counter(gpu.gpu_type for gpu in gpus)
    memory = {gpu.gpu_type: gpu.memory_bytes for gpu in gpus}
    return [(name, count, memory[name]) for name, count in sorted(counts.items())]
