"""The agent's store on the user's disk: refuses folders it does not own, deletes only its own files, never through
a symlink, one agent per store, and an unreadable artifact is moved aside while the rest keep serving."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_agent_gate import tiny_onnx

from edgekit.agent.auth import AgentSetupError
from edgekit.agent.store import ArtifactStore
from edgekit.agent.storeguard import MARKER
from edgekit.errors import InputError
from testkit.agent_process import free_port, start_agent

CLI = [sys.executable, "-m", "edgekit.cli"]


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: a file's bytes, a link's target, or 'dir' (links are not followed)."""
    tree = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            tree[key] = (f"link:{os.readlink(path)}" if path.is_symlink() else
                         "dir" if path.is_dir() else path.read_bytes())
    return tree


def user_tree(root: Path) -> Path:
    """A folder of a user's files that happen to use the store's folder names."""
    (root / "artifacts" / "photos").mkdir(parents=True)
    (root / "artifacts" / "report.pdf").write_bytes(os.urandom(3000))
    (root / "artifacts" / "photos" / "cat.jpg").write_bytes(os.urandom(5000))
    (root / "artifacts" / ("a" * 64 + ".onnx")).write_bytes(b"the user's own file with a digest-like name")
    (root / "incoming").mkdir()
    (root / "incoming" / "todo.txt").write_text("buy milk\n")
    (root / "incoming" / "tmpabcdefgh").write_text("looks like a temp file, is the user's\n")
    (root / "notes.md").write_text("# notes\n")
    return root


def serve(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "agent", "serve", "--store", str(store), "--port", str(free_port()),
                           "--token-file", str(store.parent / "token"), *args], capture_output=True, text=True,
                          timeout=60)


def test_a_folder_of_user_files_is_refused_and_left_byte_for_byte(tmp_path):
    store = user_tree(tmp_path / "mine")
    before = snapshot(store)
    result = serve(store)
    assert result.returncode == 2, result.stderr
    assert f"--store {store} is not empty" in result.stderr and "edgekit did not create it" in result.stderr
    assert "hint: pass --store with a new or empty folder" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(store) == before
    with pytest.raises(InputError):
        ArtifactStore(store)
    assert snapshot(store) == before


def test_incoming_as_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    ArtifactStore(tmp_path / "store").close()
    target = user_tree(tmp_path / "elsewhere")
    before = snapshot(target)
    (tmp_path / "store" / "incoming").rmdir()
    (tmp_path / "store" / "incoming").symlink_to(target / "incoming")
    result = serve(tmp_path / "store")
    assert result.returncode == 2 and "is a symlink or a file, not a folder" in result.stderr, result.stderr
    assert snapshot(target) == before


def test_strays_in_an_owned_store_are_reported_not_deleted_nor_fatal(tmp_path):
    store = tmp_path / "store"
    ArtifactStore(store).close()
    outside = user_tree(tmp_path / "outside")
    (store / "incoming" / "a-folder").mkdir()
    (store / "incoming" / "a-folder" / "keep.txt").write_text("keep")
    (store / "incoming" / "link").symlink_to(outside / "incoming")
    (store / "incoming" / "upload-link.part").symlink_to(outside / "notes.md")  # our name, but a link
    (store / "artifacts" / "readme.txt").write_text("mine")
    (store / "incoming" / "upload-dead1234.part").write_bytes(b"half an upload")  # a killed agent's: removed
    kept = {k: v for k, v in snapshot(store).items() if "upload-dead" not in k and k != "agent.lock"}
    outside_before = snapshot(outside)
    agent = start_agent(tmp_path, store=store)
    try:
        report = httpx.get(f"{agent.url}/v1/info", headers=agent.headers, timeout=30).json()["store"]
        digest = hashlib.sha256(data := tiny_onnx()).hexdigest()
        assert httpx.put(f"{agent.url}/v1/artifacts/{digest}", content=data, headers=agent.headers,
                         timeout=60).status_code == 201
    finally:
        agent.stop()
    assert sorted(report["stray"]) == ["artifacts/readme.txt", "incoming/a-folder", "incoming/link",
                                       "incoming/upload-link.part"]
    after = snapshot(store)
    assert {k: after.get(k) for k in kept} == kept
    assert "incoming/upload-dead1234.part" not in after
    assert snapshot(outside) == outside_before


def test_one_agent_per_store_and_a_dead_agents_lock_is_taken_over(tmp_path):
    store = tmp_path / "store"
    first = ArtifactStore(store)
    with pytest.raises(AgentSetupError, match=f"in use by another edgekit agent \\(pid {os.getpid()}\\)"):
        ArtifactStore(store)
    agent_process_result = serve(store)
    assert agent_process_result.returncode == 7 and "in use by another edgekit agent" in agent_process_result.stderr
    first.close()
    (store / "agent.lock").write_text("999999\n")  # left by an agent that was killed
    second = ArtifactStore(store)
    assert second.lock.previous == "999999" and (store / "agent.lock").read_text() == f"{os.getpid()}\n"
    second.close()


def test_a_store_from_before_the_marker_is_adopted(tmp_path):
    store = tmp_path / "old"
    (store / "artifacts").mkdir(parents=True)
    (store / "incoming").mkdir()
    (store / "incoming" / "tmpx1y2z3w4.onnx").write_bytes(b"partial")
    opened = ArtifactStore(store)
    opened.close()
    assert (store / MARKER).exists() and not list((store / "incoming").iterdir())
    assert opened.stray == []


def test_unreadable_metadata_is_moved_aside_reported_and_the_rest_serve(tmp_path):
    store = tmp_path / "store"
    good, bad, worse = tiny_onnx(), tiny_onnx(string_output=True), tiny_onnx()[:-1] + b"\x00"
    agent = start_agent(tmp_path, store=store)
    digests = []
    try:
        for data in (good, bad, worse):
            digests.append(hashlib.sha256(data).hexdigest())
            httpx.put(f"{agent.url}/v1/artifacts/{digests[-1]}", content=data, headers=agent.headers, timeout=60)
    finally:
        agent.stop()
    stored = [d for d in digests if (store / "artifacts" / f"{d}.json").exists()]
    assert digests[0] in stored and digests[1] in stored
    meta = store / "artifacts" / f"{digests[1]}.json"
    meta.write_bytes(meta.read_bytes()[:10])  # truncated
    agent = start_agent(tmp_path, store=store)
    try:
        def get(path):
            return httpx.get(agent.url + path, headers=agent.headers, timeout=30)

        assert [a["digest"] for a in get("/v1/artifacts").json()["artifacts"]] == [digests[0]]
        assert get(f"/v1/artifacts/{digests[1]}").status_code == 404
        assert get(f"/v2/models/{digests[1]}/ready").status_code == 404
        assert get(f"/v2/models/{digests[0]}/ready").json()["ready"] is True
        quarantined = get("/v1/info").json()["store"]["quarantined"]
        assert [q["digest"] for q in quarantined] == [digests[1]]
        assert "unreadable metadata" in quarantined[0]["reason"]
        # damaged while serving: a file that is JSON but not the artifact's metadata
        (store / "artifacts" / f"{digests[0]}.json").write_text(json.dumps({"digest": "x"}))
        assert get("/v1/artifacts").json()["artifacts"] == []
        assert get("/v2/health/ready").status_code == 200
    finally:
        agent.stop()
    assert sorted(p.name for p in (store / "quarantine").iterdir()) == sorted(
        f"{d}.{kind}" for d in digests[:2] for kind in ("json", "onnx"))
