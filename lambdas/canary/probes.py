"""The checks of the synthetic probe, standard library only (the Synthetics runtime brings no requests).

Each check returns a `Check`; `run()` writes one EMF record per check (namespace `AkiDB/Synthetics`, dimension
`Check`, metrics `Success` 0/1 and `Latency` ms) so the user-perspective availability SLI and its alarms read
per-check metrics in the probe's region, then raises `CanaryFailure` naming every failed check: a raised
exception is what marks a Synthetics run as failed (CloudWatchSynthetics `SuccessPercent`).
"""

from __future__ import annotations

import http.client
import json
import math
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "AkiDB/Synthetics"
DIMENSION = "Check"
METRICS = (("Success", "Count"), ("Latency", "Milliseconds"))
EMBED_CHECK = "embed"
TRACE_HEADER = "X-Amzn-Trace-Id"
_ROOT = re.compile(r"Root=(1-[0-9a-f]{8}-[0-9a-f]{24})")
_MAX_BODY = 1 << 20


class CanaryFailure(Exception):
    """At least one check failed; the message lists each failed check and why."""


class SettingsError(ValueError):
    """The canary's settings are unusable (named field, what is allowed)."""


@dataclass(frozen=True)
class ProbeSettings:
    canary: str
    edge_url: str | None
    rest_url: str | None
    health_paths: tuple[str, ...]
    embed_text: str
    embed_dimensions: int
    max_latency_ms: float
    request_timeout_s: float

    @staticmethod
    def from_json(text: str) -> ProbeSettings:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise SettingsError(f"CANARY_SETTINGS is not JSON ({err}); expected an object") from err
        if not isinstance(raw, dict):
            raise SettingsError("CANARY_SETTINGS must be a JSON object")
        required: dict[str, type | tuple[type, ...]] = {
            "canary": str, "embed_text": str, "embed_dimensions": int, "max_latency_ms": (int, float),
            "request_timeout_s": (int, float)}
        for key, tp in required.items():
            if not isinstance(raw.get(key), tp):
                raise SettingsError(f"CANARY_SETTINGS.{key} = {raw.get(key)!r}: expected {tp}")
        for key in ("edge_url", "rest_url"):
            value = raw.get(key)
            if value is not None and not (isinstance(value, str) and value.startswith(("https://", "http://"))):
                raise SettingsError(f"CANARY_SETTINGS.{key} = {value!r}: expected an http(s) URL or null")
        paths = raw.get("health_paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise SettingsError(f"CANARY_SETTINGS.health_paths = {paths!r}: expected a list of paths starting with /")
        if not raw.get("edge_url") and not raw.get("rest_url"):
            raise SettingsError("CANARY_SETTINGS: neither edge_url nor rest_url is set; nothing to probe")
        return ProbeSettings(canary=raw["canary"], edge_url=raw.get("edge_url"), rest_url=raw.get("rest_url"),
                             health_paths=tuple(paths), embed_text=raw["embed_text"],
                             embed_dimensions=raw["embed_dimensions"], max_latency_ms=float(raw["max_latency_ms"]),
                             request_timeout_s=float(raw["request_timeout_s"]))


@dataclass
class Check:
    name: str
    ok: bool
    latency_ms: float
    status: int | None = None
    problems: list[str] = field(default_factory=list)


def new_trace_header() -> tuple[str, str]:
    """A fresh sampled X-Ray trace header and its root (the edge must keep that root)."""
    root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    return f"Root={root};Parent={secrets.token_hex(8)};Sampled=1", root


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A probe judges the endpoint it was given: a redirect (to a login or error page answering 200) is the
    endpoint's answer, not something to follow."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _request(url: str, method: str, body: bytes | None, headers: dict[str, str],
             timeout: float) -> tuple[int | None, dict[str, str], bytes, float, str | None]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    started = time.perf_counter()
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            data = resp.read(_MAX_BODY)
            status, resp_headers = resp.status, dict(resp.headers.items())
    except urllib.error.HTTPError as err:  # 3xx (not followed), 4xx, 5xx: an answer, judged by its status
        try:
            data = err.read(_MAX_BODY)
        except (http.client.HTTPException, OSError):
            data = b""
        status, resp_headers = err.code, dict(err.headers.items()) if err.headers else {}
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        return None, {}, b"", (time.perf_counter() - started) * 1000, f"no response: {err}"
    except (http.client.HTTPException, ValueError) as err:  # bad status line, >100 headers, broken chunking
        return None, {}, b"", (time.perf_counter() - started) * 1000, \
            f"malformed response: {type(err).__name__}: {str(err)[:200]}"
    return status, resp_headers, data, (time.perf_counter() - started) * 1000, None


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _unexpected(status: int | None, headers: dict[str, str], data: bytes) -> str:
    where = _header(headers, "Location")
    moved = f", redirected to {where[:200]}" if where and status is not None and 300 <= status < 400 else ""
    return f"status {status}, expected 200{moved} ({data[:200].decode(errors='replace')})"


