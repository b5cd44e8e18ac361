"""Peak memory of a piece of work: CUDA's allocator statistics on a GPU, the process's peak resident set on a CPU.

On Linux the peak resident set (VmHWM) is reset through /proc/self/clear_refs before the work, after freed heap
memory is handed back to the system (malloc_trim), so the figure is the work's own high-water mark above what the
process held before it.
"""

import ctypes
import gc
from collections.abc import Callable
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")


def _status_bytes(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} is not in {STATUS}")


def peak_bytes(work: Callable[[], object], device: torch.device) -> int:
    """Bytes the work needed above what was allocated before it (CUDA: allocated tensors; CPU: resident set)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        work()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    before = _status_bytes("VmRSS")
    work()
    return _status_bytes("VmHWM") - before
