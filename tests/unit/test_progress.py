"""The export's estimate of what is left: the step count from the plan and the mean time of the steps done."""

from edgekit.progress import SilentProgress


def test_nothing_is_estimated_before_the_plan_is_known():
    progress = SilentProgress()
    with progress.step("load model"):
        pass
    assert progress.left() == ""


def test_the_estimate_counts_the_planned_steps_and_their_mean_time():
    progress = SilentProgress()
    progress.expect(4)
    assert progress.left() == "step 1 of ~4"
    progress.timings.update({"load model": 1.0, "export to ONNX": 3.0})  # two steps done, 2 s each on average
    assert progress.left() == "step 3 of ~4, ~4 s left"
    progress.timings.update({"rescue a": 1.0, "rescue b": 1.0, "rescue c": 1.0})  # a rescue added steps
    assert progress.left() == "step 6 of ~6, ~0 s left"
