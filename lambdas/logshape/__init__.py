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

Standard library only, and without `logging` (logshape.stdlib formats the logging module's records for the
functions that use it): the edge function writes its lines itself and keeps its cold-start budget
(`make bench-edge` prints the cold-init split).
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",  # email (RFC 5322 atext)
    # No leading \b on the token patterns: a repr()'d message puts "\n" (a word character after the backslash)
    # right before them.
    r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+",  # Authorization: Bearer <token>
    r"(?:AKIA|ASIA)[A-Z0-9]{16}",  # AWS access key id
    r"v1=[0-9a-fA-F]{16,}",  # PagerDuty V3 webhook signature
    r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",  # JWT
    r"(?i)(?:whsec|\bsk|xox[abprs])[-_][A-Za-z0-9_-]{6,}",  # webhook secrets, API and chat tokens
)
FIELDS_ENV = "LOG_REDACT_FIELDS"
PATTERNS_ENV = "LOG_REDACT_PATTERNS"
BAKED_FILE = "logshape.json"
SHAPE = ("timestamp", "level", "service", "function", "request_id", "trace_id", "incident_id", "episode_id",
         "message")
MAX_DEPTH = 8  # nested values deeper than this are replaced: a log line never recurses without bound
# Redacted short strings remembered per Redactor: most strings of a line recur on every line (an EMF document's
# metric and dimension names, levels, services), and scrubbing each against every pattern was ~40% of the edge
# function's own work per request (cProfile, issue 29). Bounded in entries and length; cleared when full.
_MEMO_ENTRIES = 2048
_MEMO_CHARS = 256


class RedactionConfigError(ValueError):
    """LOG_REDACT_FIELDS / LOG_REDACT_PATTERNS (or the baked file) hold something unusable."""


@functools.lru_cache(maxsize=4096)  # field names recur on every line (see _MEMO_ENTRIES)
def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _compile(pattern: str, source: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RedactionConfigError(f"{source}: redaction pattern {pattern!r} is not a regular expression "
                                   f"({exc}); give Python regular expressions") from exc


class Redactor:
    def __init__(self, fields: Iterable[str] = (), patterns: Iterable[str] = (),
                 source: str = PATTERNS_ENV) -> None:
        self.fields = frozenset(_norm(f) for f in (*DEFAULT_FIELDS, *fields))
        self.patterns = tuple(_compile(p, source) for p in (*DEFAULT_PATTERNS, *patterns))
        self._memo: dict[str, str] = {}

    def text(self, value: str) -> str:
        done = self._memo.get(value)
        if done is not None:
            return done
        out = value
        for p in self.patterns:
            out = p.sub(REDACTED, out)
        if len(value) <= _MEMO_CHARS:
            if len(self._memo) >= _MEMO_ENTRIES:
                self._memo.clear()
            self._memo[value] = out
        return out

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
    return Redactor(fields, patterns, source=f"{PATTERNS_ENV} or {baked.name}" if baked else PATTERNS_ENV)


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
        self.function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", self.service)
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
