"""The suite's own shape: each test file in one folder by kind, basenames unique across the folders, helpers
imported from ``testkit`` (shared with the benches), never found by putting tests/ or bench/ on ``sys.path``.

There is no ``__init__.py`` under tests/ on purpose: pytest's default import mode imports a test file by its
basename with its folder on ``sys.path``, so two files of one name in two folders would clash; this test says so
before pytest's own error does.
"""

from __future__ import annotations

import re
from collections import Counter

from testkit import REPO

KINDS = {"unit", "system", "interop", "fuzz", "emulated"}
OTHERS_PATH = re.compile(r"sys\.path\.(insert|append)\([^)]*[\"'](tests|bench)[\"']")
CONFTEST_IMPORT = re.compile(r"^\s*(from conftest import|import conftest)", re.M)


def test_every_test_file_sits_in_a_folder_by_kind_under_a_unique_name():
    tests = REPO / "tests"
    files = sorted(tests.rglob("test_*.py"))
    assert files
    misplaced = [str(p.relative_to(tests)) for p in files if len(p.relative_to(tests).parts) != 2
                 or p.relative_to(tests).parts[0] not in KINDS]
    assert not misplaced, f"test files outside {sorted(KINDS)}: {misplaced}"
    clashes = [name for name, n in Counter(p.name for p in files).items() if n > 1]
    assert not clashes, f"one basename in two folders (pytest imports test files by basename): {clashes}"
    assert not list(tests.rglob("__init__.py"))


def test_helpers_come_from_testkit_not_from_each_others_folders():
    sources = [*(REPO / "tests").rglob("*.py"), *(REPO / "bench").glob("*.py"), *(REPO / "testkit").rglob("*.py")]
    offenders = [str(p.relative_to(REPO)) for p in sources
                 if OTHERS_PATH.search(p.read_text(encoding="utf-8"))
                 or CONFTEST_IMPORT.search(p.read_text(encoding="utf-8"))]
    assert not offenders, f"import the helpers from testkit instead: {offenders}"
