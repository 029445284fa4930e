"""Every shell and Python block in README.md and docs/*.md runs, so the front door cannot rot.

A fenced block tagged ``bash``, ``sh``, ``shell`` or ``python`` is run, in order, file by file: each file is one
session in a fresh copy of the checkout (its tracked and new files, the repository's ``.venv`` linked in,
``.venv/bin`` first on PATH, HOME a fresh folder beside it), offline (its own network namespace with only
loopback where this runs as root with ``unshare``; otherwise pip and Hugging Face are told to stay offline). Shell blocks run with ``bash -e -o
pipefail``; Python blocks with the venv's Python. Blocks that show output are ``text`` or ``console`` and are not
run. The line just before a fence may say what to do with it:

- ``<!-- not run: REASON -->``: the block needs what a test here does not have (a device, root, another machine,
  the network, minutes of training); the reason is required.
- ``<!-- background: URL -->``: the block serves until stopped (the agent): it is started in the background, the
  session waits until URL answers 200, and it is stopped when the file's session ends.

Also here: every fence has a language, no instruction installs ``edgekit`` by name from a package index, TOML
blocks parse, and docs/cli.md is what ``scripts/cli-docs.sh`` generates from the Typer app now.

Run as a script (``python test_docs.py session FILE.md WORKDIR``) it is the session runner itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_LANGS = {"bash", "sh", "shell", "python"}
BLOCK_TIMEOUT_S = 300
DIRECTIVE = re.compile(r"^\s*<!--\s*(not run|background):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directive: str | None = None  # "not run" | "background"
    argument: str = ""

    @property
    def where(self) -> str:
        try:
            name = self.path.relative_to(REPO)
        except ValueError:
            name = self.path
        return f"{name}:{self.line}"


def doc_files(root: Path = REPO) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the directive on the line just before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match.groups()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1  # the closing fence
        lang = info.strip().split(" ")[0].lower() if info.strip() else ""
        block = Block(path, start + 1, lang, "\n".join(body) + "\n")
        if start > 0 and (d := DIRECTIVE.match(lines[start - 1])):
            block.directive, block.argument = d.group(1), d.group(2)
        blocks.append(block)
    return blocks


# ---------------------------------------------------------------------------------------------- the session runner

def _offline_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = workdir / ".venv" / "bin"
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(workdir / ".venv")
    env.update(PIP_NO_INDEX="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1",
               COLUMNS="160", NO_COLOR="1")
    for name in ("EDGEKIT_AGENT_TOKEN", "EDGEKIT_AGENT_FINGERPRINT", "EDGEKIT_CLOUD_TOKEN", "PYTHONPATH",
                 "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)
    home = workdir.parent / "home"  # the agent's default token and store, and anything else a block keeps in ~
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    return env


def _command(block: Block, workdir: Path) -> list[str]:
    if block.lang == "python":
        python = workdir / ".venv" / "bin" / "python"
        return [str(python) if python.exists() else sys.executable, "-c", block.code]
    return ["bash", "-e", "-o", "pipefail", "-c", block.code]


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    try:  # the group may outlive its leader (a block that left a child behind)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _wait_for(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"it exited with status {proc.returncode} before {url} answered"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 (loopback, from the docs)
                if reply.status == 200:
                    return None
        except OSError:
            pass
        time.sleep(0.25)
    return f"{url} did not answer 200 within {timeout_s:.0f} s"


def run_session(path: Path, workdir: Path, out=sys.stdout) -> int:
    """Run the file's runnable blocks in order in workdir; 0 when all passed, 1 at the first failure."""
    env = _offline_env(workdir)
    background: list[tuple[Block, subprocess.Popen, Path]] = []
    status = 0
    try:
        for n, block in enumerate(parse_blocks(path)):
            if block.lang not in RUN_LANGS:
                continue
            if block.directive == "not run":
                print(f"skipped {block.where}: not run: {block.argument}", file=out, flush=True)
                continue
            if block.directive == "background":
                log = workdir / f".docs-background-{n}.log"
                with open(log, "wb") as sink:
                    proc = subprocess.Popen(_command(block, workdir), cwd=workdir, env=env, stdout=sink,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                background.append((block, proc, log))
                problem = _wait_for(block.argument, proc)
                time.sleep(0.5)
                if problem is None and proc.poll() is not None:  # something else answered: the port was taken
                    problem = f"it exited with status {proc.returncode}, yet {block.argument} answered"
                if problem:
                    print(f"FAILED {block.where} (background): {problem}\n--- block ---\n{block.code}--- output ---\n"
                          f"{log.read_text(errors='replace')[-6000:]}", file=out, flush=True)
                    return 1
                print(f"started {block.where} in the background ({block.argument} answered)", file=out, flush=True)
                continue
            started = time.monotonic()
            proc = subprocess.Popen(_command(block, workdir), cwd=workdir, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                output, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _stop(proc)
                output, problem = b"", f"timed out after {BLOCK_TIMEOUT_S} s"
            else:
                problem = None if proc.returncode == 0 else f"exit status {proc.returncode}"
                _stop(proc)  # anything the block left running in its group
            took = time.monotonic() - started
            if problem:
                text = output.decode(errors="replace")
                print(f"FAILED {block.where} ({block.lang}, {took:.1f} s): {problem}\n--- block ---\n{block.code}"
                      f"--- output (last 6000 characters) ---\n{text[-6000:]}", file=out, flush=True)
                status = 1
                break
            print(f"ran {block.where} ({block.lang}, {took:.1f} s)", file=out, flush=True)
    finally:
        for block, proc, log in background:
            if proc.poll() is not None and status == 0:
                print(f"FAILED {block.where} (background): it stopped during the session with status "
                      f"{proc.returncode}\n{log.read_text(errors='replace')[-3000:]}", file=out, flush=True)
                status = 1
            _stop(proc)
    return status


# ---------------------------------------------------------------------------------------------- the pytest side

def _copy_checkout(dest: Path) -> None:
    """The working tree's tracked and new (not ignored) files, with the repository's venv linked in. The copies'
    timestamps are set before the venv's, so `make` finds the venv up to date (rebuilding it is `make setup`'s
    business, not the docs')."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    venv_stamp = (REPO / ".venv" / "bin" / "edgekit").stat().st_mtime
    for name in filter(None, listed):
        source = REPO / name
        if source.is_symlink():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            os.utime(target, (venv_stamp - 60, venv_stamp - 60))
    (dest / ".venv").symlink_to(REPO / ".venv")


def _isolated(argv: list[str]) -> list[str]:
    """argv in a network namespace of its own with loopback up, where this process may make one."""
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    return argv


def _session(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    _copy_checkout(workdir)
    copied = workdir / path.relative_to(REPO)
    argv = [sys.executable, str(Path(__file__).resolve()), "session", str(copied), str(workdir)]
    return subprocess.run(_isolated(argv), capture_output=True, text=True, timeout=1200)


def _doc_ids(paths):
    return [str(p.relative_to(REPO)) for p in paths]


@pytest.mark.parametrize("path", doc_files(), ids=_doc_ids(doc_files()))
def test_doc_blocks_run(path: Path, tmp_path: Path):
    runnable = [b for b in parse_blocks(path) if b.lang in RUN_LANGS and b.directive != "not run"]
    if not runnable:
        pytest.skip(f"{path.name}: no runnable block")
    result = _session(path, tmp_path)
    assert result.returncode == 0, f"{path.name}: a block failed\n{result.stdout[-12000:]}\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("path", doc_files(), ids=_doc_ids(doc_files()))
def test_doc_blocks_are_tagged_and_directives_are_well_formed(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = parse_blocks(path)
    fences = {b.line for b in blocks}
    for block in blocks:
        assert block.lang, f"{block.where}: a fence without a language (output is ```text or ```console)"
        if block.directive == "not run":
            assert block.argument, f"{block.where}: <!-- not run: --> needs its reason"
        if block.directive == "background":
            assert block.lang in RUN_LANGS and block.argument.startswith("http://127.0.0.1:"), block.where
    for number, line in enumerate(lines, 1):
        if DIRECTIVE.match(line):
            assert number + 1 in fences, f"{path.name}:{number}: a directive must be the line just before a fence"
    for block in blocks:
        if block.lang == "toml":
            tomllib.loads(block.code)  # raises with the line on a broken example


_EDGEKIT_REQUIREMENT = re.compile(r"""(?<![\w./-])['"]?\.?edgekit(\[[\w,]+\])?['"]?(?=\s|$)""")


def _installs_edgekit_from_an_index(command: str) -> bool:
    if "pip install" not in command and "pip3 install" not in command:
        return False
    after = command.split("install", 1)[1]
    return bool(_EDGEKIT_REQUIREMENT.search(after)) and "--no-index" not in after


def test_no_instruction_installs_edgekit_by_name_from_an_index():
    """`edgekit` on PyPI is an unrelated project: the docs install from this checkout or the agent bundle."""
    assert _installs_edgekit_from_an_index("pip install 'edgekit[agent]'")
    assert _installs_edgekit_from_an_index("sudo /opt/edgekit/venv/bin/pip install edgekit")
    assert not _installs_edgekit_from_an_index("pip install --no-index --find-links bundle 'edgekit[agent]'")
    assert not _installs_edgekit_from_an_index("pip install -e '.[dev]'")
    assert not _installs_edgekit_from_an_index("pip install ./dist/edgekit-0.1.0-py3-none-any.whl")
    found = []
    texts = [*doc_files(), REPO / "bench" / "README.md", REPO / "edgekit" / "agent" / "edgekit-agent.service"]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        commands = [line for b in parse_blocks(path) for line in b.code.splitlines()] if path.suffix == ".md" else []
        if path.suffix == ".service":
            commands = [line for line in text.splitlines() if line.lstrip().startswith("#")]
        for span in re.finditer(r"`([^`\n]+)`", text):  # inline code, unless the sentence says never to
            if "never" not in text[max(0, span.start() - 30):span.start()]:
                commands.append(span.group(1))
        found += [f"{path.name}: {c.strip()}" for c in commands if _installs_edgekit_from_an_index(c)]
    assert not found, "installs edgekit by name from a package index:\n" + "\n".join(found)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    inside = {b.line + k for b in parse_blocks(path) for k in range(b.code.count("\n") + 2)}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if number in inside or not (m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
    return {f"{s}-{n}" if n else s for s, count in seen.items() for n in range(count + 1)}


@pytest.mark.parametrize("path", doc_files(), ids=_doc_ids(doc_files()))
def test_doc_links_resolve(path: Path):
    """Every relative link goes to a file that exists, and to a heading that exists there."""
    text = path.read_text(encoding="utf-8")
    broken = []
    for match in re.finditer(r"\]\(([^)\s]+)\)", text):
        link = match.group(1)
        if re.match(r"^[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{link}: no heading #{anchor} in {file.name}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


@pytest.mark.parametrize("path", doc_files(), ids=_doc_ids(doc_files()))
def test_repository_paths_named_in_the_docs_exist(path: Path):
    """`tests/…`, `bench/…`, `edgekit/…` and the like in inline code name files that exist (outputs aside)."""
    missing = []
    for match in re.finditer(r"`([^`\s]+)`", path.read_text(encoding="utf-8")):
        name = match.group(1)
        if not re.match(r"^(tests|testkit|bench|scripts|edgekit|samples|targets|docs|deploy)/", name):
            continue
        if "edgekit-out" in name or any(c in name for c in "*<…{"):
            continue
        if not (REPO / name.split(":")[0].rstrip(".,;")).exists():
            missing.append(name)
    assert not missing, f"{path.name} names files that do not exist: {missing}"


def test_cli_reference_is_generated_from_the_typer_app(tmp_path: Path):
    fresh = tmp_path / "cli.md"
    subprocess.run(["sh", str(REPO / "scripts" / "cli-docs.sh"), str(fresh)], check=True, cwd=REPO, timeout=120)
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "docs/cli.md is out of date: run scripts/cli-docs.sh")


def test_the_runner_fails_on_a_broken_block_and_skips_a_marked_one(tmp_path: Path):
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n<!-- not run: needs a device -->\n```bash\nexit 3\n```\n\n```bash\necho ok > ran.txt\n```\n"
                   "\n```text\nnot a command\n```\n", encoding="utf-8")
    (tmp_path / ".venv").mkdir()
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        assert run_session(doc, tmp_path, out) == 0
    assert (tmp_path / "ran.txt").read_text() == "ok\n"
    assert "skipped" in log.read_text() and "needs a device" in log.read_text()
    for broken in ("```bash\ntrue\nfalse\necho never\n```\n", "```bash\nfalse | cat\n```\n",
                   "```python\nraise SystemExit(2)\n```\n", "```sh\nls does-not-exist\n```\n"):
        doc.write_text(broken, encoding="utf-8")
        with open(log, "w") as out:
            assert run_session(doc, tmp_path, out) == 1, broken
        assert "FAILED" in log.read_text()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "session":
    sys.exit(run_session(Path(sys.argv[2]), Path(sys.argv[3])))
