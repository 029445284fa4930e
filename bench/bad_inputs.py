"""A hundred-odd bad inputs, each run as a new user would: the real `edgekit` command in a fresh folder.

For every case it checks, and counts what failed:
- the exit code is the one the README's table gives for that mistake (never 0, never a crash);
- no Python traceback reaches the user, and the error says what is wrong (a line starting with "error:" or
  Typer's own usage error for a malformed option);
- no user file is touched: every file in the working folder keeps its bytes, every folder and link stays;
- nothing is left behind: the working folder holds exactly what it held before (plus, where the README says a
  failed run still writes its figures — an export whose models break the gate, validate's validation.json —
  exactly that), no hidden staging folder (``.NAME.tmp-…``) remains, and nothing is written into $HOME (except
  ONNX Runtime's own device-id file under ~/.cache/Microsoft, which its native library writes on first use);
- a gate never passes NaN: cases whose model or data hold NaN/inf must not exit 0.

    .venv/bin/python bench/bad_inputs.py [--only SUBSTRING] [--json out.json]

Exit status 1 if any case fails one of the checks. Takes a few minutes (each case starts a new process).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "testkit" / "models.py"
CLI = [sys.executable, "-m", "edgekit.cli"]


@dataclass
class Case:
    name: str
    args: Callable[[Path], list]  # built in the case's fresh folder
    code: int
    nan: bool = False  # the model or data holds NaN/inf: exit 0 would be a NaN pass
    expect: str = ""  # a phrase the output must contain
    writes: str = ""  # a path (relative to the case's folder) the README says this failure still writes
    timeout: float = 300.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    case: Case
    code: int | None
    seconds: float
    problems: list[str] = field(default_factory=list)
    first_line: str = ""


# -- files the cases use ------------------------------------------------------------------------------------------

def tiny_onnx(path: Path, op: str = "Relu") -> Path:
    """A 1x4 -> 1x4 model: MatMul with fixed weights, then ``op`` (Sqrt makes NaN for negative inputs)."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node(op, ["h"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def text(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def profile(folder: Path, content: str) -> Path:
    return text(folder / "p.toml", content)


def good(folder: Path) -> Path:
    return tiny_onnx(folder / "good.onnx")


def x(count: int = 4, value: float | None = None, dtype=np.float32) -> np.ndarray:
    array = np.random.default_rng(1).standard_normal((count, 4)).astype(dtype)
    if value is not None:
        array[0, 0] = value
    return array


def folder_with(folder: Path, manifest: str | None) -> Path:
    artifacts = folder / "art"
    artifacts.mkdir()
    if manifest is not None:
        text(artifacts / "manifest.json", manifest)
    return artifacts


def token(folder: Path, mode: int = 0o600, value: str = "t" * 43) -> Path:
    path = text(folder / "token", value)
    path.chmod(mode)
    return path


def busy_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    busy_port.sockets.append(sock)  # kept open for the rest of the run
    return sock.getsockname()[1]


busy_port.sockets = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exported(folder: Path) -> Path:
    """A real artifact folder (copied from the one made at start-up) for validate/compare cases."""
    return Path(shutil.copytree(exported.source, folder / "art"))


def edited(folder: Path, change: Callable[[dict], None]) -> Path:
    artifacts = exported(folder)
    manifest = json.loads((artifacts / "manifest.json").read_text())
    change(manifest)
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    return artifacts


def report_file(folder: Path, content: str) -> Path:
    return text(folder / "report.json", content)


# -- the cases ----------------------------------------------------------------------------------------------------

