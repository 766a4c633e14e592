"""Shared pieces of the benchmarks: the machine line, alternating timed runs (best and median next to a
baseline measured in the same run), and peak memory.

A shared machine only ever slows a run down, and the slowdown drifts over minutes, so a figure is the
ratio to a baseline run alternately with it in the same process: ``alternate`` runs the cases
round-robin and reports, per case, the best and the median wall time of its runs and the load average
seen while it ran.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time

import torch


def machine() -> str:
    """One line naming the machine: CPU model, cores torch may use, torch version and threads, load."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), load average {load():.2f}"


def load() -> float:
    return os.getloadavg()[0]


class Runs:
    """Wall/CPU seconds and the load average of each run of one case."""

    def __init__(self, name: str):
        self.name, self.wall, self.cpu, self.loads = name, [], [], []

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    def load_range(self) -> str:
        lo, hi = min(self.loads), max(self.loads)
        return f"load {lo:.1f}" if hi - lo < 0.05 else f"load {lo:.1f}-{hi:.1f}"

    def describe(self, per: float | None = None, unit: str = "frames/s") -> str:
        """``best X, median Y`` as a rate (``per`` items per run) or in seconds."""
        if per is None:
            return f"best {self.best:7.2f} s, median {self.median:7.2f} s (n={len(self.wall)}, {self.load_range()})"
        return f"best {per / self.best:7.2f} {unit}, median {per / self.median:7.2f} {unit} (n={len(self.wall)}, {self.load_range()})"


def alternate(cases: dict, repeats: int, warmup: bool = True) -> dict[str, Runs]:
    """Run ``cases`` (name → callable) round-robin ``repeats`` times each (after one untimed call of
    each when ``warmup``); returns name → :class:`Runs`."""
    if warmup:
        for fn in cases.values():
            fn()
    runs = {name: Runs(name) for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            before = load()
            c, t = time.process_time(), time.perf_counter()
            fn()
            runs[name].wall.append(time.perf_counter() - t)
            runs[name].cpu.append(time.process_time() - c)
            runs[name].loads.append(max(before, load()))
    return runs


def ratio(fast: Runs, base: Runs) -> str:
    """``xB (best) / xM (median)``: how many times less wall time ``fast`` took than ``base``."""
    return f"x{base.best / fast.best:.2f} best, x{base.median / fast.median:.2f} median"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def heap_reader():
    """Bytes currently allocated through malloc (glibc mallinfo2: in-use heap + mmapped blocks), or None.

    Unlike the resident set size this falls when memory is freed, so it shows what is live at a time
    (torch's CPU tensors come from malloc).
    """
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None

    def read() -> int:
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd

    return read


class PeakMemory:
    """Peak live heap (and peak RSS) above the level at entry, polled every millisecond in a thread."""

    def __enter__(self):
        self._heap = heap_reader()
        self.heap_base = self.heap_peak = self._heap() if self._heap else 0
        self.rss_base = self.rss_peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        if self._heap:
            self.heap_peak = max(self.heap_peak, self._heap())
        self.rss_peak = max(self.rss_peak, rss_bytes())

    def _poll(self):
        while not self._stop.wait(0.001):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def heap(self) -> int:
        return self.heap_peak - self.heap_base

    @property
    def rss(self) -> int:
        return self.rss_peak - self.rss_base
