"""The package's shape: no import cycles, a torch-free device side, and the public API where users expect it.

The import graph is read from the source (every ``import`` and ``from … import``, top-level or inside a
function, relative ones resolved), so a lazy import that closes a circle is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from testkit import REPO

PACKAGE = REPO / "edgekit"
DEVICE_SIDE = ("edgekit.agent", "edgekit.runtime")
WORKSTATION_ONLY = ("edgekit.exporter", "edgekit.evaluate", "edgekit.cli")
# ExecuTorch's Python bindings link libtorch: its runner is the one device-side module that needs torch, behind
# the opt-in ``executorch`` extra (imported lazily, so the rest of the device side loads without it).
NEEDS_TORCH = ("edgekit.runtime.executorch",)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def import_graph() -> dict[str, set[str]]:
    """Module → the edgekit modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if _is_package(path) else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # `import edgekit.agent.server` names a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending += graph[node]
    return seen


def test_the_import_graph_reader_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "edgekit.exporter.options" in graph["edgekit"]  # lazy, inside __getattr__
    assert "edgekit.cli.common" in graph["edgekit.cli.export"]  # `from .common import …`
    assert "edgekit.cli.export" in graph["edgekit.cli.app"]  # `from . import export`


def test_no_module_imports_a_module_that_imports_it_back():
    assert _cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_device_side_imports_neither_torch_nor_the_workstation_side():
    graph = import_graph()
    for root in [m for m in graph if m.startswith(DEVICE_SIDE)]:
        reached = _reachable(graph, root)
        assert not [m for m in reached if m.startswith(WORKSTATION_ONLY)], root
        for module in reached - set(NEEDS_TORCH):
            source = _modules()[module].read_text()
            imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
                        if isinstance(node, ast.Import) for alias in node.names}
            imported |= {(node.module or "").split(".")[0] for node in ast.walk(ast.parse(source))
                         if isinstance(node, ast.ImportFrom) and not node.level}
            assert not imported & {"torch", "litert_torch", "torchao", "onnxsim"}, module


def test_agent_and_runtime_import_with_torch_blocked():
    device_modules = sorted(m for m in _modules() if m.startswith(DEVICE_SIDE))
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'litert_torch', 'onnxsim'): raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"for name in {device_modules!r}: __import__(name)\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('edgekit.exporter', 'edgekit.evaluate')))\n"
            "print(loaded)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_import_edgekit_loads_no_torch_and_the_public_api_stays_callable():
    code = ("import sys, edgekit\n"
            "assert 'torch' not in sys.modules\n"
            "import edgekit.exporter.options, edgekit.evaluate.validate, edgekit.evaluate.compare\n"
            "assert edgekit.export is edgekit.exporter.options.export\n"
            "assert edgekit.validate is edgekit.evaluate.validate.validate\n"
            "assert edgekit.compare is edgekit.evaluate.compare.compare\n"
            "assert callable(edgekit.load_target)\n"
            "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_top_of_the_package_reads_as_its_architecture():
    top = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith("__"))
    assert {"cli", "exporter", "evaluate", "agent", "runtime"} <= set(top)
    loose = [name for name in top if name.endswith(".py")]
    assert len(loose) <= 10, loose


FORMAT_NAMES = {"onnx", "tflite", "openvino", "executorch"}


def _format_conditions(path: Path) -> list[str]:
    """``x == "onnx"``, ``fmt in ("tflite", …)`` and the like: a comparison with a format's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = {c.value for operand in operands for c in ast.walk(operand)
                 if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        if names & FORMAT_NAMES:
            found.append(f"{path}:{node.lineno}")
    return found


def test_outside_the_routes_no_exporter_module_decides_by_a_format_name():
    exporter = PACKAGE / "exporter"
    outside = [p for p in exporter.rglob("*.py") if "routes" not in p.relative_to(exporter).parts]
    assert [hit for path in outside for hit in _format_conditions(path)] == []


def test_the_format_condition_check_finds_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(c):\n    return c.format == 'openvino' or c.precision in ('fp32',)\n")
    assert len(_format_conditions(sample)) == 1