def export_cases() -> list[Case]:
    e = lambda *rest: ["export", *rest, "--no-benchmark"]  # noqa: E731
    m = f"{MODELS}"
    return [
        # the model argument
        Case("model: missing .py", lambda f: e(f / "nope.py:build"), 2, expect="model file not found"),
        Case("model: missing .onnx", lambda f: e(f / "nope.onnx"), 2, expect="model file not found"),
        Case("model: missing .tflite", lambda f: e(f / "nope.tflite"), 2),
        Case("model: folder named .onnx", lambda f: e((f / "d.onnx").mkdir() or f / "d.onnx"), 2),
        Case("model: empty .onnx", lambda f: e(text(f / "e.onnx", b"")), 2),
        Case("model: random bytes .onnx", lambda f: e(text(f / "r.onnx", os.urandom(300))), 2),
        Case("model: text as .onnx", lambda f: e(text(f / "t.onnx", "hello world\n")), 2),
        Case("model: truncated .onnx", lambda f: e(text(f / "tr.onnx", good(f).read_bytes()[:60])), 2),
        Case("model: random bytes .tflite", lambda f: e(text(f / "r.tflite", os.urandom(300))), 2),
        Case("model: empty .tflite", lambda f: e(text(f / "e.tflite", b"")), 2),
        Case("model: pickle .pt", lambda f: e(text(f / "m.pt", b"\x80\x04")), 2, expect="never loaded"),
        Case("model: .pth", lambda f: e(f / "m.pth"), 2),
        Case("model: .pkl", lambda f: e(f / "m.pkl"), 2),
        Case("model: .bin", lambda f: e(f / "m.bin"), 2),
        Case("model: no colon", lambda f: e("resnet50"), 2, expect="cannot tell what model"),
        Case("model: unknown module", lambda f: e("no_such_pkg.models:build"), 2, expect="cannot import module"),
        Case("model: factory missing", lambda f: e(f"{m}:no_such"), 2, expect="not found in"),
        Case("model: factory raises", lambda f: e(f"{m}:raises"), 2, expect="weights file is corrupt"),
        Case("model: factory returns a dict", lambda f: e(f"{m}:not_a_module"), 2),
        Case("model: no input shapes", lambda f: e(f"{m}:tiny_cnn_no_examples"), 2, expect="no input shapes"),
        Case("model: syntax error", lambda f: e(f"{text(f / 'b.py', 'def build(:')}:build"), 2),
        Case("model: import error", lambda f: e(f"{text(f / 'i.py', 'import no_such_module_x')}:build"), 2),
        Case("model: factory not callable", lambda f: e(f"{text(f / 'n.py', 'build = 3')}:build"), 2),
        Case("model: unsupported op", lambda f: e(f"{m}:unsupported_op"), 4, expect="mystery"),
        Case("model: none and no edgekit.toml", lambda f: ["export", "--no-benchmark"], 2, expect="no MODEL"),
        # --input
        *[Case(f"input: {spec!r}", lambda f, s=spec: e(good(f), "--input", s), 2) for spec in
          ("x", "x:", ":1x4", "x:1x-4", "x:0x4", "x:1x4:float99", "x=1,4", "x:1x5", "y:1x4", "x:1x4x1",
           "x:1x4:float32:extra", "x:1xbat ch", "x:1x4.5")],
        # data
        Case("calib: missing file", lambda f: e(good(f), "--calib", f / "no.npz"), 2, expect="data file not found"),
        Case("calib: empty folder", lambda f: e(good(f), "--calib", (f / "c").mkdir() or f / "c"), 2),
        Case("calib: folder without npz", lambda f: e(good(f), "--calib", text((f / "c").mkdir() or f / "c" / "a.txt",
                                                                                "x").parent), 2),
        Case("calib: wrong key", lambda f: e(good(f), "--calib", npz(f / "c.npz", image=x())), 2),
        Case("calib: extra key", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=x(), y=x())), 2),
        Case("calib: wrong shape", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=np.zeros((4, 5), np.float32))),
             2),
        Case("calib: wrong rank", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=np.zeros((4,), np.float32))), 2),
        Case("calib: strings", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=np.array([["a"] * 4] * 2))), 2,
             expect="not numbers"),
        Case("calib: object array (pickle)", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=np.array(
            [{"a": 1}], dtype=object))), 2),
        Case("calib: complex", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=x().astype(np.complex64))), 2),
        Case("calib: NaN", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=x(value=np.nan))), 2, nan=True,
             expect="NaN or inf"),
        Case("calib: inf", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=x(value=np.inf))), 2, nan=True),
        Case("val: NaN", lambda f: e(good(f), "--val", npz(f / "v.npz", x=x(value=np.nan))), 2, nan=True),
        Case("val: -inf", lambda f: e(good(f), "--val", npz(f / "v.npz", x=x(value=-np.inf))), 2, nan=True),
        Case("val: float labels", lambda f: e(good(f), "--val", npz(f / "v.npz", x=x(), labels=np.ones(4))), 2),
        Case("val: 2-D labels", lambda f: e(good(f), "--val", npz(f / "v.npz", x=x(), labels=np.ones((4, 1), int))),
             2),
        Case("val: label count", lambda f: e(good(f), "--val", npz(f / "v.npz", x=x(), labels=np.ones(3, int))), 2),
        Case("calib: zero samples", lambda f: e(good(f), "--calib", npz(f / "c.npz", x=np.zeros((0, 4), np.float32))),
             2),
        Case("calib: random bytes .npz", lambda f: e(good(f), "--calib", text(f / "c.npz", os.urandom(200))), 2),
        Case("calib: empty .npz", lambda f: e(good(f), "--calib", npz(f / "c.npz")), 2),
        Case("calib: .npy with wrong shape", lambda f: e(good(f), "--calib", _npy(f / "c.npy", np.zeros((2, 7))),), 2),
        # target profiles
        Case("target: unknown", lambda f: e(good(f), "--target", "pi5"), 3, expect="valid targets"),
        Case("target: missing .toml", lambda f: e(good(f), "--target", f / "no.toml"), 3),
        Case("target: invalid TOML", lambda f: e(good(f), "--target", profile(f, "precisions = [")), 3),
        Case("target: threads a string", lambda f: e(good(f), "--target", profile(
            f, 'precisions = ["fp32"]\nthreads = "many"\n')), 3),
        Case("target: threads 0", lambda f: e(good(f), "--target", profile(f, 'precisions = ["fp32"]\nthreads = 0\n')),
             3),
        Case("target: unknown field", lambda f: e(good(f), "--target", profile(f, 'precisions = ["fp32"]\nspeed = 1\n')),
             3),
        Case("target: unknown precision", lambda f: e(good(f), "--target", profile(f, 'precisions = ["int4"]\n')), 3),
        Case("target: precision twice", lambda f: e(good(f), "--target", profile(f, 'precisions = ["fp32", "fp32"]\n')),
             3, expect="more than once"),
        Case("target: format twice", lambda f: e(good(f), "--target", profile(
            f, 'precisions = ["fp32"]\nformats = ["onnx", "onnx"]\n')), 3),
        Case("target: no precisions", lambda f: e(good(f), "--target", profile(f, "precisions = []\n")), 3),
        Case("target: opset 7", lambda f: e(good(f), "--target", profile(f, 'precisions = ["fp32"]\nopset = 7\n')), 3),
        Case("target: cosine 2", lambda f: e(good(f), "--target", profile(
            f, 'precisions = ["fp32"]\n[accuracy]\ncosine_min = 2.0\n')), 3),
        Case("target: cosine nan", lambda f: e(good(f), "--target", profile(
            f, 'precisions = ["fp32"]\n[accuracy]\ncosine_min = nan\n')), 3),
        Case("target: bad arch", lambda f: e(good(f), "--target", profile(f, 'precisions = ["fp32"]\narch = "z80"\n')),
             3),
        Case("target: a folder", lambda f: e(good(f), "--target", (f / "t.toml").mkdir() or f / "t.toml"), 3),
        # output folder and format
        Case("out: is a file", lambda f: e(good(f), "--out", text(f / "o", "x")), 2),
        Case("out: under a file", lambda f: e(good(f), "--out", text(f / "o", "x") / "sub"), 2),
        Case("out: in /proc", lambda f: e(good(f), "--out", "/proc/edgekit-out"), 2),
        Case("out: exists, not empty", lambda f: e(good(f), "--out", text((f / "o").mkdir() or f / "o" / "k", "x")
                                                   .parent), 2, expect="--overwrite"),
        Case("out: unknown placeholder", lambda f: e(good(f), "--out", "o/{modle}"), 2, expect="placeholder"),
        Case("out: positional placeholder", lambda f: e(good(f), "--out", "o/{0}"), 2),
        Case("format: executorch from .onnx", lambda f: e(good(f), "--format", "executorch"), 2,
             expect="cannot be converted to ExecuTorch"),
        Case("format: unknown", lambda f: e(good(f), "--format", "coreml"), 2),
        Case("format: onnx from .tflite", lambda f: e(text(f / "r.tflite", os.urandom(10)), "--format", "onnx"), 2),
        # budgets on the command line
        Case("budget: cosine 2", lambda f: e(good(f), "--cosine-min", "2"), 2, expect="'cosine_min' = 2.0"),
        Case("budget: cosine nan", lambda f: e(good(f), "--cosine-min", "nan"), 2),
        Case("budget: top-1 -1", lambda f: e(good(f), "--top1-min", "-1"), 2),
        Case("budget: abs error -1", lambda f: e(good(f), "--max-abs-error", "-1"), 2),
        Case("budget: cosine text", lambda f: e(good(f), "--cosine-min", "high"), 2),
        # models that compute NaN: the gate must fail closed
        Case("NaN: sqrt of negatives (ONNX)", lambda f: e(tiny_onnx(f / "nan.onnx", "Sqrt"), "--format", "onnx"), 5,
             nan=True, expect="contain NaN", writes="edgekit-out/nan-x86"),
        Case("NaN: log of negatives (ONNX)", lambda f: e(tiny_onnx(f / "log.onnx", "Log"), "--format", "onnx"), 5,
             nan=True, writes="edgekit-out/log-x86"),
        Case("NaN: sqrt head (PyTorch)", lambda f: e(f"{m}:nan_output", "--format", "onnx"), 5, nan=True,
             writes="edgekit-out/models-x86"),
        # edgekit.toml
        Case("edgekit.toml: invalid TOML", lambda f: _project(f, "model = "), 2),
        Case("edgekit.toml: unknown field", lambda f: _project(f, 'modle = "m.onnx"\n'), 2),
        Case("edgekit.toml: wrong type", lambda f: _project(f, "model = 3\n"), 2),
        Case("edgekit.toml: model missing", lambda f: _project(f, 'model = "gone.onnx"\n'), 2),
        Case("edgekit.toml: bad out template", lambda f: _project(f, f'model = "{good(f)}"\nout = "o/{{x}}"\n'), 2),
        Case("edgekit.toml: a folder", lambda f: ((f / "edgekit.toml").mkdir() or []) + ["export", "--no-benchmark"],
             2),
    ]


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _project(folder: Path, content: str) -> list:
    text(folder / "edgekit.toml", content)
    return ["export", "--no-benchmark"]


