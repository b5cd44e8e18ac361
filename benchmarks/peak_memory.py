"""Peak memory of a piece of work: the most bytes of tensors it held allocated at once, above what was allocated
before it. On a GPU from CUDA's allocator statistics; on a CPU from torch's profiler, which reports every tensor
allocation and free of the CPU allocator with the running total.

Counting tensors, not the process's resident set, makes the CPU figure a property of the work alone: the same work
gives the same bytes in any process, whatever heap earlier work left behind (a resident-set peak moved by ±50 MiB
between runs of the same job, and favoured whichever variant ran second).
"""

import gc
from collections.abc import Callable, Iterator

import torch
from torch._C._profiler import _EventType, _ProfilerEvent
from torch.profiler import ProfilerActivity, profile


def _events(events: list[_ProfilerEvent]) -> Iterator[_ProfilerEvent]:
    for event in events:
        yield event
        yield from _events(event.children)


def cpu_peak_bytes(work: Callable[[], object]) -> int:
    """Most bytes of CPU tensors allocated at once by `work`, above what was allocated when it began.

    The profiler's running total lives as long as the process and counts only what it saw: it is read relative to
    its value before the work's first allocation. Tensors allocated while no profiler ran and freed by the work are
    not subtracted, so the figure errs high, never low."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        work()
    tree = profiler.profiler.kineto_results.experimental_event_tree()
    allocations = sorted(
        (event.start_time_ns, event.extra_fields.total_allocated, event.extra_fields.alloc_size)
        for event in _events(tree)
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu"
    )
    if not allocations:
        return 0
    _, first_total, first_size = allocations[0]
    start = first_total - first_size
    return max(0, max(total for _, total, _ in allocations) - start)


def peak_bytes(work: Callable[[], object], device: torch.device) -> int:
    """Bytes of tensors the work needed above what was allocated before it."""
    gc.collect()
    if device.type != "cuda":
        return cpu_peak_bytes(work)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    work()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
