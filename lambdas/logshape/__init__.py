"""One log shape for every function of the stack: one JSON object a line, redacted before it is written.

Every line holds `timestamp` (ISO 8601 UTC, ms), `level`, `service`, `function`, `request_id`, `trace_id`, and
`incident_id` / `episode_id` where the work has one, then `message` and the call's own fields. CloudWatch Logs
Insights discovers the fields of JSON lines by itself, so the stack's saved queries (infra/components/logs.py)
filter on these names in every log group alike ("Supported logs and discovered fields", CloudWatch Logs docs).

Redaction runs on every line, whatever the caller passed: a field whose name is listed (embedding request text,
signatures, secrets, tokens) is replaced whole, and every string is scrubbed of the patterns (email addresses,
bearer tokens, AWS access keys, PagerDuty `v1=` signatures, JWTs). Deployments add fields and patterns through
the environment variables LOG_REDACT_FIELDS / LOG_REDACT_PATTERNS (JSON lists), or the baked file
`logshape.json` of Lambda@Edge, which has no environment; they never remove the defaults.

Standard library only and a few hundred microseconds to import: Lambda@Edge's viewer-facing cold start
(README, Performance) keeps its budget (`make log-shape-cold-start`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

REDACTED = "[redacted]"
# Field names (compared case-insensitively, `-` and `_` alike) whose value never reaches a log line.
DEFAULT_FIELDS = frozenset({
    "text", "input", "inputs", "body", "raw_body", "request_body", "embedding",  # what a caller sent to /embed
    "signature", "x-pagerduty-signature", "authorization", "cookie", "set-cookie",
    "secret", "secret_string", "webhook_secret", "password", "token", "access_token", "refresh_token",
    "api_key", "x-api-key", "routing_key", "integration_key", "email", "user_email", "phone",
})
# Values scrubbed wherever they appear inside a string (a message, an error, a nested field).
DEFAULT_PATTERNS: tuple[str, ...] = (
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",  # email address
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+",  # Authorization: Bearer <token>
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",  # AWS access key id
    r"\bv1=[0-9a-fA-F]{16,}",  # PagerDuty V3 webhook signature
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",  # JWT
    r"(?i)\b(?:whsec|sk|xox[abprs])[-_][A-Za-z0-9_-]{6,}",  # webhook secrets, API and chat tokens
)
FIELDS_ENV = "LOG_REDACT_FIELDS"
PATTERNS_ENV = "LOG_REDACT_PATTERNS"
BAKED_FILE = "logshape.json"
SHAPE = ("timestamp", "level", "service", "function", "request_id", "trace_id", "incident_id", "episode_id",
         "message")
MAX_DEPTH = 8  # nested values deeper than this are replaced: a log line never recurses without bound


class RedactionConfigError(ValueError):
    """LOG_REDACT_FIELDS / LOG_REDACT_PATTERNS (or the baked file) hold something unusable."""


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


class Redactor:
    def __init__(self, fields: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.fields = frozenset(_norm(f) for f in (*DEFAULT_FIELDS, *fields))
        compiled = []
        for p in (*DEFAULT_PATTERNS, *patterns):
            try:
                compiled.append(re.compile(p))
            except re.error as exc:
                raise RedactionConfigError(f"redaction pattern {p!r} is not a regular expression: {exc}") from exc
        self.patterns = tuple(compiled)

    def text(self, value: str) -> str:
        for p in self.patterns:
            value = p.sub(REDACTED, value)
        return value

    def value(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool) or value is None or isinstance(value, int | float):
            return value
        if isinstance(value, Mapping):
            return {str(k): (REDACTED if _norm(str(k)) in self.fields else self.value(v, depth + 1))
                    for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v, depth + 1) for v in value]
        return self.text(str(value))


def _json_list(raw: str | None, what: str) -> list[str]:
    if raw is None or not raw.strip():
        return []
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise RedactionConfigError(f"{what} must be a JSON list of strings, got {raw[:80]!r}: {exc}") from exc
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        raise RedactionConfigError(f"{what} must be a JSON list of strings, got {raw[:80]!r}")
    return parsed


def redactor_from(environ: Mapping[str, str] | None = None, baked: Path | None = None) -> Redactor:
    """The defaults plus what the deployment adds (environment variables, else the baked file)."""
    env = os.environ if environ is None else environ
    fields = _json_list(env.get(FIELDS_ENV), FIELDS_ENV)
    patterns = _json_list(env.get(PATTERNS_ENV), PATTERNS_ENV)
    if baked is not None and baked.exists():
        try:
            raw = json.loads(baked.read_text())
        except ValueError as exc:
            raise RedactionConfigError(f"{baked.name} is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise RedactionConfigError(f"{baked.name} must hold an object with lists 'fields' and 'patterns'")
        fields += _json_list(json.dumps(raw.get("fields", [])), f"{baked.name} fields")
        patterns += _json_list(json.dumps(raw.get("patterns", [])), f"{baked.name} patterns")
    return Redactor(fields, patterns)


def trace_id(header: str | None = None) -> str | None:
    """The X-Ray trace id (`Root=`) of the invocation (Lambda sets _X_AMZN_TRACE_ID per request)."""
    raw = header if header is not None else os.environ.get("_X_AMZN_TRACE_ID")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, val = part.partition("=")
        if key.strip() == "Root" and val:
            return val.strip()
    return raw.strip() if raw.strip().startswith("1-") else None


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


class Shape:
    """The per-container fields (service, function) and the per-invocation ones (bind/clear)."""

    def __init__(self, service: str, redactor: Redactor | None = None) -> None:
        self.service = service
        self.function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", service)
        self.redactor = redactor or redactor_from()
        self.context: dict[str, Any] = {}

    def bind(self, context: Any = None, *, trace_header: str | None = None, **fields: Any) -> None:
        """Start an invocation: its request id (from the Lambda context), trace id and correlation ids."""
        install(self)
        self.context = {"request_id": getattr(context, "aws_request_id", None), "trace_id": trace_id(trace_header)}
        self.context.update({k: v for k, v in fields.items() if v is not None})

    def update(self, **fields: Any) -> None:
        self.context.update({k: v for k, v in fields.items() if v is not None})

    def record(self, level: str, message: str, fields: Mapping[str, Any] | None = None,
               at: float | None = None) -> dict[str, Any]:
        """One redacted line as a dict: the shape first, then the call's own fields."""
        extra = dict(fields or {})
        out: dict[str, Any] = {"timestamp": _iso(time.time() if at is None else at), "level": level,
                               "service": self.service, "function": self.function,
                               "request_id": self.context.get("request_id"),
                               "trace_id": self.context.get("trace_id")}
        for key in ("incident_id", "episode_id"):
            # the runbook audit's `incident`, the detector's `episode`: the same ids under the shape's names
            value = extra.pop(key, None) or extra.get(key[:-3]) or self.context.get(key)
            if value is not None:
                out[key] = value
        for key, value in self.context.items():
            if key not in out and key not in extra:
                extra[key] = value
        out["message"] = message
        for key, value in extra.items():
            if key not in SHAPE:
                out[key] = value
        return dict(self.redactor.value(out))

    def emf(self, level: str, message: str, doc: Mapping[str, Any], at: float | None = None) -> dict[str, Any]:
        """An EMF document as a line of the shape: its `_aws` directive stays first, as stream readers expect."""
        out = self.record(level, message, doc, at)
        return {"_aws": out.pop("_aws"), **out} if "_aws" in out else out

    def line(self, level: str, message: str, fields: Mapping[str, Any] | None = None) -> str:
        return json.dumps(self.record(level, message, fields), separators=(",", ":"), default=str)


