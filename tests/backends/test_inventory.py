"""The host's inventory without a server: placing whole and fractional GPUs by type, strict memory, CPUs as shares
(strict when given a total), the reasons a replica waits or can never run, the settings that set the totals, and
measuring a real process tree's memory."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from fnserve._units import format_memory
from fnserve.backends.gpus import Gpu, detect_gpus, nvml_gpus, parse_fake_gpus, smi_gpus
from fnserve.backends.inventory import (
    DoesNotFit,
    Inventory,
    gpu_type_matches,
    host_cpus,
    host_memory_bytes,
)
from fnserve.backends.memory import session_rss_bytes
from fnserve.settings import Settings
from fnserve.spec import Resources
from fnserve.testing import wait_until

GB = 1_000_000_000


def inventory(
    gpus: str = "A100:2", *, num_cpus: float = 2, memory: int = 8 * GB, strict_cpus: bool = False
) -> Inventory:
    return Inventory(num_cpus=num_cpus, memory_bytes=memory, gpus=parse_fake_gpus(gpus), strict_cpus=strict_cpus)


# -- GPUs ---------------------------------------------------------------------------------------------------------


def test_whole_gpus_go_to_one_replica_each_lowest_index_first() -> None:
    host = inventory("A100:2")

    first = host.reserve("a", Resources(num_gpus=1))
    second = host.reserve("b", Resources(num_gpus=1))

    assert (first.cuda_visible_devices, second.cuda_visible_devices) == ("0", "1")
    assert host.fits(Resources(num_gpus=1)) == "needs 1 GPU, 0 free"
    with pytest.raises(DoesNotFit, match="needs 1 GPU, 0 free"):
        host.reserve("c", Resources(num_gpus=1))


def test_released_gpu_is_given_to_the_next_replica() -> None:
    host = inventory("A100:2")
    host.reserve("a", Resources(num_gpus=1))
    host.reserve("b", Resources(num_gpus=1))

    assert host.release("a") is not None
    assert host.release("a") is None  # twice is harmless

    assert host.reserve("c", Resources(num_gpus=1)).gpu_indexes == (0,)


def test_reason_counts_the_free_gpus_of_the_type_asked_for() -> None:
    host = inventory("A100:2,T4:1")
    host.reserve("a", Resources(num_gpus=1, gpu_type="A100"))

    assert host.fits(Resources(num_gpus=2, gpu_type="A100")) == "needs 2 GPUs of type A100, 1 free"
    assert host.fits(Resources(num_gpus=2)) is None  # any type: A100 #1 and the T4
    assert host.reserve("t", Resources(num_gpus=1, gpu_type="t4")).gpu_indexes == (2,)


def test_fractional_gpus_share_one_gpu_and_pack_before_spreading() -> None:
    """
    1. Two replicas of 0.5 GPU share GPU 0; a third 0.25 goes to GPU 1 (GPU 0 is full).
    2. A fourth 0.25 packs onto GPU 1 beside the third, keeping nothing else half-used.
    3. No GPU is wholly free now: a whole-GPU replica waits, and says so.
    """
    host = inventory("A100:2")

    halves = [host.reserve(name, Resources(num_gpus=0.5)) for name in ("a", "b")]
    quarters = [host.reserve(name, Resources(num_gpus=0.25)) for name in ("c", "d")]

    assert [a.cuda_visible_devices for a in halves + quarters] == ["0", "0", "1", "1"]
    assert halves[0].gpu_fraction == 0.5
    assert host.fits(Resources(num_gpus=1)) == "needs 1 GPU, 0 free"
    assert host.fits(Resources(num_gpus=0.75)) == "needs 0.75 of a GPU, at most 0.5 free"
    assert host.describe()["gpus"][1]["allocated"] == 0.5


def test_more_than_one_gpu_is_rounded_up_to_whole_gpus() -> None:
    host = inventory("A100:3")

    assert host.reserve("a", Resources(num_gpus=1.5)).cuda_visible_devices == "0,1"
    assert host.fits(Resources(num_gpus=1.5)) == "needs 2 GPUs, 1 free"


@pytest.mark.parametrize(
    ("wanted", "name", "matches"),
    [
        ("A100", "A100", True),
        ("a100", "NVIDIA A100-SXM4-80GB", True),
        ("H100 80GB", "NVIDIA H100 80GB HBM3", True),
        ("A10", "NVIDIA A100-SXM4-80GB", False),
        ("A100", "NVIDIA A10", False),
        (None, "T4", True),
    ],
)
def test_gpu_type_matches_a_whole_word_of_the_name(wanted: str | None, name: str, matches: bool) -> None:
    assert gpu_type_matches(wanted, name) is matches


# -- memory and CPUs ----------------------------------------------------------------------------------------------


def test_memory_is_reserved_strictly_and_none_reserves_nothing() -> None:
    host = inventory("", memory=1 * GB)
    host.reserve("a", Resources(memory="600MB"))

    assert host.fits(Resources(memory="600MB")) == "needs 600 MB of memory, 400 MB free"
    assert host.fits(Resources()) is None
    assert host.reserve("b", Resources()).memory_bytes == 0


def test_cpus_are_oversubscribed_unless_strict() -> None:
    shares = inventory("", num_cpus=2)
    strict = inventory("", num_cpus=2, strict_cpus=True)
    for host in (shares, strict):
        host.reserve("a", Resources(num_cpus=2))

    assert shares.fits(Resources(num_cpus=1)) is None
    assert shares.cpus_reserved == 2
    assert strict.fits(Resources(num_cpus=1)) == "needs 1 CPU, 0 free"


def test_reason_lists_everything_missing() -> None:
    host = inventory("A100:1", memory=1 * GB)
    host.reserve("a", Resources(num_gpus=1, memory="1GB"))

    assert host.fits(Resources(num_gpus=1, memory="1GB")) == "needs 1 GB of memory, 0 B free; needs 1 GPU, 0 free"


def test_blue_green_check_counts_the_replicas_it_would_stop_as_free() -> None:
    host = inventory("A100:1")
    host.reserve("old", Resources(num_gpus=1))

    assert host.fits(Resources(num_gpus=1)) is not None
    assert host.fits(Resources(num_gpus=1), ignoring=["old"]) is None


# -- never fits -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "replicas", "reason"),
    [
        (Resources(num_gpus=4, gpu_type="A100"), 1, "needs 4 GPUs of type A100, this host has 2"),
        (Resources(num_gpus=1, gpu_type="H100"), 1, "needs 1 GPU of type H100, this host has none (it has 2 × A100)"),
        (Resources(memory="100TB"), 1, "needs 100 TB of memory, this host has 8 GB"),
        (
            Resources(num_gpus=1),
            3,
            "3 replicas that each need 1 GPU, 1 CPU do not fit at once; 2 do",
        ),
        (Resources(num_gpus=0.5), 4, None),
        (Resources(num_gpus=0.5), 5, "5 replicas that each need 0.5 of a GPU, 1 CPU do not fit at once; 4 do"),
        (Resources(num_cpus=64), 1, None),  # CPUs are shares
    ],
)
def test_never_fits_names_what_the_host_has(resources: Resources, replicas: int, reason: str | None) -> None:
    host = inventory("A100:2")
    host.reserve("busy", Resources(num_gpus=2))  # what runs now does not matter

    assert host.never_fits(resources, replicas=replicas) == reason


def test_never_fits_without_gpus_and_with_strict_cpus() -> None:
    host = inventory("", num_cpus=2, strict_cpus=True)

    assert host.never_fits(Resources(num_gpus=1)) == "needs 1 GPU, this host has none"
    assert host.never_fits(Resources(num_cpus=4)) == "needs 4 CPUs, this host has 2"


# -- the host, the settings, and what replicas use ---------------------------------------------------------------


def test_settings_set_the_totals_and_make_cpus_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FNSERVE_CPUS", "3")
    monkeypatch.setenv("FNSERVE_MEMORY", "2GB")
    monkeypatch.setenv("FNSERVE_FAKE_GPUS", "T4:1")

    host = Inventory.of_host(Settings.from_env())

    assert (host.num_cpus, host.memory_bytes, host.strict_cpus) == (3, 2 * GB, True)
    assert host.gpus == [Gpu(index=0, gpu_type="T4", memory_bytes=None)]


def test_host_totals_are_detected_when_not_given() -> None:
    host = Inventory.of_host(Settings(fake_gpus=""))

    assert host.num_cpus == host_cpus() > 0
    assert host.memory_bytes == host_memory_bytes() > 0
    assert (host.strict_cpus, host.gpus) == (False, [])


def test_describe_shows_totals_and_who_holds_each_gpu() -> None:
    host = inventory("A100:2")
    host.reserve("a", Resources(num_gpus=0.5, memory="1GB"))

    view = host.describe()

    assert (view["num_cpus"], view["cpus_reserved"], view["memory_reserved"]) == (2, 1, GB)
    assert [(g["index"], g["allocated"], g["replicas"]) for g in view["gpus"]] == [(0, 0.5, ["a"]), (1, 0.0, [])]
    assert view["replicas"] == [
        {"replica_id": "a", "num_cpus": 1, "memory_bytes": GB, "gpus": [0], "gpu_fraction": 0.5}
    ]


@pytest.mark.parametrize(
    ("size", "text"), [(612_000_000, "612 MB"), (1_500_000_000, "1.5 GB"), (8 * GB, "8 GB"), (999, "999 B")]
)
def test_format_memory_uses_the_units_people_write(size: int, text: str) -> None:
    assert format_memory(size) == text


def test_session_rss_counts_a_process_and_its_children() -> None:
    """
    1. Start a process in its own session (as a replica is) whose child holds 60 MB.
    2. The session's resident memory counts the child's 60 MB too.
    """
    holder = "import sys; data = b'x' * 60_000_000; print('ready', flush=True); sys.stdin.read()"
    parent = (
        "import subprocess, sys; "
        f"child = subprocess.Popen([sys.executable, '-c', {holder!r}], stdin=sys.stdin, stdout=sys.stdout); "
        "child.wait()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        used = wait_until(lambda: session_rss_bytes([process.pid]).get(process.pid, 0) > 60_000_000, timeout_s=5)
        assert used
    finally:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        process.wait(timeout=10)
        process.stdout.close()


def test_session_rss_is_absent_for_a_session_with_no_process() -> None:
    assert session_rss_bytes([2**22 + 7]) == {}


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs an NVIDIA GPU and its driver (nvidia-smi)")
def test_real_gpus_are_detected_alike_by_nvml_and_nvidia_smi() -> None:
    detected = detect_gpus()

    assert detected, "nvidia-smi is installed but no GPU was detected"
    assert nvml_gpus() in (None, detected)
    assert [(g.index, g.gpu_type) for g in smi_gpus()] == [(g.index, g.gpu_type) for g in detected]
