"""The routes: one module per output format (``onnx.py``, ``tflite.py``, ``openvino.py``, ``executorch.py``),
registered here.

A profile names routes in ``formats``; ``auto`` is a selection mode (build every route the profile lists and
choose), not a route. A plugin module (``EDGEKIT_PLUGINS``, see ``runtime/registry.py``) adds a route with
``register_route`` and its runtime with ``register_runtime``; nothing else needs to change.
"""

from __future__ import annotations

from ...errors import InputError
from ...runtime.registry import load_plugins
from .base import BuildRun, CandidatePlan, PlannedStep, Route
from .executorch import ExecuTorchRoute
from .onnx import OnnxRoute
from .openvino import OpenVinoRoute
from .tflite import TfliteRoute

_ROUTES: dict[str, Route] = {}


def register_route(route: type[Route]) -> type[Route]:
    """Declare a route (a class, used as a decorator too); a second route of the same name is refused."""
    if route.name in _ROUTES or route.name == "auto":
        raise ValueError(f"route '{route.name}' is registered twice or reserved")
    _ROUTES[route.name] = route()
    return route


for _builtin in (OnnxRoute, TfliteRoute, OpenVinoRoute, ExecuTorchRoute):
    register_route(_builtin)


def route_names() -> list[str]:
    load_plugins()
    return list(_ROUTES)


def get_route(name: str) -> Route:
    """The route called ``name``; an unknown name is an ``InputError`` listing the known ones."""
    if name not in route_names():
        hint = ("auto is a selection mode: list the formats themselves in the profile, and pass --format auto"
                if name == "auto" else "use one of those names")
        raise InputError(f"unknown format '{name}'; the routes are: {', '.join(route_names())}", hint=hint)
    return _ROUTES[name]


def int8_kernels_on(arch: str):
    """Whether a candidate's runtime has int8 kernels on ``arch`` (every runtime counts for ``any``)."""
    return lambda candidate: arch == "any" or arch in get_route(candidate.format).int8_kernel_archs


__all__ = ["BuildRun", "CandidatePlan", "PlannedStep", "Route", "get_route", "int8_kernels_on", "register_route",
           "route_names"]