def evaluate_cases() -> list[Case]:
    def v(artifacts, *rest, agent: str | None = None, with_token: bool = True):
        def build(f: Path) -> list:
            url = agent or f"http://127.0.0.1:{free_port()}"
            args = ["validate", artifacts(f), "--agent", url, *rest]
            return args + (["--token-file", token(f)] if with_token else [])
        return build

    def c(artifacts, *rest):
        return lambda f: ["compare", artifacts(f), "--agent", f"http://127.0.0.1:{free_port()}", "--token-file",
                          token(f), *rest]

    return [
        Case("validate: missing folder", v(lambda f: f / "gone"), 2, expect="artifact folder not found"),
        Case("validate: a file", v(lambda f: text(f / "a", "x")), 2),
        Case("validate: no manifest", v(lambda f: folder_with(f, None)), 2, expect="no manifest.json"),
        Case("validate: manifest not JSON", v(lambda f: folder_with(f, "{")), 2),
        Case("validate: manifest a list", v(lambda f: folder_with(f, "[1]")), 2),
        Case("validate: manifest schema only", v(lambda f: folder_with(f, '{"schema": "edgekit.manifest/2"}')), 2),
        Case("validate: artifacts a string", v(lambda f: folder_with(
            f, '{"schema": "edgekit.manifest/2", "target": {}, "inputs": [], "artifacts": "oops"}')), 2),
        Case("validate: NaN in manifest", v(lambda f: folder_with(f, '{"schema": NaN}')), 2),
        Case("validate: another schema", v(lambda f: folder_with(
            f, '{"schema": "edgekit.report/1", "target": {}, "inputs": [], "artifacts": []}')), 2),
        Case("validate: model file changed", v(lambda f: _tamper(exported(f))), 2, expect="changed since the export"),
        Case("validate: nothing recommended", v(lambda f: edited(f, lambda m: m.update(recommended=None))), 2),
        Case("validate: target edited", v(lambda f: edited(f, lambda m: m["target"].update(threads="x"))), 2,
             expect="not an edgekit manifest"),
        Case("validate: no token", v(exported, with_token=False), 6, expect="token"),
        Case("validate: URL without scheme", v(exported, agent="pi.local:8765"), 2),
        Case("validate: URL ftp", v(exported, agent="ftp://pi.local"), 2),
        Case("validate: unreachable agent", v(exported), 6, expect="cannot connect", writes="art/validation.json"),
        Case("validate: --val strings", v(exported, "--val", None), 2),
        Case("validate: --val NaN", v(exported, "--val", None), 2, nan=True),
        Case("validate: --val wrong key", v(exported, "--val", None), 2),
        Case("validate: --threads 0", v(exported, "--threads", "0"), 2),
        Case("validate: --max-p50 -1", v(exported, "--max-p50", "-1"), 3),
        Case("compare: bad --fail-if", c(exported, "--fail-if", "p90_ms>>x"), 2),
        Case("compare: unknown metric", c(exported, "--fail-if", "speed>1"), 2),
        Case("compare: bad --rtt", c(exported, "--rtt", "wifi=fast"), 2),
        Case("compare: regression without baseline", c(exported, "--max-regression", "10%"), 2),
        Case("compare: baseline not JSON", c(exported, "--baseline", "BASELINE:{"), 2),
        Case("compare: baseline of another schema", c(exported, "--baseline", 'BASELINE:{"schema": "x"}'), 2),
        Case("compare: bad cloud URL", c(exported, "--cloud", "gpu-box"), 2),
        Case("report show: missing", lambda f: ["report", "show", f / "gone.json"], 2),
        Case("report show: not JSON", lambda f: ["report", "show", report_file(f, "{")], 2),
        Case("report show: NaN", lambda f: ["report", "show", report_file(f, '{"schema": NaN}')], 2),
        Case("report show: a manifest", lambda f: ["report", "show", report_file(
            f, '{"schema": "edgekit.manifest/2"}')], 2),
        Case("report show: folder without report", lambda f: ["report", "show", (f / "d").mkdir() or f / "d"], 2),
        Case("targets show: unknown", lambda f: ["targets", "show", "pi5"], 3),
        Case("targets show: invalid", lambda f: ["targets", "show", profile(f, "threads = [")], 3),
    ]