class JsonFormatter(logging.Formatter):
    """stdlib logging records -> the shape. A message that is itself a JSON object (the runbook code's
    `LOG.info(json.dumps({...}))`) is merged field by field; `extra={"fields": {...}}` adds fields."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
        if message.startswith("{"):
            try:
                parsed = json.loads(message)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                fields = {**parsed, **fields}
                message = str(parsed.get("message") or parsed.get("decision") or "")
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        fields.setdefault("logger", record.name)
        return json.dumps(self.shape.record(record.levelname, message, fields, at=record.created),
                          separators=(",", ":"), default=str)


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the sys.stdout of the moment (a test's capture, the runtime's stream)."""

    _logshape = True

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed or sys.stdout
        super().emit(record)


def install(shape: Shape, stream: TextIO | None = None) -> None:
    """Format every record of the root logger in `shape`. On Lambda the runtime's handler stays (it writes to
    the function's log stream with the request's frame) and only its formatter changes; elsewhere one handler
    of ours writes to stdout, as the runtime would. Idempotent and cheap: `Shape.bind` calls it per invocation,
    so functions imported into one process (tests) each log under their own name."""
    root = logging.getLogger()
    runtime = [h for h in root.handlers if type(h).__name__ == "LambdaLoggerHandler"]
    ours = [h for h in root.handlers if getattr(h, "_logshape", False)]
    if runtime:
        targets = runtime
    elif ours and stream is None:
        targets = ours[:1]
    else:
        for h in ours:
            root.removeHandler(h)
        targets = [_Stdout(stream)]
        root.addHandler(targets[0])
    for h in targets:
        if not (isinstance(h.formatter, JsonFormatter) and h.formatter.shape is shape):
            h.setFormatter(JsonFormatter(shape))
    if root.level != logging.INFO:
        root.setLevel(logging.INFO)


def configure(service: str, *, stream: TextIO | None = None, baked: Path | None = None) -> Shape:
    """The shape of `service` (its redaction from the environment or the baked file), installed."""
    shape = Shape(service, redactor_from(baked=baked))
    install(shape, stream)
    return shape
