"""How a setting is declared and reported: `setting()` with its constraints, the shared patterns, and the
problems a stack config can have (one line each, never a traceback)."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from infra.config.formats import AWS_REGIONS, FORMATS

PROJECT = "akidb-observability"

# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
# The real commercial regions (formats.AWS_REGIONS), as a pattern for code that checks with re.
AWS_REGION_PATTERN = "^(?:" + "|".join(re.escape(r) for r in AWS_REGIONS) + ")$"
# IAM: a role name is 1-64 characters after a path of at most 512; an OIDC provider URL at most 255.
ROLE_ARN_PATTERN = r"^arn:aws:iam::\d{12}:role/(?=[\w+=,.@/-]{1,576}$)(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
OIDC_PROVIDER_ARN_PATTERN = r"^arn:aws:iam::\d{12}:oidc-provider/(?=[\w./-]{1,255}$)[\w.-]+(/[\w.-]+)*$"
# An image reference pinned by tag (not latest) or digest.
# A tag can be moved to other bytes; only a digest pins what runs. `name[:tag]@sha256:<digest>`: the tag, when
# kept, is for the reader (the runtime pulls by digest).
PINNED_IMAGE_PATTERN = r"^[\w.-]+(:\d+)?(/[\w.-]+)+(:[\w][\w.-]{0,127})?@sha256:[0-9a-f]{64}$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    exclusive_maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
    pattern: str | None = None,
    min_items: int | None = None,
    format: str | None = None,
    key_format: str | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A config field with its constraints; `doc` is shown in error messages and docs/configuration.md.

    `pattern` must match the whole string (ASCII classes); `format` names a check of infra/config/formats.py (for
    a list: each item; for a map: each value), `key_format` one for each key of a map."""
    for name in (format, key_format):
        if name is not None and name not in FORMATS:
            raise ValueError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    meta = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "exclusive_maximum": exclusive_maximum,
        "choices": choices,
        "pattern": pattern,
        "min_items": min_items,
        "format": format,
        "key_format": key_format,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Problem:
    key: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        return f"{self.key} = {shown(self.value)}: {self.allowed}"


SHOWN_CHARS = 120


def shown(value: Any) -> str:
    """A value as JSON, cut to SHOWN_CHARS (a 100,000-character string must not become the error message)."""
    if value is ABSENT:
        return "<missing>"
    try:
        text = json.dumps(value, default=str)
    except (ValueError, RecursionError):
        text = repr(type(value))
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


class ConfigError(Exception):
    """Every problem of a stack config at once; printed one per line, never as a traceback."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Absent:
    def __repr__(self) -> str:
        return "<missing>"


ABSENT = _Absent()


def describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (list,):
        return f"a list of {describe(typing.get_args(tp)[0])}"
    if origin in (dict,):
        return f"a map of string to {describe(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        keys = ", ".join(camel(f.name) for f in dataclasses.fields(tp) if not f.metadata.get("internal"))
        return f"an object with keys {keys}"
    return str(tp)


def constraint_text(meta: Mapping[str, Any]) -> str:
    parts = []
    lo, hi = meta.get("minimum"), meta.get("maximum")
    xlo, xhi = meta.get("exclusive_minimum"), meta.get("exclusive_maximum")
    if lo is not None or xlo is not None or hi is not None or xhi is not None:
        left = f"[{lo}" if lo is not None else (f"({xlo}" if xlo is not None else "(-inf")
        right = f"{hi}]" if hi is not None else (f"{xhi})" if xhi is not None else "inf)")
        parts.append(f"in {left}, {right}")
    if meta.get("choices") is not None:
        parts.append("one of " + ", ".join(json.dumps(c) for c in meta["choices"]))
    if meta.get("pattern"):
        parts.append(f"matching {meta['pattern']}")
    if meta.get("key_format"):
        parts.append(f"keys: {FORMATS[meta['key_format']].doc}")
    if meta.get("format"):
        parts.append(("values: " if meta.get("key_format") else "") + FORMATS[meta["format"]].doc)
    return " ".join(parts)
