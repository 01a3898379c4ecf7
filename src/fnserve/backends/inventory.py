"""What this host offers replicas (CPUs, memory, GPUs), what each replica holds of it, and why one does not fit.

The rules (docs/ARCHITECTURE.md, "Resources and GPUs"):

- GPUs are strict. `num_gpus` of 1 or more is rounded up to whole GPUs, each held by that replica alone; a fraction
  below 1 shares one GPU with other fractions (two replicas of 0.5 run on one GPU), as in Ray Serve. A `gpu_type`
  must name the GPU: "A100" matches "A100" and "NVIDIA A100-SXM4-80GB", case aside.
- Memory is strict: a replica with `memory` reserves that much of the host's total (MemTotal or the cgroup limit,
  or `FNSERVE_MEMORY`); one without reserves nothing (and has no limit).
- CPUs are shares: counted and shown, and handed to numeric libraries as thread counts, but a replica never waits
  for them, unless the server is given a CPU total (`FNSERVE_CPUS`), which makes them strict.

Plain bookkeeping, no waiting: `controlplane/placement.py` waits on it, and `backends/gpus.py` finds the GPUs.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnserve._units import format_memory
from fnserve.backends.gpus import Gpu, detect_gpus
from fnserve.settings import Settings
from fnserve.spec import Resources

GPU_SHARES = 1000  # one GPU, in the units a fractional request is counted in (0.25 GPU: 250)


class DoesNotFit(Exception):
    """What a replica needs is not free now; the message says what is missing."""


@dataclass(frozen=True)
class Allocation:
    """What one replica holds: GPUs by index (each whole, or `gpu_fraction` of one), CPUs and memory as amounts."""

    replica_id: str
    gpu_indexes: tuple[int, ...] = ()
    gpu_fraction: float = 0.0  # of each GPU in `gpu_indexes`: 1.0 for whole GPUs
    num_cpus: float = 0.0
    memory_bytes: int = 0

    @property
    def cuda_visible_devices(self) -> str:
        """`CUDA_VISIBLE_DEVICES` for the replica: its GPU indexes, or "" (no GPU at all) when it holds none."""
        return ",".join(str(index) for index in self.gpu_indexes)

    @property
    def gpu_shares(self) -> int:
        return round(self.gpu_fraction * GPU_SHARES)


def gpu_type_matches(wanted: str | None, name: str) -> bool:
    """True when `wanted` (a user's "A100") names the GPU `name` ("NVIDIA A100-SXM4-80GB"); None matches any."""
    if wanted is None:
        return True
    pattern = r"(?<![a-z0-9])" + re.escape(wanted.strip().lower()) + r"(?![a-z0-9])"
    return re.search(pattern, name.lower()) is not None


def host_cpus() -> float:
    """The CPUs this process may use: its affinity, lowered by a cgroup v2 CPU quota when there is one."""
    try:
        count = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        count = float(os.cpu_count() or 1)
    quota = _read(Path("/sys/fs/cgroup/cpu.max")).split()
    if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]) > 0:
        count = min(count, int(quota[0]) / int(quota[1]))
    return count


def host_memory_bytes() -> int:
    """The memory of this host (/proc/meminfo's MemTotal), lowered by a cgroup memory limit when there is one."""
    total = 0
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) * 1024
    if total == 0:  # not on Linux
        with_pages = getattr(os, "sysconf_names", {})
        if "SC_PAGE_SIZE" in with_pages and "SC_PHYS_PAGES" in with_pages:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        limit = _read(limit_file).strip()
        if limit.isdigit() and 0 < int(limit) < (total or math.inf):
            total = int(limit)
    return total


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _amount(value: float) -> str:
    """1.0 → "1", 0.5 → "0.5"."""
    return f"{value:g}"


def _cpus(count: float) -> str:
    return f"{_amount(count)} CPU{'s' if count != 1 else ''}"


def _gpus(count: float, gpu_type: str | None) -> str:
    """ "2 GPUs of type A100", "1 GPU", "0.5 of a GPU"."""
    kind = f" of type {gpu_type}" if gpu_type else ""
    if count < 1:
        return f"{_amount(count)} of a GPU{kind}"
    return f"{_amount(count)} GPU{'s' if count != 1 else ''}{kind}"