def _tamper(artifacts: Path) -> Path:
    with open(next(artifacts.glob("*.onnx")), "ab") as fh:
        fh.write(b"\0")
    return artifacts


def _fill_val(case: Case, folder: Path, args: list) -> list:
    """The --val placeholders of the validate cases, by case name."""
    if "--val" in args and args[args.index("--val") + 1] is None:
        data = {"strings": {"x": np.array([["a"] * 4] * 2)}, "NaN": {"x": x(value=np.nan)},
                "wrong key": {"y": x()}}[case.name.split("--val ")[1]]
        args[args.index("--val") + 1] = npz(folder / "val.npz", **data)
    if "--baseline" in args:
        index = args.index("--baseline") + 1
        args[index] = report_file(folder, str(args[index]).split("BASELINE:", 1)[1])
    return args


def user_file_cases() -> list[Case]:
    """Issue 19's defects: the user's folders as output, special files as input, and the tracebacks it found."""
    e = lambda *rest: ["export", *rest, "--no-benchmark", "--format", "onnx"]  # noqa: E731

    def user_folder(folder: Path) -> Path:
        for name in (".data.old-2023-12", ".photos.old-2019-03", "photos"):
            text((folder / name).mkdir() or folder / name / "keep.txt", name)
        return good(folder)

    def fifo(path: Path) -> Path:
        os.mkfifo(path)
        return path

    def loop(path: Path) -> Path:
        path.symlink_to(path.name)
        return path

    def bomb(folder: Path) -> Path:
        from PIL import Image

        (folder / "photos").mkdir()
        Image.new("L", (9000, 9000)).save(folder / "photos" / "huge.png")
        return folder / "photos"

    tiny_cnn = f"{MODELS}:tiny_cnn"
    return [
        Case("out: . with --overwrite", lambda f: e(user_folder(f), "--out", ".", "--overwrite"), 2,
             expect="cannot be replaced: it is the current folder"),
        Case("out: '' with --overwrite", lambda f: e(user_folder(f), "--out", "", "--overwrite"), 2,
             expect="cannot be replaced"),
        Case("out: the parent folder", lambda f: e(user_folder(f), "--out", "..", "--overwrite"), 2,
             expect="cannot be replaced: it holds"),
        Case("out: the model's folder", lambda f: e(tiny_onnx((f / "m").mkdir() or f / "m" / "m.onnx"), "--out",
                                                    f / "m", "--overwrite"), 2, expect="holds this run's input"),
        Case("out: a user folder with --overwrite", lambda f: e(user_folder(f), "--out", "photos", "--overwrite"), 2,
             expect="was not written by edgekit"),
        Case("out: a name too long", lambda f: e(good(f), "--out", "x" * 300), 2, expect="too long for the file"),
        Case("out: written by another run", lambda f: e(good(f), "--out", locked(f / "busy")), 8,
             expect="being written by another edgekit run"),
        Case("model: a FIFO", lambda f: e(fifo(f / "m.onnx")), 2, expect="named pipe (FIFO)", timeout=60),
        Case("model: /dev/zero", lambda f: e("/dev/zero"), 2, expect="character device"),
        Case("model: a link loop", lambda f: e(loop(f / "l.onnx")), 2, expect="loops"),
        Case("model: factory calls sys.exit(0)", lambda f: e(f"{text(f / 'x.py', 'import sys; sys.exit(0)')}:build"),
             2, expect="sys.exit(0)"),
        Case("calib: a FIFO", lambda f: e(good(f), "--calib", fifo(f / "c.npz")), 2, expect="named pipe (FIFO)",
             timeout=60),
        Case("calib: a decompression bomb", lambda f: e(tiny_cnn, "--calib", bomb(f), "--preprocess", "resize=8"), 2,
             expect="9000x9000 pixels"),
        Case("val: negative labels", lambda f: e(good(f), "--val", npz(f / "v.npz", x=x(), labels=np.array(
            [0, 1, -1, 2]))), 2, expect="negative values"),
        Case("edgekit.toml: UTF-16", lambda f: (text(f / "edgekit.toml", 'model = "good.onnx"\n'.encode("utf-16")),
                                                good(f), ["export", "--no-benchmark"])[-1], 2, expect="not UTF-8"),
        Case("edgekit.toml: dynamic_batch = \"yes\"", lambda f: (text(f / "edgekit.toml", 'model = "good.onnx"\n'
                                                                   'dynamic_batch = "yes"\n'), good(f),
                                                              ["export", "--no-benchmark"])[-1], 2,
             expect="dynamic_batch"),
        Case("report show: nested 100,000 deep", lambda f: ["report", "show", report_file(
            f, "[" * 100_000 + "]" * 100_000)], 2, expect="nested too deeply"),
        Case("token: non-ASCII $EDGEKIT_AGENT_TOKEN", lambda f: ["validate", exported(f), "--agent",
                                                                f"http://127.0.0.1:{free_port()}"], 2,
             expect="characters a token cannot have", env={"EDGEKIT_AGENT_TOKEN": "jeton-é"}),
    ]


