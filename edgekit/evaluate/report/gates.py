"""CI gates over a report: ``--fail-if`` expressions, the target's budgets and regression against a baseline.

Every violation is one line naming the device, the artifact, the figure, the limit and where the limit came from,
e.g. ``pi5 tflite/int8_static: p90_ms 24.1 > 20 (--fail-if p90_ms>20)``. Runs that did not complete (crashed,
timed out) are not gated here: their verdict is ``failed`` and ``edgekit compare`` exits 6 for them.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from ...errors import InputError
from .verdict import fmt_ms

SCHEMA = "edgekit.report/1"
DEFAULT_MAX_REGRESSION = 0.10

LATENCY_METRICS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms")
ACCURACY_METRICS = ("accuracy.cosine_min", "accuracy.top1_agreement", "accuracy.max_abs_error")
METRICS = (*LATENCY_METRICS, *ACCURACY_METRICS, "size_bytes")

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
       "!=": operator.ne}
_OPERATOR = re.compile(r"[<>=!]+")
_TOLERANCE = 1e-9  # a regression of exactly the allowed fraction passes despite float rounding


@dataclass(frozen=True)
class Gate:
    """``metric op threshold``: the run fails where ``value op threshold`` holds (``p90_ms > 20``)."""

    metric: str
    op: str
    threshold: float
    expression: str = ""

    def fails(self, value: float) -> bool:
        """Fails closed: a figure that is not a finite number fails whatever the comparison."""
        return not math.isfinite(value) or OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return self.expression or f"{self.metric}{self.op}{self.threshold:g}"


def _fail_if_error(expression: str, problem: str) -> InputError:
    return InputError(f"malformed --fail-if {expression!r}: {problem}",
                      hint=f"write METRIC OP NUMBER, e.g. --fail-if 'p90_ms>20'; metrics: {', '.join(METRICS)}; "
                           f"ops: {' '.join(OPS)}")


def parse_fail_if(expression: str) -> Gate:
    """``"p90_ms>20"`` → ``Gate("p90_ms", ">", 20.0)``; anything malformed raises an ``InputError`` naming it."""
    if not expression or not expression.strip():
        raise _fail_if_error(expression or "", "the expression is empty")
    match = _OPERATOR.search(expression)
    if not match:
        raise _fail_if_error(expression, "no comparison operator")
    metric, op, number = (expression[:match.start()].strip(), match.group(), expression[match.end():].strip())
    if not metric:
        raise _fail_if_error(expression, "no metric before the operator")
    if metric not in METRICS:
        raise _fail_if_error(expression, f"unknown metric {metric!r}")
    if op not in OPS:
        raise _fail_if_error(expression, f"unknown operator {op!r}")
    if not number:
        raise _fail_if_error(expression, "no threshold after the operator")
    try:
        threshold = float(number)
    except ValueError:
        raise _fail_if_error(expression, f"the threshold {number!r} is not a number") from None
    if not math.isfinite(threshold):
        raise _fail_if_error(expression, f"the threshold {number!r} is not a finite number")
    return Gate(metric, op, threshold, expression.strip())


def parse_regression(text: str | float) -> float:
    """``"10%"`` or ``"0.1"`` → 0.10: the largest allowed p50 slow-down against a baseline, as a fraction."""
    hint = "write a percentage or a fraction: --max-regression 10% or --max-regression 0.1"
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InputError(f"malformed --max-regression {text!r}: not a number", hint=hint) from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"malformed --max-regression {text!r}: must be a finite value ≥ 0", hint=hint)
    if value > 1 and not raw.endswith("%"):
        raise InputError(f"ambiguous --max-regression {text!r}: a fraction above 1 allows more than a 100% "
                         "slow-down", hint=f"{hint} (for {raw}% write {raw}%)")
    return value


def _value(report: dict, device: dict, result: dict, metric: str) -> tuple[float | None, str]:
    """The figure for one device result, and a note when it comes from the export on the host, not the device."""
    artifact = next((a for a in report.get("artifacts") or [] if a.get("name") == result.get("artifact")), {})
    if metric == "size_bytes":
        return artifact.get("size_bytes"), ""
    if metric in LATENCY_METRICS:
        return (result.get("latency") or {}).get(metric), ""
    key = metric.split(".", 1)[1]
    measured = (result.get("accuracy") or {}).get(key)
    if measured is not None:
        return measured, ""
    host = (artifact.get("accuracy") or {}).get(key)
    return host, " (host figure: not measured on the device)" if host is not None else ""


def _fmt(metric: str, value: float) -> str:
    if metric == "size_bytes":
        return f"{value:.0f}"
    return fmt_ms(value) if metric in LATENCY_METRICS else f"{value:.6g}"


def _ran(report: dict, measured_only: bool = False):
    for device in report.get("devices") or []:
        if measured_only and device.get("emulated"):
            continue
        for result in device.get("results") or []:
            if result.get("status") == "ok":
                yield device, result


def _budget_gates(model: dict) -> list[tuple[Gate, str]]:
    """The target's budgets as gates: a latency budget fails above it, cosine/top-1 below, max abs error above."""
    gates = []
    for key, limit in (model.get("latency_budget") or {}).items():
        if limit is not None and key in LATENCY_METRICS:
            gates.append((Gate(key, ">", float(limit)), f"target latency budget {key} ≤ {limit:g} ms"))
    accuracy = model.get("accuracy_budget") or {}
    for key, metric, op in (("cosine_min", "accuracy.cosine_min", "<"),
                            ("top1_agreement_min", "accuracy.top1_agreement", "<"),
                            ("max_abs_error", "accuracy.max_abs_error", ">")):
        limit = accuracy.get(key)
        if limit is not None:
            sign = "≥" if op == "<" else "≤"
            gates.append((Gate(metric, op, float(limit)), f"target accuracy budget {metric} {sign} {limit:g}"))
    return gates


