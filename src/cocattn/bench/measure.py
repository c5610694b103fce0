"""What the benchmarks measure with: the hardware's name, device synchronisation, the compute ops
one step dispatches, a CPU step's peak resident set, the machine's matmul rate, and a process's
CPU time and page faults."""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any, Callable

import torch

__all__ = [
    "hardware_name",
    "sync",
    "count_ops",
    "cpu_peak_reset",
    "cpu_peak",
    "cpu_memory_gib",
    "matmul_rate",
    "Usage",
]


def hardware_name(device: str) -> str:
    """The name of the hardware behind ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Returns:
        str: the GPU's name for a CUDA device; else the CPU's model name with its core count and
        torch's thread count, e.g. ``"AMD EPYC 7B13 (2 cores, 2 threads)"``.
    """
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def sync(device: str) -> None:
    """Wait for the queued work of a CUDA ``device``; nothing on the CPU."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


_NO_KERNEL = (
    "aten::empty",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::new_empty",
    "aten::new_empty_strided",
    "aten::_unsafe_view",
    "aten::lift_fresh",
)


def count_ops(step: Callable[[], Any]) -> int:
    """The ATen operators ``step()`` dispatches that compute something, views and bare allocations
    left out: about one kernel launch each on a GPU, where short sequences are launch-bound. The
    count is the same on every device, so a CPU run shows what a GPU will launch.

    Returns:
        int: the number of computing operators of one call of ``step``.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(
            self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
        ) -> Any:
            if not getattr(func, "is_view", False) and func.name() not in _NO_KERNEL:
                Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        step()
    return Count.n


def _proc_status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def cpu_peak_reset() -> int:
    """Start a CPU peak measurement. On Linux the peak resident set (VmHWM) is reset to the current
    one (``/proc/self/clear_refs``), so the baseline is the resident set now; elsewhere it is the
    peak so far (``ru_maxrss``), which under-reports a step by the gap between an earlier peak and
    the resident set at its start (about 6 MiB measured).

    Returns:
        int: the baseline in bytes, to subtract from :func:`cpu_peak` after the step.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        rss = _proc_status_bytes("VmRSS")
        if rss is not None:
            return rss
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_peak() -> int:
    """The peak resident set since :func:`cpu_peak_reset`.

    Returns:
        int: bytes (VmHWM; ``ru_maxrss`` where ``/proc`` has none).
    """
    peak = _proc_status_bytes("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_memory_gib() -> float:
    """The machine's physical memory.

    Returns:
        float: GiB (16.0 where the system does not say).
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 16.0


def matmul_rate(device: str = "cpu", n: int = 1024, repeats: int = 5) -> float:
    """The machine's measured float32 matrix-product rate, the yardstick of ``bench train``'s
    FLOP/s: the best of ``repeats`` ``[n, n] @ [n, n]`` products with this process's threads (on a
    GPU, ``n`` = 4096), after one warm-up product.

    Returns:
        float: FLOP/s.
    """
    n = 4096 if device.startswith("cuda") else n
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first one warms up
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


class Usage:
    """CPU time, system time and minor page faults of this process from its creation on."""

    def __init__(self) -> None:
        self.start = resource.getrusage(resource.RUSAGE_SELF)

    def per_step(self, steps: int) -> dict[str, float]:
        """The usage since creation, spread over ``steps`` steps.

        Returns:
            dict[str, float]: ``page_faults_per_step``, ``cpu_ms_per_step`` (user + system) and
            ``system_time_share`` (0 when no CPU time was used).
        """
        end = resource.getrusage(resource.RUSAGE_SELF)
        user, system = end.ru_utime - self.start.ru_utime, end.ru_stime - self.start.ru_stime
        return {
            "page_faults_per_step": (end.ru_minflt - self.start.ru_minflt) / steps,
            "cpu_ms_per_step": 1e3 * (user + system) / steps,
            "system_time_share": system / (user + system) if user + system > 0 else 0.0,
        }
