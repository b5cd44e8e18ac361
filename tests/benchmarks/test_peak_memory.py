import torch

from benchmarks.peak_memory import peak_bytes

CPU = torch.device("cpu")
MB = 10**6


def work() -> None:
    first = torch.empty(MB, dtype=torch.uint8)
    second = torch.empty(2 * MB, dtype=torch.uint8)
    del first, second
    torch.empty(MB, dtype=torch.uint8)


def test_the_cpu_peak_counts_the_tensors_held_at_once():
    assert peak_bytes(work, CPU) == 3 * MB


def test_the_cpu_peak_counts_from_what_was_allocated_when_the_work_began():
    kept: list[torch.Tensor] = []
    held = torch.ones(50 * MB, dtype=torch.uint8)
    assert peak_bytes(lambda: kept.append(torch.ones(20 * MB, dtype=torch.uint8)), CPU) == 20 * MB
    del held  # freed while nothing measures: a resident-set peak would now reuse its pages
    assert peak_bytes(work, CPU) == 3 * MB  # the 20 MB kept from the last measurement are not counted again
    kept.clear()
    assert peak_bytes(work, CPU) == 3 * MB