def locked(dest: Path) -> Path:
    """``dest``, with an edgekit output lock held on it by this process for the rest of the run."""
    from edgekit.exporter.ownership import OutputLock

    locked.held.append(OutputLock(dest.absolute()))
    return dest


locked.held = []


def agent_cases() -> list[Case]:
    s = lambda *rest: ["agent", "serve", *rest]  # noqa: E731
    return [
        Case("agent: --port -5", lambda f: s("--port", "-5", "--store", f / "s", "--token-file", f / "t"), 2),
        Case("agent: --port 70000", lambda f: s("--port", "70000", "--store", f / "s", "--token-file", f / "t"), 2),
        Case("agent: --port text", lambda f: s("--port", "http", "--store", f / "s", "--token-file", f / "t"), 2),
        Case("agent: port in use", lambda f: s("--port", str(busy_port()), "--store", f / "s", "--token-file",
                                               f / "new" / "t"), 7, expect="already in use"),
        Case("agent: host unresolvable", lambda f: s("--host", "no-such-host.invalid", "--port", str(free_port()),
                                                     "--store", f / "s", "--token-file", f / "t"), 7),
        Case("agent: host not ours", lambda f: s("--host", "192.0.2.1", "--port", str(free_port()), "--store",
                                                 f / "s", "--token-file", f / "t"), 7),
        Case("agent: public bind, no token", lambda f: s("--host", "0.0.0.0", "--no-token", "--store", f / "s"), 2),
        Case("agent: store is a file", lambda f: s("--port", str(free_port()), "--store", text(f / "s", "x"),
                                                   "--token-file", f / "t"), 2),
        Case("agent: store under a file", lambda f: s("--port", str(free_port()), "--store", text(f / "s", "x") / "d",
                                                      "--token-file", f / "t"), 2),
        Case("agent: token file is a folder", lambda f: s("--port", str(free_port()), "--store", f / "s",
                                                          "--token-file", f), 2),
        Case("agent: token readable by others", lambda f: s("--port", str(free_port()), "--store", f / "s",
                                                            "--token-file", token(f, 0o644)), 7),
        Case("agent: token too short", lambda f: s("--port", str(free_port()), "--store", f / "s", "--token-file",
                                                   token(f, value="abc")), 7),
        Case("agent token: a folder", lambda f: ["agent", "token", "--token-file", f], 2),
        Case("agent: --max-upload-mb 0", lambda f: s("--max-upload-mb", "0", "--store", f / "s"), 2),
    ]


