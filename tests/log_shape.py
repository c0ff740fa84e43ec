"""The one log shape, checked on what a function wrote: used by test_log_shape.py and, through the conftest hook
`pytest_runtest_makereport`, on the captured stdout of every test of the functions' own test modules."""

from __future__ import annotations

import json
import re
from typing import Any

import logshape

SERVICES = frozenset({"edge-inference", "runbook-automation", "anomaly-detector", "anomaly-trainer",
                      "anomaly-dispatcher", "canary"})
# The test modules whose tests run a function in-process. Their tests call the functions' inner entry points
# too (run(), not handler()), and one process imports several functions: a line there carries the shape of the
# function bound last, so the hook checks the shape and a service of the stack; test_log_shape.py checks each
# function's own service through its handler, as Lambda runs it.
FUNCTION_TEST_MODULES = frozenset({"test_runbook_automation", "test_incident_timeline", "test_webhook_properties",
                                   "test_anomaly_handlers", "test_canary", "test_log_shape"})
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_TRACE = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")


def shape_problems(line: str, services: frozenset[str]) -> list[str]:
    """What is wrong with one output line (empty when it is a line of the shape)."""
    try:
        rec: Any = json.loads(line)
    except ValueError:
        return [f"not JSON: {line[:120]!r}"]
    if not isinstance(rec, dict):
        return [f"not a JSON object: {line[:120]!r}"]
    out = []
    missing = [k for k in ("timestamp", "level", "service", "function", "request_id", "trace_id", "message")
               if k not in rec]
    if missing:
        out.append(f"missing {missing}")
    if not _ISO.match(str(rec.get("timestamp"))):
        out.append(f"timestamp {rec.get('timestamp')!r} is not ISO 8601 UTC with ms")
    if rec.get("level") not in LEVELS:
        out.append(f"level {rec.get('level')!r} not one of {sorted(LEVELS)}")
    if rec.get("service") not in services:
        out.append(f"service {rec.get('service')!r} not one of {sorted(services)}")
    if not isinstance(rec.get("function"), str) or not rec.get("function"):
        out.append("function is not a name")
    if rec.get("trace_id") is not None and not _TRACE.match(str(rec["trace_id"])):
        out.append(f"trace_id {rec['trace_id']!r} is not an X-Ray trace id")
    for key in ("incident_id", "episode_id"):
        if key in rec and not isinstance(rec[key], str):
            out.append(f"{key} {rec[key]!r} is not a string")
    return [f"{p} in {line[:200]}" for p in out]


def lines_of(stdout: str) -> list[str]:
    """The log lines a function wrote among a test's stdout (a JSON object a line; other prints are the test's)."""
    return [ln for ln in stdout.splitlines() if ln.startswith("{")]


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in lines_of(stdout)]


REDACTED = logshape.REDACTED
