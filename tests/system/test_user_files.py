"""Nothing of the user's is ever lost: a tree of user files around and inside the working folder is byte for byte
the same after every command, whatever it did (succeeded, refused, failed, was interrupted); bad inputs are one
clear line with an exit code, never a traceback or a hang."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import InputError, WriteError
from edgekit.exporter.artifact_dir import StagedFolder
from edgekit.exporter.ownership import OWNED_MARKER, STAGING_MARKER, OutputLock
from testkit import model_ref

CLI = [sys.executable, "-m", "edgekit.cli"]
FAST = ["--format", "onnx", "--no-benchmark"]


def tiny_onnx(path: Path) -> Path:
    """y = x @ W + b: an ONNX model that exports in a second or two."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def user_tree(root: Path) -> Path:
    """The kind of folder a user runs edgekit in: their model, data, notes, and folders whose names look like
    edgekit's leftovers."""
    root.mkdir(parents=True, exist_ok=True)
    tiny_onnx(root / "model.onnx")
    np.savez(root / "calib.npz", x=np.random.default_rng(1).standard_normal((8, 1, 8)).astype(np.float32))
    (root / "notes.md").write_text("my notes\n")
    for name in (".data.old-2023-12", ".photos.old-2019-03", ".model.tmp-1-abc", ".out.old-1-xyz"):
        (root / name).mkdir()
        (root / name / "keep.bin").write_bytes(os.urandom(64))
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "keep.bin").write_bytes(os.urandom(128))
    (root / "link-to-notes").symlink_to("notes.md")
    return root


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every entry under ``root`` (links not followed) with its content digest, link target or kind."""
    found = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if (rel_folder / d).as_posix() not in skip]
        for name in dirs + files:
            path = Path(folder) / name
            rel = (rel_folder / name).as_posix()
            if rel in skip:
                continue
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                found[rel] = "link:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[rel] = "dir" if stat.S_ISDIR(mode) else f"mode {stat.S_IFMT(mode):o}"
    return found


def edgekit(*args, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr + result.stdout
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def work(tmp_path) -> Path:
    return user_tree(tmp_path / "work")


# -- export: where the output goes -----------------------------------------------------------------------------

def test_an_export_beside_the_users_files_touches_none_of_them(work):
    before = snapshot(work)
    result = edgekit("export", "model.onnx", "--calib", "calib.npz", "--out", "out", *FAST, cwd=work)
    assert result.returncode == 0, result.stderr
    assert snapshot(work, skip=("out",)) == before, "sibling folders such as .data.old-2023-12/ stay as they were"
    assert (work / "out" / OWNED_MARKER).is_file()
    again = edgekit("export", "model.onnx", "--calib", "calib.npz", "--out", "out", "--overwrite", *FAST, cwd=work)
    assert again.returncode == 0, again.stderr
    assert snapshot(work, skip=("out",)) == before


@pytest.mark.parametrize("out", [".", "", "..", "sub/.."])
def test_overwrite_never_replaces_the_current_folder_or_an_ancestor(work, out):
    before = snapshot(work.parent)
    result = edgekit("export", "model.onnx", "--out", out, "--overwrite", *FAST, cwd=work)
    one_line_error(result, 2, "cannot be replaced")
    assert "current folder" in result.stderr
    assert snapshot(work.parent) == before


def test_overwrite_never_replaces_the_folder_of_the_input_model_or_data(work, tmp_path):
    before = snapshot(tmp_path)
    result = edgekit("export", work / "model.onnx", "--out", work, "--overwrite", *FAST, cwd=tmp_path)
    one_line_error(result, 2, "cannot be replaced: it holds this run's input")
    data_only = edgekit("export", tiny_onnx(tmp_path / "other.onnx"), "--calib", work / "calib.npz", "--out", work,
                        "--overwrite", *FAST, cwd=tmp_path)
    one_line_error(data_only, 2, "holds this run's input")
    assert snapshot(tmp_path, skip=("other.onnx",)) == before


def test_overwrite_never_replaces_home(work, tmp_path):
    home = tmp_path / "home"
    (home / "documents").mkdir(parents=True)
    (home / "documents" / "thesis.txt").write_text("years of work")
    before = snapshot(home)
    result = edgekit("export", work / "model.onnx", "--out", home, "--overwrite", *FAST, cwd=work,
                     env={"HOME": str(home)})
    one_line_error(result, 2, "it is your home folder")
    after = snapshot(home)  # ONNX Runtime may add its own cache under $HOME/.cache; nothing of the user's changes
    assert {k: after.get(k) for k in before} == before


def test_overwrite_replaces_an_edgekit_folder_and_nothing_else(work):
    user = work / "results"
    user.mkdir()
    (user / "table.csv").write_text("a,b\n")
    refused = edgekit("export", "model.onnx", "--out", "results", "--overwrite", *FAST, cwd=work)
    one_line_error(refused, 2, "was not written by edgekit")
    assert (user / "table.csv").read_text() == "a,b\n"
    assert edgekit("export", "model.onnx", "--out", "out", *FAST, cwd=work).returncode == 0
    (work / "out" / "my-plot.png").write_bytes(b"\x89PNG user")  # the user put a file into the artifact folder
    added = edgekit("export", "model.onnx", "--out", "out", "--overwrite", *FAST, cwd=work)
    one_line_error(added, 2, "holds files edgekit did not write (my-plot.png)")
    assert (work / "out" / "my-plot.png").read_bytes() == b"\x89PNG user"
    (work / "out" / "my-plot.png").unlink()
    assert edgekit("export", "model.onnx", "--out", "out", "--overwrite", *FAST, cwd=work).returncode == 0


def test_a_second_writer_of_the_same_output_fails_at_once_and_a_dead_ones_lock_is_taken_over(work):
    lock = OutputLock((work / "out").absolute())  # another edgekit run writing `out` right now
    try:
        busy = edgekit("export", "model.onnx", "--out", "out", *FAST, cwd=work)
    finally:
        lock.release()
    one_line_error(busy, 8, f"is being written by another edgekit run (pid {os.getpid()})")
    assert not (work / "out").exists()
    (work / ".out.edgekit-lock").write_text("999999\n")  # a dead run's lock file: no flock held on it
    result = edgekit("export", "model.onnx", "--out", "out", *FAST, cwd=work)
    assert result.returncode == 0, result.stderr
    assert not (work / ".out.edgekit-lock").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_overwrite_keeps_the_old_folder_and_every_user_file(work, sig, code):
    assert edgekit("export", "model.onnx", "--out", "out", *FAST, cwd=work).returncode == 0
    before = snapshot(work)
    process = subprocess.Popen([*CLI, "export", model_ref("slow_cnn"), "--out", "out", "--overwrite", *FAST],
                               cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(work.glob(".out.tmp-*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert snapshot(work) == before


# -- export: inputs that are not what they seem ----------------------------------------------------------------

def test_special_files_are_named_for_what_they_are_and_never_read(work):
    os.mkfifo(work / "calib-fifo.npz")
    (work / "loop.onnx").symlink_to("loop.onnx")
    (work / "folder.onnx").mkdir()
    before = snapshot(work)
    cases = [
        (["--calib", "calib-fifo.npz"], "model.onnx", "is a named pipe (FIFO), not a file"),
        ([], "folder.onnx", "is a folder, not a file"),
        ([], "loop.onnx", "is a symbolic link that loops"),
        ([], "/dev/zero", "is a character device, not a file"),
        ([], "sub/deep/keep.bin/x.onnx", "model file not found"),
    ]
    for extra, model, words in cases:
        result = edgekit("export", model, *extra, "--out", "out", *FAST, cwd=work, timeout=120)
        one_line_error(result, 2, words)
    assert snapshot(work) == before and not (work / "out").exists()


def test_upper_case_suffixes_are_recognised(work):
    shutil.copy(work / "model.onnx", work / "MODEL.ONNX")
    with open(work / "CALIB.NPZ", "wb") as fh:  # np.savez would add ".npz" to the name
        np.savez(fh, x=np.zeros((4, 1, 8), np.float32))
    result = edgekit("export", "MODEL.ONNX", "--calib", "CALIB.NPZ", "--out", "out", *FAST, cwd=work)
    assert result.returncode == 0, result.stderr


def test_an_output_name_too_long_for_the_file_system_is_one_line(work):
    result = edgekit("export", "model.onnx", "--out", "x" * 300, *FAST, cwd=work)
    one_line_error(result, 2, "is too long for the file system")


def test_a_decompression_bomb_in_an_image_folder_is_refused(work, tmp_path):
    from PIL import Image

    photos = work / "photos"
    photos.mkdir()
    Image.new("L", (9000, 9000)).save(photos / "huge.png")  # 81 Mpixel, a few hundred KB on disk
    result = edgekit("export", model_ref("tiny_cnn"), "--calib", "photos", "--preprocess", "resize=8,channels=rgb",
                     "--out", "out", *FAST, cwd=work)
    one_line_error(result, 2, "huge.png is 9000x9000 pixels")


@pytest.mark.parametrize("text, encoding, words", [
    ('model = "model.onnx"\n', "utf-16", "is not UTF-8 text"),
    ('model = "model.onnx"\ndynamic_batch = "yes"\n', "utf-8", "'dynamic_batch' = 'yes'"),
])
def test_edgekit_toml_mistakes_are_one_line(work, text, encoding, words):
    (work / "edgekit.toml").write_bytes(text.encode(encoding))
    one_line_error(edgekit("export", *FAST, cwd=work), 2, words)


def test_a_factory_that_exits_is_an_error_not_a_success(work):
    (work / "exits.py").write_text("import sys\n\ndef build():\n    sys.exit(0)\n")
    one_line_error(edgekit("export", "exits.py:build", "--out", "out", *FAST, cwd=work), 2,
                   "called sys.exit(0)")
    assert not (work / "out").exists()


def test_negative_labels_are_refused(work):
    np.savez(work / "val.npz", x=np.zeros((4, 1, 8), np.float32), labels=np.array([0, 1, -1, 2]))
    one_line_error(edgekit("export", "model.onnx", "--val", "val.npz", "--out", "out", *FAST, cwd=work), 2,
                   "'labels' holds negative values")


def test_report_show_on_deeply_nested_json_is_one_line(work):
    (work / "report.json").write_text("[" * 100_000 + "]" * 100_000)
    one_line_error(edgekit("report", "show", "report.json", cwd=work), 2, "nested too deeply")


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare for a "
                    "small tmpfs")
@pytest.mark.parametrize("options, words", [("size=4k", "no space left on the device"),
                                            ("ro", "Read-only file system")])
def test_a_full_or_read_only_disk_is_exit_8_and_leaves_nothing(work, options, words):
    disk = work / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o {options} tmpfs {disk} && {sys.executable} -m edgekit.cli export model.onnx "
              f"--calib calib.npz --out {disk}/out {' '.join(FAST)}; code=$?; ls -A {disk}; exit $code")
    result = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=work, capture_output=True, text=True,
                            timeout=300)
    if "mount:" in result.stderr and result.returncode != 8:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    one_line_error(result, 8, words)
    assert result.stdout.strip() == "", "nothing half-written is left on that disk"


# -- compress, validate, select, agent: the same rules -----------------------------------------------------------

def test_compress_refuses_the_current_folder_before_any_training(work):
    np.savez(work / "train.npz", x=np.zeros((8, 3, 8, 8), np.float32), labels=np.zeros(8, np.int64))
    before = snapshot(work)
    result = edgekit("compress", "prune", model_ref("tiny_cnn"), "--train", "train.npz", "--out", ".",
                     "--overwrite", cwd=work)
    one_line_error(result, 2, "cannot be replaced: it is the current folder")
    assert snapshot(work) == before


def test_the_agent_refuses_a_store_it_did_not_make(work):
    before = snapshot(work)
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    result = edgekit("agent", "serve", "--store", ".", "--port", free, "--token-file", work.parent / "token",
                     cwd=work, timeout=60)
    one_line_error(result, 2, "edgekit did not create it")
    assert snapshot(work) == before


# -- the staging and overwrite rules, on generated trees ----------------------------------------------------------

names = st.sampled_from(["out", ".out.old-1-a", ".out.tmp-2-b", ".out.old-2023-12", ".x.tmp-1-c", "out.bak",
                         ".out.edgekit-lock-not", "data"])
dest_states = st.sampled_from(["absent", "empty", "user", "edgekit", "edgekit+user"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(siblings=st.lists(names, unique=True, max_size=5), marked=st.booleans(), dest=dest_states,
       overwrite=st.booleans())
def test_staging_and_overwrite_never_touch_what_edgekit_did_not_mark(tmp_path_factory, siblings, marked, dest,
                                                                     overwrite):
    parent = tmp_path_factory.mktemp("tree")
    for name in siblings:
        if name == "out":
            continue
        (parent / name).mkdir()
        (parent / name / "user.txt").write_text(name)
        if marked:  # a marker of a dead run on another host: still not this host's to remove
            (parent / name / STAGING_MARKER).write_text(json.dumps({"owner": "edgekit", "pid": 1, "host": "elsewhere"}))
    out = parent / "out"
    if dest != "absent":
        out.mkdir()
    if dest.startswith("edgekit"):
        (out / "manifest.json").write_text("{}")
        (out / OWNED_MARKER).write_text(json.dumps({"owner": "edgekit", "entries": ["manifest.json"]}))
    if dest.endswith("user"):
        (out / "user.txt").write_text("mine")
    before = snapshot(parent, skip=("out",))
    replaceable = dest in ("absent", "empty") or (dest == "edgekit" and overwrite)
    try:
        staged = StagedFolder(out, overwrite=overwrite)
    except (InputError, WriteError):
        assert not replaceable
    else:
        assert replaceable
        (staged.path / "manifest.json").write_text('{"new": true}')
        staged.commit()
        assert json.loads((out / "manifest.json").read_text()) == {"new": True}
    assert snapshot(parent, skip=("out",)) == before
    if not replaceable and dest.endswith("user"):
        assert (out / "user.txt").read_text() == "mine"
