"""What GPUs this host has: NVIDIA's NVML library, else `nvidia-smi`, when present; or a fake list for tests and
CPU-only machines. Indexes are NVML's (PCI bus order), which replicas see with `CUDA_DEVICE_ORDER=PCI_BUS_ID`."""

from __future__ import annotations

import ctypes
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
    """The host's GPUs; none is a valid answer (no driver, or NVML and `nvidia-smi` missing or failing)."""
    if fake is not None:
        return parse_fake_gpus(fake)
    found = nvml_gpus()
    return found if found is not None else smi_gpus(timeout_s=timeout_s)


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def nvml_gpus() -> list[Gpu] | None:
    """The GPUs NVML (the driver's own library, what `nvidia-smi` uses) reports; None when it cannot be used."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    nvml.nvmlDeviceGetHandleByIndex_v2.argtypes = [ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
    nvml.nvmlDeviceGetName.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
    nvml.nvmlDeviceGetMemoryInfo.argtypes = [ctypes.c_void_p, ctypes.POINTER(_NvmlMemory)]
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        count = ctypes.c_uint(0)
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return None
        gpus = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            name = ctypes.create_string_buffer(96)
            memory = _NvmlMemory()
            if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                return None
            if nvml.nvmlDeviceGetName(handle, name, len(name)) != 0:
                return None
            total = memory.total if nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) == 0 else None
            gpus.append(Gpu(index=index, gpu_type=name.value.decode(errors="replace"), memory_bytes=total))
        return gpus
    finally:
        nvml.nvmlShutdown()


def smi_gpus(*, timeout_s: float = 5.0) -> list[Gpu]:
    """The GPUs `nvidia-smi` lists; none when it is missing or fails."""
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