# -- running them -------------------------------------------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (links not followed): a file's sha256, a link's target, or its kind."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "folder" if path.is_dir() else "special"
    return found


def run_case(case: Case, root: Path) -> Outcome:
    folder = root / "cwd"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    args = _fill_val(case, folder, [str(a) if isinstance(a, Path) else a for a in case.args(folder)])
    args = [str(a) for a in args]
    before = snapshot(folder)
    env = {**os.environ, "HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "home" / ".config"),
           "EDGEKIT_AGENT_TOKEN": "", **case.env}
    start = time.perf_counter()
    try:
        done = subprocess.run([*CLI, *args], cwd=folder, capture_output=True, text=True, timeout=case.timeout, env=env)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code, output = None, f"timed out: {exc}"
    outcome = Outcome(case, code, time.perf_counter() - start)
    lines = [line for line in output.splitlines() if line.strip()]
    outcome.first_line = next((line for line in lines if line.startswith(("error:", "Error", "│", "interrupted"))),
                              lines[-1] if lines else "")
    if code != case.code:
        outcome.problems.append(f"exit {code}, expected {case.code}")
    if "Traceback (most recent call last)" in output:
        outcome.problems.append("traceback")
    if case.nan and code == 0:
        outcome.problems.append("NaN passed")
    if case.expect and case.expect not in output:
        outcome.problems.append(f"no {case.expect!r} in the output")
    if not any(line.startswith(("error:", "Usage:")) or "Invalid value" in line or "Error" in line for line in lines):
        outcome.problems.append("no error line")
    after = snapshot(folder)
    touched = sorted(p for p, digest in before.items()  # edgekit's own marker may list what it adds
                     if after.get(p) != digest and not p.endswith(".edgekit-owned.json"))
    if touched:
        outcome.problems.append(f"user files touched: {', '.join(touched[:3])}")
    expected = case.writes.split("/") if case.writes else []
    allowed = {"/".join(expected[:i]) for i in range(1, len(expected) + 1)}
    left = sorted(p for p in after.keys() - before.keys()
                  if not (case.writes and (p in allowed or p.startswith(case.writes + "/"))) or ".tmp-" in p)
    if left:
        outcome.problems.append(f"left behind: {', '.join(left[:3])}")
    if case.writes and not (folder / case.writes).exists():
        outcome.problems.append(f"{case.writes} was not written")
    home = [p for p in (root / "home").rglob("*") if p.is_file() and ".cache/Microsoft/DeveloperTools" not in str(p)]
    if home:
        outcome.problems.append("wrote into $HOME: " + ", ".join(str(p) for p in home))
    shutil.rmtree(root / "home", ignore_errors=True)
    return outcome


