"""The compare report (schema ``edgekit.report/1``, see docs/report-schema.md): verdicts, gates, files and views.

``edgekit.compare`` builds the report dict; this package turns it into verdicts (``fill_verdicts``), gate results
(``gates_section``), ``report.json`` + a self-contained ``report.html`` (``write_report``) and a terminal summary
(``print_report``). Importing it needs only the standard library: no numpy, torch or onnx.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...errors import InputError
from ...files import is_plain_file, parse_json, regular_file, to_json, write_text_atomic
from .gates import (
    DEFAULT_MAX_REGRESSION,
    METRICS,
    SCHEMA,
    Gate,
    check_baseline,
    evaluate_gates,
    gates_section,
    parse_fail_if,
    parse_regression,
)
from .page import GENERATOR, render_html
from .verdict import (
    DEFAULT_RTT_PROFILES,
    break_even_rtt,
    cloud_by_rtt,
    cloud_latency,
    device_verdict,
    fill_verdicts,
    parse_rtt_profiles,
    verdict_for_device,
)

__all__ = ["SCHEMA", "DEFAULT_RTT_PROFILES", "DEFAULT_MAX_REGRESSION", "METRICS", "Gate", "break_even_rtt",
           "check_baseline", "cloud_by_rtt", "cloud_latency", "device_verdict", "evaluate_gates", "fill_verdicts",
           "gates_section", "load_report", "parse_fail_if", "parse_regression", "parse_rtt_profiles", "render_html",
           "verdict_for_device", "write_report"]

REQUIRED_KEYS = ("model", "artifacts", "devices", "cloud")


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` (indent 2) and ``report.html`` into ``folder``, each atomically; returns both paths.

    Both texts are built before anything is written, so a report that cannot be rendered or serialized (a NaN,
    an object that is not JSON) leaves the folder as it was.
    """
    folder = Path(folder)
    text = to_json(report) + "\n"
    page = render_html(report)
    json_path, html_path = folder / "report.json", folder / "report.html"
    _check_replaceable_report(json_path, html_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json_path, text)
        write_text_atomic(html_path, page)
    except OSError as exc:
        raise InputError(f"cannot write the report into {folder}: {exc.strerror or exc}",
                         hint="choose a writable folder (--out)") from exc
    return json_path, html_path


def _check_replaceable_report(json_path: Path, html_path: Path) -> None:
    """An earlier edgekit report is replaced; a file of the same name that edgekit did not write is not."""
    for path, ours in ((json_path, lambda t: f'"schema": "{SCHEMA}"' in t),
                       (html_path, lambda t: f'<meta name="generator" content="{GENERATOR}">' in t)):
        if not os.path.lexists(path):
            continue
        try:
            mine = is_plain_file(path) and ours(path.read_text(encoding="utf-8", errors="replace")[:100_000])
        except OSError:
            mine = False
        if not mine:
            raise InputError(f"{path} exists and is not a report edgekit wrote; it is not replaced",
                             hint="choose another --out for the report, or move that file away")


def load_report(path: Path | str) -> dict:
    """Read a ``report.json``; a missing file, another kind of JSON or another schema is an ``InputError``."""
    path = Path(path)
    hint = "pass the report.json that `edgekit compare` wrote (in the artifact folder or --out)"
    if path.is_dir():
        if (path / "report.json").is_file():
            path = path / "report.json"
        else:
            raise InputError(f"{path} is a folder without a report.json", hint=hint)
    if os.path.exists(path) and not os.path.isfile(path):
        regular_file(path, "report file")  # a FIFO would block: named for what it is
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"report file {path} does not exist", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read report file {path}: {getattr(exc, 'strerror', None) or exc}",
                         hint=hint) from None
    try:
        report = parse_json(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}", hint=hint) from None
    except ValueError as exc:
        raise InputError(f"{path} is not JSON: {exc}", hint=hint) from None
    if not isinstance(report, dict) or "schema" not in report:
        raise InputError(f"{path} is not an edgekit report (no 'schema' key)", hint=hint)
    schema = report["schema"]
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("edgekit.report/"):
            raise InputError(f"{path} has schema {schema!r}; this edgekit reads {SCHEMA!r}",
                             hint="rerun `edgekit compare` with this edgekit, or read it with the one that wrote it")
        what = "an artifact manifest" if str(schema).startswith("edgekit.manifest") else f"schema {schema!r}"
        raise InputError(f"{path} is {what}, not a compare report ({SCHEMA!r})", hint=hint)
    missing = [key for key in REQUIRED_KEYS if not isinstance(report.get(key), (dict, list))]
    if missing:
        raise InputError(f"{path} is an incomplete report: missing {', '.join(missing)}", hint=hint)
    return report
