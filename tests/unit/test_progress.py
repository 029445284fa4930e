"""The export's estimate of what is left: the planned steps at their typical seconds, scaled by how long the
planned steps done so far took against theirs."""

import time

import pytest

import edgekit.progress
from edgekit.progress import SilentProgress


def test_nothing_is_estimated_before_the_plan_is_known():
    progress = SilentProgress()
    with progress.step("load model"):
        pass
    assert progress.left() == ""


class Clock:
    """``time.perf_counter`` for the progress module: each step takes the seconds it is told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _done(progress: SilentProgress, clock: Clock, *seconds: float) -> None:
    """Run steps of the given durations on the fake clock."""
    for duration in seconds:
        with progress.step(f"a step of {duration} s"):
            clock.now += duration


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(edgekit.progress.time, "perf_counter", clock)
    return clock


def test_a_slow_step_still_to_come_is_weighed_as_slow(clock):
    """Two quick steps done do not make a LiteRT conversion still to come look quick."""
    progress = SilentProgress()
    _done(progress, clock, 1.0)  # load model: before the plan, not part of the scale
    progress.expect([0.2, 0.2, 20.0, 5.0])  # two OpenVINO conversions, a LiteRT conversion, a gate
    assert progress.left() == "step 2 of ~5, ~25 s left"  # typical seconds as they are
    _done(progress, clock, 0.2, 0.2)
    assert progress.left() == "step 4 of ~5, ~25 s left"  # those took what they typically take


def test_a_slower_host_scales_what_is_left(clock):
    progress = SilentProgress()
    progress.expect([10.0, 10.0, 10.0])
    _done(progress, clock, 30.0)  # three times the typical seconds, damped by a 10 s prior: (30 + 10) / (10 + 10)
    assert progress.left() == "step 2 of ~3, ~40 s left"
    _done(progress, clock, 30.0)  # now (60 + 10) / (20 + 10)
    assert progress.left() == "step 3 of ~3, ~23 s left"


def test_a_new_plan_replaces_what_is_left(clock):
    progress = SilentProgress()
    progress.expect([1.0])
    _done(progress, clock, 1.0)
    assert progress.left() == "step 2 of ~2, ~0 s left"  # the plan is done: nothing more is expected
    progress.expect([45.0])  # one more step, of 45 s
    assert progress.left() == "step 2 of ~2, ~45 s left"


def test_a_rescue_is_bounded_by_its_deadline(clock):
    """A rescue runs as many steps as its budget allows: what is left is what is left of the budget, whatever
    step it is on (the fake clock times the steps; the deadline is on the monotonic clock)."""
    progress = SilentProgress()
    progress.expect([1.0])
    _done(progress, clock, 1.0)
    progress.expect_until(time.monotonic() + 45.0)
    assert progress.left() == "step 2, at most ~45 s left"
    _done(progress, clock, 3.0, 2.0)  # per-layer sensitivity, then a first trial
    assert progress.left() == "step 4, at most ~45 s left"
