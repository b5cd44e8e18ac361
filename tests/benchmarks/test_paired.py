from benchmarks.paired import MAX_SPREAD, interleaved, timed


class Machine:
    """A fake clock: each piece of work advances it by its cost times the machine's current slowness."""

    def __init__(self, slowness: list[float]) -> None:
        self.now = 0.0
        self.slowness = slowness
        self.runs = 0
        self.order: list[str] = []

    def clock(self) -> float:
        return self.now

    def work(self, name: str, cost: float):
        def run() -> None:
            self.now += cost * self.slowness[self.runs % len(self.slowness)]
            self.runs += 1
            self.order.append(name)

        return timed(run, clock=self.clock)


def test_ratio_survives_a_machine_that_slows_down_in_between():
    # The machine is three times slower for the second half: sequential medians would mix load with code.
    machine = Machine([1.0] * 12 + [3.0] * 12)
    timing = interleaved("overhead", machine.work("A", 1.0), machine.work("B", 1.25), pairs=10, warmups=1)
    assert timing.ratio == 1.25
    assert timing.conclusive
    assert "TOO NOISY" not in timing.report()
    assert timing.report().startswith("overhead=1.25 (IQR 1.25-1.25, 10 pairs;")


def test_pairs_alternate_which_variant_goes_first():
    machine = Machine([1.0])
    interleaved("x", machine.work("A", 1.0), machine.work("B", 1.0), pairs=4, warmups=1)
    assert "".join(machine.order) == "AB" + "AB" + "BA" + "AB" + "BA"


def test_a_wide_spread_is_reported_as_too_noisy_to_conclude():
    machine = Machine([1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.5])
    timing = interleaved("overhead", machine.work("A", 1.0), machine.work("B", 1.0), pairs=8)
    assert timing.spread > MAX_SPREAD
    assert not timing.conclusive
    assert "TOO NOISY TO CONCLUDE" in timing.report()


def test_one_pair_never_concludes():
    machine = Machine([1.0])
    timing = interleaved("x", machine.work("A", 1.0), machine.work("B", 2.0), pairs=1)
    assert timing.ratio == 2.0 and timing.difference == 1.0 and not timing.conclusive
