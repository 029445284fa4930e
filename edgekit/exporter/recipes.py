"""Which INT8 recipe a profile's generic ``int8`` becomes, by model kind and route (each route declares its own
``int8_recipes``).

A profile that lists ``int8`` leaves the method to edgekit; ``int8_static`` or ``int8_dynamic`` pin it, and a
pinned precision always wins. The choice and its reason are recorded in the manifest (``int8_recipe``) and on
the candidate.
"""

from __future__ import annotations

from typing import Any

from ..targets import Precision
from .model_kind import ModelKind
from .routes import get_route


def concrete_precisions(listed: list[Precision], kind: ModelKind | None,
                        fmt: str) -> list[tuple[Precision, str | None]]:
    """The profile's precisions that route ``fmt`` builds, with ``int8`` replaced by its recipe (with the note
    saying why), unless the profile lists that precision itself."""
    return get_route(fmt).concrete(listed, kind)


def recipe_record(listed: list[Precision], kind: ModelKind | None, formats: list[str]) -> dict[str, Any] | None:
    """The manifest's ``int8_recipe``: per format, what ``int8`` became and why, or that the profile pinned it."""
    pinned = [p.value for p in listed if p in (Precision.int8_static, Precision.int8_dynamic)]
    if Precision.int8 not in listed:
        return {"pinned_by_profile": pinned, "reason": "the profile names the INT8 method; the model kind does "
                                                       "not change it"} if pinned else None
    if kind is None:
        return {"unresolved": "the model kind is unknown (the graph was not built)"}
    record: dict[str, Any] = {"model_kind": kind.kind}
    for fmt in formats:
        precision, reason = get_route(fmt).int8_recipe(kind)
        record[fmt] = {"precision": precision.value, "reason": f"{kind.kind} model ({kind.reason}): {reason}",
                       "pinned_by_profile": precision.value in pinned}
    return record