class Inventory:
    """The host's CPUs, memory and GPUs, and what each replica holds of them.

    Example:
        >>> from fnserve.backends.gpus import parse_fake_gpus
        >>> inventory = Inventory(num_cpus=4, memory_bytes=8_000_000_000, gpus=parse_fake_gpus("A100:2"))
        >>> inventory.reserve("a", Resources(num_gpus=1)).cuda_visible_devices
        '0'
        >>> inventory.fits(Resources(num_gpus=2))
        'needs 2 GPUs, 1 free'
    """

    def __init__(
        self, *, num_cpus: float, memory_bytes: int, gpus: Sequence[Gpu] = (), strict_cpus: bool = False
    ) -> None:
        self.num_cpus = num_cpus
        self.memory_bytes = memory_bytes
        self.gpus = list(gpus)
        self.strict_cpus = strict_cpus
        self.allocations: dict[str, Allocation] = {}

    @classmethod
    def of_host(cls, settings: Settings) -> Inventory:
        """This host's inventory: the settings' totals where given (CPUs then strict), else what the host has."""
        return cls(
            num_cpus=settings.cpus if settings.cpus is not None else host_cpus(),
            memory_bytes=settings.memory_bytes if settings.memory_bytes is not None else host_memory_bytes(),
            gpus=detect_gpus(settings.fake_gpus),
            strict_cpus=settings.cpus is not None,
        )

    # -- what is held -------------------------------------------------------------------------------------------------

    @property
    def cpus_reserved(self) -> float:
        return sum(allocation.num_cpus for allocation in self.allocations.values())

    @property
    def memory_reserved(self) -> int:
        return sum(allocation.memory_bytes for allocation in self.allocations.values())

    def _gpu_shares_used(self, ignoring: Collection[str] = ()) -> dict[int, int]:
        used = {gpu.index: 0 for gpu in self.gpus}
        for allocation in self.allocations.values():
            if allocation.replica_id not in ignoring:
                for index in allocation.gpu_indexes:
                    used[index] += allocation.gpu_shares
        return used

    def allocation(self, replica_id: str) -> Allocation | None:
        return self.allocations.get(replica_id)

    # -- placing ------------------------------------------------------------------------------------------------------

    def fits(self, resources: Resources, *, ignoring: Collection[str] = ()) -> str | None:
        """None when a replica needing `resources` fits now, else what is missing ("needs 2 GPUs, 1 free").
        `ignoring`: replicas whose holdings count as free (those a blue/green rollout would stop)."""
        placed = self._place("", resources, ignoring)
        return placed if isinstance(placed, str) else None

    def reserve(self, replica_id: str, resources: Resources) -> Allocation:
        """Hold what `replica_id` needs; raises DoesNotFit naming what is missing. Reserving twice returns the
        first allocation."""
        if replica_id in self.allocations:
            return self.allocations[replica_id]
        placed = self._place(replica_id, resources, ())
        if isinstance(placed, str):
            raise DoesNotFit(placed)
        self.allocations[replica_id] = placed
        return placed

    def release(self, replica_id: str) -> Allocation | None:
        """Give back what `replica_id` held (None when it held nothing): harmless to call twice."""
        return self.allocations.pop(replica_id, None)

    def _place(self, replica_id: str, resources: Resources, ignoring: Collection[str]) -> Allocation | str:
        held = [a for a in self.allocations.values() if a.replica_id not in ignoring]
        missing = []
        if self.strict_cpus:
            free_cpus = self.num_cpus - sum(a.num_cpus for a in held)
            if resources.num_cpus > free_cpus + 1e-9:
                missing.append(f"needs {_cpus(resources.num_cpus)}, {_amount(max(free_cpus, 0))} free")
        memory = resources.memory or 0
        free_memory = self.memory_bytes - sum(a.memory_bytes for a in held)
        if memory > free_memory:
            missing.append(f"needs {format_memory(memory)} of memory, {format_memory(max(free_memory, 0))} free")
        gpus = self._place_gpus(resources, self._gpu_shares_used(ignoring))
        if isinstance(gpus, str):
            missing.append(gpus)
        if missing:
            return "; ".join(missing)
        assert not isinstance(gpus, str)
        indexes, fraction = gpus
        return Allocation(replica_id, indexes, fraction, resources.num_cpus, memory)

    def _place_gpus(self, resources: Resources, used: dict[int, int]) -> tuple[tuple[int, ...], float] | str:
        """The GPU indexes and the fraction of each for `resources`, or what is missing."""
        if resources.num_gpus == 0:
            return (), 0.0
        candidates = [gpu for gpu in self.gpus if gpu_type_matches(resources.gpu_type, gpu.gpu_type)]
        if resources.num_gpus >= 1:
            count = math.ceil(resources.num_gpus)
            free = [gpu.index for gpu in candidates if used[gpu.index] == 0]
            if len(free) < count:
                return f"needs {_gpus(count, resources.gpu_type)}, {len(free)} free"
            return tuple(free[:count]), 1.0
        shares = max(1, round(resources.num_gpus * GPU_SHARES))
        # Best fit: the fullest GPU it still fits on, so that whole GPUs stay free for those who need them.
        fitting = [gpu.index for gpu in candidates if GPU_SHARES - used[gpu.index] >= shares]
        if not fitting:
            most = max((GPU_SHARES - used[gpu.index] for gpu in candidates), default=0)
            return f"needs {_gpus(resources.num_gpus, resources.gpu_type)}, at most {_amount(most / GPU_SHARES)} free"
        best = max(fitting, key=lambda index: (used[index], -index))
        return (best,), shares / GPU_SHARES

    def never_fits(self, resources: Resources, *, replicas: int = 1) -> str | None:
        """None when `replicas` replicas needing `resources` fit on this host once nothing else runs; else why not,
        with what the host has ("needs 4 GPUs of type A100, this host has 1")."""
        missing = []
        if self.strict_cpus and resources.num_cpus > self.num_cpus + 1e-9:
            missing.append(f"needs {_cpus(resources.num_cpus)}, this host has {_amount(self.num_cpus)}")
        if (resources.memory or 0) > self.memory_bytes:
            missing.append(
                f"needs {format_memory(resources.memory or 0)} of memory, this host has "
                f"{format_memory(self.memory_bytes)}"
            )
        if resources.num_gpus > 0:
            matching = sum(1 for gpu in self.gpus if gpu_type_matches(resources.gpu_type, gpu.gpu_type))
            if matching < math.ceil(resources.num_gpus):  # a fraction needs one GPU
                has = str(matching) if matching else "none"
                others = Counter(gpu.gpu_type for gpu in self.gpus)
                if resources.gpu_type is not None and others and not matching:
                    has += " (it has " + ", ".join(f"{count} × {name}" for name, count in sorted(others.items())) + ")"
                missing.append(f"needs {_gpus(resources.num_gpus, resources.gpu_type)}, this host has {has}")
        if missing:
            return "; ".join(missing)
        empty = Inventory(
            num_cpus=self.num_cpus, memory_bytes=self.memory_bytes, gpus=self.gpus, strict_cpus=self.strict_cpus
        )
        for placed in range(replicas):
            try:
                empty.reserve(str(placed), resources)
            except DoesNotFit:
                return f"{replicas} replicas that each need {_describe(resources)} do not fit at once; {placed} do"
        return None

    # -- showing ------------------------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Totals, what is reserved, and each GPU with the replicas that hold it (`GET /v1/resources`)."""
        used = self._gpu_shares_used()
        holders: dict[int, list[str]] = {gpu.index: [] for gpu in self.gpus}
        for allocation in self.allocations.values():
            for index in allocation.gpu_indexes:
                holders[index].append(allocation.replica_id)
        return {
            "num_cpus": self.num_cpus,
            "cpus_reserved": self.cpus_reserved,
            "cpus_strict": self.strict_cpus,
            "memory_bytes": self.memory_bytes,
            "memory_reserved": self.memory_reserved,
            "gpus": [
                {
                    "index": gpu.index,
                    "gpu_type": gpu.gpu_type,
                    "memory_bytes": gpu.memory_bytes,
                    "allocated": used[gpu.index] / GPU_SHARES,
                    "replicas": holders[gpu.index],
                }
                for gpu in self.gpus
            ],
            "replicas": [
                {
                    "replica_id": allocation.replica_id,
                    "num_cpus": allocation.num_cpus,
                    "memory_bytes": allocation.memory_bytes,
                    "gpus": list(allocation.gpu_indexes),
                    "gpu_fraction": allocation.gpu_fraction,
                }
                for allocation in self.allocations.values()
            ],
        }


def _describe(resources: Resources) -> str:
    parts = [_gpus(resources.num_gpus, resources.gpu_type)] if resources.num_gpus else []
    if resources.memory:
        parts.append(f"{format_memory(resources.memory)} of memory")
    parts.append(_cpus(resources.num_cpus))
    return ", ".join(parts)