def prepare(root: Path) -> None:
    """One real artifact folder for the validate and compare cases."""
    source = root / "source"
    source.mkdir()
    model = tiny_onnx(source / "good.onnx")
    npz(source / "val.npz", x=x(16))
    fp32 = text(source / "fp32.toml", 'precisions = ["fp32"]\n')
    subprocess.run([*CLI, "export", str(model), "--target", str(fp32), "--no-benchmark", "--val",
                    str(source / "val.npz"), "--out", str(source / "art")], check=True, capture_output=True, cwd=source)
    exported.source = source / "art"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    args = parser.parse_args()
    cases = export_cases() + user_file_cases() + evaluate_cases() + agent_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be distinct"
    if args.only:
        cases = [c for c in cases if args.only in c.name]
    console = Console(width=160)
    with tempfile.TemporaryDirectory(prefix="edgekit-bad-inputs-") as scratch:
        root = Path(scratch)
        prepare(root)
        outcomes = []
        with console.status("") as status:
            for index, case in enumerate(cases, 1):
                status.update(f"[{index}/{len(cases)}] {case.name}")
                outcomes.append(run_case(case, root))
    table = Table(title=f"edgekit: {len(outcomes)} bad inputs")
    for column in ("case", "exit", "s", "first error line", "problems"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        table.add_row(outcome.case.name, str(outcome.code), f"{outcome.seconds:.1f}", outcome.first_line[:90],
                      "[red]" + "; ".join(outcome.problems) + "[/]" if outcome.problems else "[green]ok[/]")
    console.print(table)
    count = lambda word: sum(any(word in p for p in o.problems) for o in outcomes)  # noqa: E731
    failed = [o for o in outcomes if o.problems]
    console.print(f"cases {len(outcomes)} · tracebacks {count('traceback')} · leftovers {count('left behind')} · "
                  f"NaN passes {count('NaN passed')} · unexpected exit codes {count('expected')} · "
                  f"failed checks {len(failed)}")
    if args.json:
        args.json.write_text(json.dumps([{"case": o.case.name, "exit": o.code, "expected": o.case.code,
                                          "problems": o.problems, "first_line": o.first_line} for o in outcomes],
                                        indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