def check_embed(s: ProbeSettings) -> Check:
    """POST /embed: 200, `embedding` of `embed_dimensions` finite floats, in time, trace root kept."""
    assert s.edge_url is not None
    trace_header, root = new_trace_header()
    body = json.dumps({"text": s.embed_text}).encode()
    status, headers, data, ms, error = _request(
        s.edge_url.rstrip("/") + "/embed", "POST", body,
        {"Content-Type": "application/json", TRACE_HEADER: trace_header}, s.request_timeout_s)
    check = Check(EMBED_CHECK, ok=False, latency_ms=ms, status=status)
    if error:
        check.problems.append(error)
        return check
    if status != 200:
        check.problems.append(_unexpected(status, headers, data))
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        doc = None
    vector = doc.get("embedding") if isinstance(doc, dict) else None
    if not isinstance(vector, list):
        check.problems.append("response has no 'embedding' list")
    else:
        if len(vector) != s.embed_dimensions:
            check.problems.append(f"embedding has {len(vector)} values, expected {s.embed_dimensions}")
        if not all(isinstance(v, float | int) and not isinstance(v, bool) and math.isfinite(v) for v in vector):
            check.problems.append("embedding holds values that are not finite numbers")
    returned = _header(headers, TRACE_HEADER)
    m = _ROOT.search(returned or "")
    if m is None:
        check.problems.append(f"no valid {TRACE_HEADER} in the response")
    elif m.group(1) != root:
        check.problems.append(f"{TRACE_HEADER} root {m.group(1)} is not the one sent ({root})")
    if ms > s.max_latency_ms:
        check.problems.append(f"took {ms:.0f} ms, limit {s.max_latency_ms:.0f} ms")
    check.ok = not check.problems
    return check


def health_check_name(path: str) -> str:
    """`Check` value of a health endpoint: /health/ready -> health-ready."""
    return path.strip("/").replace("/", "-") or "root"


def check_health(s: ProbeSettings, path: str) -> Check:
    assert s.rest_url is not None
    status, headers, data, ms, error = _request(s.rest_url.rstrip("/") + path, "GET", None, {},
                                                s.request_timeout_s)
    check = Check(health_check_name(path), ok=False, latency_ms=ms, status=status)
    if error:
        check.problems.append(error)
    elif status != 200:
        check.problems.append(_unexpected(status, headers, data))
    if ms > s.max_latency_ms:
        check.problems.append(f"took {ms:.0f} ms, limit {s.max_latency_ms:.0f} ms")
    check.ok = not check.problems
    return check


def emf_record(check: Check, canary: str, now_ms: int) -> dict[str, Any]:
    return {
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": [[DIMENSION]],
            "Metrics": [{"Name": n, "Unit": u} for n, u in METRICS]}]},
        DIMENSION: check.name, "Canary": canary, "Status": check.status,
        "Success": 1 if check.ok else 0, "Latency": round(check.latency_ms, 1),
        "Problems": check.problems,
    }


def check_names(s: ProbeSettings) -> list[str]:
    """The `Check` dimension values this canary publishes (infra reads them for alarms and dashboards)."""
    return ([EMBED_CHECK] if s.edge_url else []) + ([health_check_name(p) for p in s.health_paths]
                                                    if s.rest_url else [])


def _guarded(name: str, probe: Callable[[], Check]) -> Check:
    """A check that always yields its metrics: a fault of the probe itself (whatever the endpoint sent) is a
    failed check with the reason, never an exception that leaves the check's series without a datapoint (the
    missing-data alarms of every healthy check would then fire)."""
    started = time.perf_counter()
    try:
        return probe()
    except Exception as err:  # any fault still reports this check
        return Check(name, ok=False, latency_ms=(time.perf_counter() - started) * 1000,
                     problems=[f"probe error: {type(err).__name__}: {str(err)[:200]}"])


def run(s: ProbeSettings, emit: Callable[[str], None]) -> list[Check]:
    checks: list[Check] = []
    if s.edge_url:
        checks.append(_guarded(EMBED_CHECK, lambda: check_embed(s)))
    if s.rest_url:
        checks.extend(_guarded(health_check_name(p), lambda p=p: check_health(s, p))  # type: ignore[misc]
                      for p in s.health_paths)
    now_ms = int(time.time() * 1000)
    for c in checks:
        emit(json.dumps(emf_record(c, s.canary, now_ms), separators=(",", ":")))
    failed = [c for c in checks if not c.ok]
    if failed:
        raise CanaryFailure("; ".join(f"{c.name}: {', '.join(c.problems)}" for c in failed))
    return checks
