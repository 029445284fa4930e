"""LiteRtRunner on tiny models converted with litert-torch: numbers against PyTorch, input order, quantized I/O."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

litert_torch = pytest.importorskip("litert_torch")
import torch  # noqa: E402

from edgekit.accuracy import cosine  # noqa: E402
from edgekit.errors import InputError  # noqa: E402
from edgekit.quiet import quiet  # noqa: E402
from edgekit.runtime import open_runner  # noqa: E402
from edgekit.runtime.litert import LiteRtRunner  # noqa: E402
from testkit import REPO, models, smooth_images  # noqa: E402


class ManyInOut(torch.nn.Module):
    """Twelve inputs and twelve outputs, output i = (i + 1) * input i: more than ten, so args_10 sorts before
    args_2 in the signature."""

    def forward(self, *xs):
        return tuple((i + 1) * x for i, x in enumerate(xs))


def _int8(net, example, path):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(net, (example,)).module(), quantizer)
    for image in smooth_images(32, seed=1):
        prepared(torch.from_numpy(image[None]))
    converted = convert_pt2e(prepared, fold_quantize=False)
    litert_torch.convert(converted, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(path)


@pytest.fixture(scope="module")
def tflite(tmp_path_factory):
    """Each tiny model converted to .tflite once for the whole module."""
    folder = tmp_path_factory.mktemp("litert")
    cnn, example = models.tiny_cnn()
    two, pair = models.two_inputs()
    paths = {name: folder / f"{name}.tflite" for name in ("cnn", "int8", "two", "many", "nhwc")}
    with quiet(native=True):
        litert_torch.convert(cnn, (example,)).export(paths["cnn"])
        _int8(cnn, example, paths["int8"])
        litert_torch.convert(two, (pair["a"], pair["b"])).export(paths["two"])
        litert_torch.convert(ManyInOut(), tuple(torch.zeros(1, 3) for _ in range(12))).export(paths["many"])
        nhwc = litert_torch.to_channel_last_io(cnn, args=[0])
        litert_torch.convert(nhwc, (torch.zeros(1, 8, 8, 3),)).export(paths["nhwc"])
    return paths


@pytest.fixture(scope="module")
def cnn():
    return models.tiny_cnn()[0]


def _torch(net, *arrays):
    with torch.no_grad():
        return net(*(torch.from_numpy(a) for a in arrays)).numpy()


def test_fp32_matches_pytorch(tflite, cnn):
    runner = LiteRtRunner(tflite["cnn"])
    assert (runner.format, runner.input_names, runner.output_names) == ("tflite", ["args_0"], ["output_0"])
    for image in smooth_images(4, seed=2):
        (got,) = runner.run({"args_0": image[None]})
        assert got.dtype == np.float32
        assert np.abs(got - _torch(cnn, image[None])).max() < 1e-5


def test_batch_dim_is_resized(tflite, cnn):
    images = smooth_images(3, seed=4)
    (got,) = LiteRtRunner(tflite["cnn"]).run({"args_0": images})
    assert got.shape == (3, 5) and np.abs(got - _torch(cnn, images)).max() < 1e-5


def test_other_shape_changes_are_refused(tflite):
    with pytest.raises(InputError, match=r"'args_0' has shape \[1, 3, 9, 8\]"):
        LiteRtRunner(tflite["cnn"]).run({"args_0": np.zeros((1, 3, 9, 8), np.float32)})


def test_int8_quantizes_inputs_and_dequantizes_outputs(tflite, cnn):
    runner = LiteRtRunner(tflite["int8"], input_names=["x"])
    io = runner.io_quantization()
    assert io["inputs"]["x"]["dtype"] == "int8" and io["inputs"]["x"]["scale"] > 0
    assert io["outputs"]["output_0"]["dtype"] == "int8" and io["outputs"]["output_0"]["scale"] > 0
    assert io["inputs"]["x"]["shape"] == [1, 3, 8, 8]
    for image in smooth_images(8, seed=2):
        (got,) = runner.run({"x": image[None]})
        assert got.dtype == np.float32
        assert cosine(got, _torch(cnn, image[None])) > 0.99


def test_io_quantization_of_a_float_model_has_no_scales(tflite):
    assert LiteRtRunner(tflite["cnn"]).io_quantization() == {
        "inputs": {"args_0": {"dtype": "float32", "shape": [1, 3, 8, 8]}},
        "outputs": {"output_0": {"dtype": "float32", "shape": [1, 5]}}}


def test_inputs_map_by_position(tflite):
    net, _ = models.two_inputs()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 1, 6)).astype(np.float32)
    runner = LiteRtRunner(tflite["two"], input_names=["a", "b"])
    assert runner.input_names == ["a", "b"]
    (got,) = runner.run({"a": a, "b": b})
    assert np.abs(got - _torch(net, a, b)).max() < 1e-6
    assert np.abs(got - _torch(net, b, a)).max() > 0.1  # the inputs really are not interchangeable
    with pytest.raises(KeyError, match=r"missing inputs \['b'\]"):
        runner.run({"a": a})
    with pytest.raises(InputError, match="2 inputs"):
        LiteRtRunner(tflite["two"], input_names=["a"])


def test_positions_past_ten_keep_their_order(tflite):
    names = [f"x{i}" for i in range(12)]
    runner = LiteRtRunner(tflite["many"], input_names=names)
    assert runner.output_names == [f"output_{i}" for i in range(12)]
    feeds = {name: np.full((1, 3), i, np.float32) for i, name in enumerate(names)}
    for i, got in enumerate(runner.run(feeds)):
        np.testing.assert_array_equal(got, np.full((1, 3), i * (i + 1), np.float32))


def test_channels_last_inputs_take_nchw_feeds(tflite, cnn):
    runner = LiteRtRunner(tflite["nhwc"], channels_last_inputs=True)
    assert runner.io_quantization()["inputs"]["args_0"]["shape"] == [1, 8, 8, 3]
    for image in smooth_images(3, seed=5):
        (got,) = runner.run({"args_0": image[None]})
        assert np.abs(got - _torch(cnn, image[None])).max() < 1e-5


def test_benchmark_reports_sane_stats(tflite):
    stats = LiteRtRunner(tflite["int8"], threads=2).benchmark(
        {"args_0": smooth_images(1, seed=6)}, warmup=3, runs=25)
    assert stats.runs >= 25 and stats.warmup == 3 and stats.threads == 2
    assert 0 < stats.min_ms <= stats.p50_ms <= stats.max_ms and stats.peak_rss_mb > 0


@pytest.mark.parametrize("content", [b"", b"not a model" * 20, b"\x18\x00\x00\x00TFL3", "truncated"])
def test_invalid_files_raise_input_error(tflite, tmp_path, content):
    if content == "truncated":
        data = tflite["cnn"].read_bytes()
        content = data[: len(data) // 2]
    path = tmp_path / "broken.tflite"
    path.write_bytes(content)
    with pytest.raises(InputError, match="broken.tflite") as caught:
        LiteRtRunner(path)
    assert "\n" not in str(caught.value)


def test_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="absent.tflite does not exist"):
        LiteRtRunner(tmp_path / "absent.tflite")


def test_open_runner_picks_litert(tflite):
    runner = open_runner(tflite["cnn"], threads=2, input_names=["x"])
    assert isinstance(runner, LiteRtRunner) and runner.threads == 2 and runner.input_names == ["x"]


def test_runs_without_torch(tflite):
    script = textwrap.dedent("""
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")

        sys.meta_path.insert(0, BlockTorch())
        import numpy as np
        from edgekit.runtime.litert import LiteRtRunner

        (out,) = LiteRtRunner(sys.argv[1]).run({"args_0": np.zeros((1, 3, 8, 8), np.float32)})
        assert "torch" not in sys.modules
        print(out.shape)
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tflite["cnn"])], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 5)"
