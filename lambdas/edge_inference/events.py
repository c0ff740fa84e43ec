"""CloudFront origin-request events in, generated responses out (Lambda@Edge event structure).

Every way a request can be wrong for POST /embed becomes a `ClientError` with a status and a reason that says
what is wrong and what is allowed. An event that is not a CloudFront request at all (or a trigger configured
without the body) is our fault, not the caller's: `BadEvent`, answered 5xx.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

EMBED_PATH = "/embed"
MAX_TEXT_CHARS = 100_000  # far above 256 tokens; the encoder tokenizes only a prefix (model.py), so this bounds
# the body's decoding and validation, not the tokenizer's work


# Whatever a client sends, its echo stays small: a generated response (headers + body) is limited to 1 MB by
# CloudFront (AWS "Quotas on Lambda@Edge") and the EMF line that carries the reason to 1 MB by CloudWatch Logs.
MAX_REASON_CHARS = 300
MAX_ECHO_CHARS = 40


def echo(value: str) -> str:
    """A client-supplied string as it may appear in a reason: repr'd and cut to MAX_ECHO_CHARS."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS - 4] + "...'"


class ClientError(Exception):
    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 3] + "..."
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


class BadEvent(Exception):
    """The event is not a CloudFront origin-request with its body: a deployment fault."""


@dataclass(frozen=True)
class EdgeRequest:
    method: str
    uri: str
    headers: dict[str, str]  # lower-case name -> first value
    body: dict[str, Any] | None
    request_id: str


def parse_event(event: Any) -> EdgeRequest:
    try:
        record = event["Records"][0]["cf"]
        request = record["request"]
        headers = {name.lower(): str(values[0]["value"]) for name, values in request.get("headers", {}).items()
                   if values}
        return EdgeRequest(method=str(request["method"]), uri=str(request["uri"]), headers=headers,
                           body=request.get("body"), request_id=str(record.get("config", {}).get("requestId", "")))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise BadEvent(f"not a CloudFront request event ({type(exc).__name__})") from exc


def read_text(req: EdgeRequest) -> str:
    """The `text` of a valid POST /embed request; ClientError otherwise."""
    if req.uri != EMBED_PATH:
        raise ClientError(404, f"unknown path {echo(req.uri)}; this function serves POST {EMBED_PATH}")
    if req.method != "POST":
        raise ClientError(405, f"method {echo(req.method)} is not allowed on {EMBED_PATH}; use POST",
                          {"allow": "POST"})
    ctype = req.headers.get("content-type")
    if ctype is not None and ctype.split(";")[0].strip().lower() != "application/json":
        raise ClientError(415, f"content-type {echo(ctype)} is not supported; send application/json")
    if not isinstance(req.body, dict):
        raise BadEvent("request body not included: enable 'include body' on the origin-request association")
    if req.body.get("inputTruncated"):
        raise ClientError(413, "request body too large: CloudFront truncated it (limit 1 MB); send less text")
    data = req.body.get("data", "")
    if not isinstance(data, str):
        raise BadEvent("body.data is not a string")
    if req.body.get("encoding", "base64") == "base64":
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:  # CloudFront always encodes the body: not the caller's doing
            raise BadEvent("body.data is not valid base64") from exc
    else:
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates cannot come from a real UTF-8 body
            raise BadEvent("body.data (encoding text) is not valid UTF-8") from exc
    if not raw.strip():
        raise ClientError(400, 'empty body; send a JSON object {"text": "..."}')
    try:
        payload = json.loads(raw)
    except RecursionError as exc:  # e.g. 1,000 nested '[': the parser's depth limit, the caller's doing
        raise ClientError(400, 'body nests too deeply; send a flat JSON object {"text": "..."}') from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(400, f'body is not valid JSON ({type(exc).__name__}); send {{"text": "..."}}') from exc
    if not isinstance(payload, dict):
        raise ClientError(400, f'body must be a JSON object {{"text": "..."}}, got {type(payload).__name__}')
    unknown = sorted(set(payload) - {"text"})
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ClientError(400, f"unknown field(s) {', '.join(map(echo, unknown[:5]))}{more}; allowed: 'text'")
    if "text" not in payload:
        raise ClientError(400, "missing field 'text' (a non-empty string)")
    text = payload["text"]
    if not isinstance(text, str):
        raise ClientError(400, f"field 'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ClientError(400, "field 'text' is empty; send a non-empty string")
    bad = _unpaired_surrogate(text)
    if bad is not None:  # JSON may escape them ("\\ud800"); they are not text and the tokenizer refuses them
        raise ClientError(400, f"field 'text' holds an unpaired surrogate (U+{ord(text[bad]):04X}) at index {bad}; "
                               "send valid Unicode text")
    if len(text) > MAX_TEXT_CHARS:
        raise ClientError(413, f"field 'text' has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted "
                               "(only the first 256 tokens are embedded)")
    return text


def _unpaired_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate code point, or None when `text` is valid Unicode (cheap: one encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return None


def float_array_json(values: Sequence[float]) -> str:
    """A JSON array of float32 values, 9 significant digits each: exactly the same float32 values read back.

    One `%` format for the whole array: json.dumps spends ~0.6 us per float finding the shortest repr of each
    (a float32 widened to a double needs up to 17 digits): 220 -> 110 us for 384 values, and 35% fewer bytes."""
    fmt = _FLOAT_ARRAYS.get(len(values))
    if fmt is None:
        fmt = _FLOAT_ARRAYS[len(values)] = "[" + ",".join(["%.9g"] * len(values)) + "]"
    return fmt % tuple(values)


_FLOAT_ARRAYS: dict[int, str] = {}  # the format string per array length (one length in practice: 384)


def response(status: int, body: dict[str, Any], trace_header: str,
             extra_headers: dict[str, str] | None = None, raw_json: dict[str, str] | None = None) -> dict[str, Any]:
    """A CloudFront generated response (origin-request: body up to 1 MB).

    `raw_json` holds fields already encoded as JSON (the embedding, from `float_array_json`), appended as they are."""
    headers = {"content-type": "application/json", "cache-control": "no-store", "x-amzn-trace-id": trace_header,
               **(extra_headers or {})}
    text = json.dumps(body, separators=(",", ":"))
    if raw_json:
        fields = ",".join(f"{json.dumps(name)}:{value}" for name, value in raw_json.items())
        text = f"{text[:-1]}{',' if body else ''}{fields}}}"
    return {
        "status": str(status),
        "statusDescription": _REASONS.get(status, "Error"),
        "headers": {name: [{"key": _canonical(name), "value": value}] for name, value in headers.items()},
        "body": text,
        "bodyEncoding": "text",
    }


def _canonical(name: str) -> str:
    special = {"x-amzn-trace-id": "X-Amzn-Trace-Id"}
    return special.get(name, "-".join(part.capitalize() for part in name.split("-")))


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
            415: "Unsupported Media Type", 500: "Internal Server Error", 503: "Service Unavailable"}
