"""Waiting for the machine to be idle before a timed run.

On a shared 2-core VM another process's burst makes 2-thread BLAS timings collapse (a thread
waits for its partner to be scheduled again). With `--wait-idle SECONDS` the benchmark waits,
up to that long, until the CPUs were at least 80% idle for a moment, and a run during which
other processes used more than a quarter of the CPUs is repeated (at most twice more).
"""

from __future__ import annotations

import os
import time


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return idle, sum(values)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot() -> tuple[float, float]:
    """(busy, total) CPU seconds since boot, all CPUs together."""
    try:
        idle, total = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    return (total - idle) / _TICKS, total / _TICKS


def others_share(before: tuple[float, float], after: tuple[float, float], own: float) -> float:
    """Share of the CPUs that other processes used between two snapshots, given the CPU
    seconds our own process used meanwhile."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return 0.0 if total <= 0 else max(0.0, busy - own) / total


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of CPU time spent busy over the next `seconds`, all CPUs together."""
    try:
        idle0, total0 = _cpu_times()
        time.sleep(seconds)
        idle1, total1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = total1 - total0
    return 0.0 if total <= 0 else 1.0 - (idle1 - idle0) / total


def wait_idle(max_wait: float, threshold: float = 0.2, window: float = 0.3) -> float:
    """Wait until the CPUs were idle over `window` seconds, or `max_wait` seconds passed;
    returns the seconds waited."""
    started = time.perf_counter()
    while max_wait > 0 and time.perf_counter() - started < max_wait:
        if busy_fraction(window) < threshold:
            break
    return time.perf_counter() - started