def check_baseline(report: dict, baseline: dict) -> None:
    """Refuse a baseline written by another schema or for another model (``InputError``)."""
    hint = "pass a report.json written by `edgekit compare` for the same model (same source file)"
    if not isinstance(baseline, dict) or baseline.get("schema") != SCHEMA:
        found = baseline.get("schema") if isinstance(baseline, dict) else type(baseline).__name__
        raise InputError(f"baseline report has schema {found!r}, expected {SCHEMA!r}", hint=hint)
    ours = ((report.get("model") or {}).get("source") or {})
    theirs = ((baseline.get("model") or {}).get("source") or {})
    key = "sha256" if ours.get("sha256") or theirs.get("sha256") else "reference"
    if ours.get(key) != theirs.get(key):
        raise InputError(f"baseline report is for another model: its source {key} is {theirs.get(key)!r}, this "
                         f"report's is {ours.get(key)!r} ({theirs.get('reference')!r} vs {ours.get('reference')!r})",
                         hint=hint)


def regression_violations(report: dict, baseline: dict, max_regression: float) -> list[str]:
    """p50 slow-downs beyond ``max_regression`` for every device + artifact that ran in both reports."""
    check_baseline(report, baseline)
    before = {(d["name"], r["artifact"]): r["latency"]["p50_ms"] for d, r in _ran(baseline, measured_only=True)
              if (r.get("latency") or {}).get("p50_ms")}
    pairs = [(d, r, before[(d["name"], r["artifact"])]) for d, r in _ran(report, measured_only=True)
             if (d["name"], r["artifact"]) in before and (r.get("latency") or {}).get("p50_ms") is not None]
    if not pairs:
        raise InputError("the baseline report shares no device + artifact that ran in both, so nothing can be "
                         f"compared (baseline: {', '.join(sorted(f'{n} {a}' for n, a in before)) or 'none ran'})",
                         hint="compare against a report from the same devices (names) and artifacts")
    violations = []
    for device, result, old in pairs:
        new = result["latency"]["p50_ms"]
        change = new / old - 1
        if change > max_regression + _TOLERANCE:
            violations.append(f"{device['name']} {result['artifact']}: p50_ms {fmt_ms(new)} is {change:.1%} slower "
                              f"than the baseline's {fmt_ms(old)} (--max-regression {max_regression:.0%})")
    return violations


def evaluate_gates(report: dict, fail_if: list[str] | None = None, baseline: dict | None = None,
                   max_regression: float | None = None) -> list[str]:
    """Every violation, one line each: ``--fail-if`` gates, the target's budgets (``model.latency_budget``,
    ``model.accuracy_budget``) per device result that ran, and the p50 regression against ``baseline``
    (``max_regression`` defaults to 10% when a baseline is given). Malformed input raises ``InputError``."""
    gates = [(parse_fail_if(text), f"--fail-if {text.strip()}") for text in fail_if or []]
    gates += _budget_gates(report.get("model") or {})
    violations = []
    for device, result in _ran(report):
        where = f"{device['name']} {result['artifact']}"
        for gate, source in gates:
            if device.get("emulated") and gate.metric in LATENCY_METRICS:
                continue  # an emulator's latency is not the target's: never gated
            value, note = _value(report, device, result, gate.metric)
            if value is None:
                if source.startswith("--fail-if"):  # asked for explicitly: a figure that is missing fails
                    violations.append(f"{where}: {gate.metric} was not measured ({source})")
                continue
            if gate.fails(value):
                violations.append(f"{where}: {gate.metric} {_fmt(gate.metric, value)} {gate.op} "
                                  f"{gate.threshold:g} ({source}){note}")
    if baseline is not None:
        allowed = DEFAULT_MAX_REGRESSION if max_regression is None else max_regression
        violations += regression_violations(report, baseline, allowed)
    return violations


def gates_section(report: dict, fail_if: list[str] | None = None, baseline: dict | None = None,
                  baseline_path: str | None = None, max_regression: float | None = None) -> dict:
    """The report's ``gates`` object: ``{"fail_if", "baseline", "max_regression", "violations", "passed"}``."""
    violations = evaluate_gates(report, fail_if, baseline, max_regression)
    if baseline is not None and max_regression is None:
        max_regression = DEFAULT_MAX_REGRESSION
    return {"fail_if": [text.strip() for text in fail_if or []], "baseline": baseline_path,
            "max_regression": max_regression, "violations": violations, "passed": not violations}
