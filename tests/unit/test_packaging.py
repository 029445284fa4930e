"""What `pip install` pulls: the device side must not need torch; torch stays pinned to the CPU build; the wheel
holds edgekit alone (the tests' and benches' helpers in testkit/ stay in the checkout)."""

import re
import tomllib

from testkit import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _project() -> dict:
    return _pyproject()["project"]


def _requirements(extra: str | None) -> list[str]:
    """Requirements of the core plus ``extra``, following edgekit[...] self-references."""
    project = _project()
    found, pending = list(project["dependencies"]), [extra] if extra else []
    while pending:
        for requirement in project["optional-dependencies"][pending.pop()]:
            own = re.fullmatch(r"edgekit\[(.+)\]", requirement)
            if own:
                pending += own.group(1).split(",")
            else:
                found.append(requirement)
    return found


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_device_side_installs_without_torch():
    for extra in (None, "agent", "openvino"):
        assert not {"torch", "litert-torch", "torchao", "onnxsim"} & _names(_requirements(extra))


def test_torch_is_pinned_to_the_cpu_wheel_wherever_it_is_required():
    torch = [r for r in _requirements("dev") if _names([r]) == {"torch"}]
    assert set(torch) == {"torch==2.13.0"}


def test_the_wheel_ships_edgekit_alone_not_the_test_helpers():
    wheel = _pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["edgekit"]
    assert all(target.startswith("edgekit/") for target in wheel.get("force-include", {}).values())
    assert (REPO / "testkit" / "__init__.py").is_file()  # importable from the checkout (pytest's pythonpath)
