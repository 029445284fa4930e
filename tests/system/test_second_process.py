"""ExecuTorch's candidates lowered in a second process while this one builds the others: the same candidates and
figures, a copy of the model checked before it builds, failures that come back as the same rejections, a child
that dies rejecting only its candidate, and no child left behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.exporter import second_process
from edgekit.exporter.pipeline import export
from edgekit.exporter.second_process import SecondProcess
from edgekit.exporter.sources import TorchSource, load_source
from edgekit.progress import SilentProgress
from edgekit.specs import specs_from_arrays
from edgekit.targets import Precision, load_target
from testkit import model_ref, second_process_calls

pytest.importorskip("executorch")


class Notes(SilentProgress):
    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


@pytest.fixture
def any_size(monkeypatch):
    """The tiny test models go apart too (below ``MIN_LEAF_MODULES`` they are built here)."""
    monkeypatch.setattr(second_process, "MIN_LEAF_MODULES", 0)


def children() -> list[int]:
    """This process's second-process children still running."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"edgekit.exporter.second_process" in command:
            found.append(int(entry.name))
    return found


def onnx_and_executorch():
    return load_target("x86").model_copy(update={"formats": ["onnx", "executorch"], "threads": 1,
                                                 "precisions": [Precision.fp32, Precision.int8_static]})


def test_executorch_is_lowered_apart_while_onnx_is_built_here(tmp_path, cnn_data, any_size, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = export(model_ref("tiny_cnn"), onnx_and_executorch(), out=tmp_path / "out", calib=cnn_data["calib"],
                    val=cnn_data["val"], format="auto", benchmark=False, accuracy={"top1_agreement_min": 0.5})
    timings = list(result.manifest["timings_s"])
    assert "executorch fp32 (second process)" in timings and "executorch int8_static (second process)" in timings
    assert "executorch fp32" not in timings
    assert timings.index("onnx int8_static: quantize_static") < timings.index("executorch fp32 (second process)")
    # ExecuTorch's runtime is imported here before the wait, once, so the gate does not pay for it
    readied = [t for t in timings if "its runtime readied here" in t]
    assert readied == ["executorch fp32: its runtime readied here meanwhile"]
    assert timings.index(readied[0]) < timings.index("executorch fp32 (second process)")
    by_name = {c.name: c for c in result.candidates}
    assert list(by_name) == ["onnx/fp32", "onnx/int8_static", "executorch/fp32", "executorch/int8_static"]
    fp32, int8 = by_name["executorch/fp32"], by_name["executorch/int8_static"]
    assert fp32.usable and fp32.accuracy.outputs[0].cosine_min > 0.9999  # the copy is the model itself
    assert fp32.steps[0].details["verify_max_abs_diff"] < 1e-4
    assert int8.artifact.path.is_file() and int8.steps[0].params["calibration_samples"] == 32
    assert int8.runner_options == {"input_names": ["x"]}
    assert children() == [] and list(cwd.iterdir()) == []  # no child left, no scratch file in the user's folder


def test_a_copy_that_computes_other_outputs_leaves_the_build_here(tmp_path, cnn_data, any_size):
    progress = Notes()
    result = export(model_ref("unseeded_scale"), onnx_and_executorch(), out=tmp_path / "out",
                    calib=cnn_data["calib"], val=cnn_data["val"], format="auto", benchmark=False,
                    accuracy={"top1_agreement_min": 0.5}, progress=progress)
    timings = result.manifest["timings_s"]
    assert "executorch fp32" in timings and "executorch fp32 (second process)" in timings  # waited, then here
    assert progress.notes[0].startswith("executorch fp32 is built in this process: the second process's copy of "
                                        "the model: the copy's output 0 differs from PyTorch: max abs diff")
    fp32 = next(c for c in result.candidates if c.name == "executorch/fp32")
    assert fp32.usable and fp32.accuracy.outputs[0].cosine_min > 0.9999
    assert children() == []


class StopAt(SilentProgress):
    """Ctrl-C as the step ``label`` starts."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def step(self, label: str):
        if label == self.label:
            raise KeyboardInterrupt
        return super().step(label)


def test_an_interrupted_export_stops_the_child_before_its_folder_goes(tmp_path, cnn_data, any_size):
    with pytest.raises(KeyboardInterrupt):  # ExecuTorch's FP32 went apart first: the child holds it now
        export(model_ref("tiny_cnn"), onnx_and_executorch(), out=tmp_path / "outs" / "cnn",
               calib=cnn_data["calib"], val=cnn_data["val"], format="auto", benchmark=False,
               progress=StopAt("onnx int8_static: quantize_static"))
    assert children() == []
    assert not (tmp_path / "outs").exists()


@pytest.fixture
def child(any_size):
    process = SecondProcess(load_source(model_ref("tiny_cnn")))
    assert process.usable()
    yield process
    process.close()


def test_calls_run_on_the_copy_in_order_and_failures_come_back_as_rejections(child):
    source = child.source
    calls = [child.submit("first", second_process_calls.first_output),
             child.submit("executorch fp32", second_process_calls.fail_export),
             child.submit("executorch int8_static", second_process_calls.fail_accuracy),
             child.submit("again", second_process_calls.first_output)]
    outcomes = [call() for call in reversed(calls)][::-1]  # waited for out of order
    expected = source.run(source.examples)[0]
    assert np.abs(outcomes[0].result - expected).max() < 1e-5 and np.array_equal(outcomes[3].result,
                                                                                outcomes[0].result)
    assert (outcomes[1].failure, outcomes[1].reason) == ("conversion", "executorch fp32: no lowering for this op")
    assert (outcomes[2].failure, outcomes[2].reason) == (
        "accuracy", "executorch int8_static: accuracy before lowering: cosine 0.1")


def test_a_child_that_dies_rejects_the_candidate_it_was_building(child):
    died = child.submit("executorch fp32", second_process_calls.die)()
    assert died.failure == "conversion"
    assert died.reason.startswith("executorch fp32 failed: the second process building it died (signal SIGKILL)")
    child.close()
    assert children() == []


def test_close_stops_a_child_that_is_still_building(child):
    child.submit("executorch fp32", second_process_calls.sleep, 600)
    child.submit("executorch int8_static", second_process_calls.sleep, 600)
    [pid] = children()
    child.close()  # killed, not waited for: its replies are not in
    assert children() == [] and not Path(f"/proc/{pid}").exists()


def test_a_small_model_is_built_here():
    assert not SecondProcess(load_source(model_ref("tiny_cnn"))).usable()  # 9 leaf modules
    assert children() == []


class UnpicklableState(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def get_extra_state(self):
        return lambda: None  # in its state dict, and no pickle writes a lambda

    def set_extra_state(self, state) -> None:
        pass


def test_weights_that_cannot_be_sent_keep_the_builds_here(any_size):
    example = np.zeros((1, 4), np.float32)
    source = TorchSource("unpicklable", None, UnpicklableState().eval(), specs_from_arrays(["x"], [example]),
                         {"x": example}, ["output_0"])
    process = SecondProcess(source)
    assert not process.usable()
    assert process.unavailable.startswith("the model's weights for the second process failed: AttributeError: "
                                          "Can't pickle local object")
    assert children() == []
