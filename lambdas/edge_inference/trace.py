"""X-Ray trace header propagation (Lambda@Edge cannot run active tracing: only the header travels).

Format: `Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=0|1` (AWS X-Ray Developer Guide, "Tracing
header", https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html). A valid incoming header keeps its
Root and Sampled decision and gets this hop's id as Parent; a missing or malformed one is replaced by a new trace
(a malformed header is never echoed back).
"""

from __future__ import annotations

import os
import re
import time

HEADER = "x-amzn-trace-id"
_ROOT = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
_SAMPLED = {"0", "1", "?"}


def _hex(n_bytes: int) -> str:
    return os.urandom(n_bytes).hex()


def new_root(now: float | None = None) -> str:
    return f"1-{int(now if now is not None else time.time()) & 0xFFFFFFFF:08x}-{_hex(12)}"


def parse(value: str | None) -> dict[str, str] | None:
    """The header's fields when its Root is well formed, else None."""
    if not value or len(value) > 512:
        return None
    fields: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[key.strip()] = val.strip()
    if not _ROOT.match(fields.get("Root", "")):
        return None
    if "Sampled" in fields and fields["Sampled"] not in _SAMPLED:
        return None
    return fields


def propagate(incoming: str | None) -> str:
    """The header this hop passes on: same Root (or a new one), a fresh Parent id, the Sampled decision."""
    fields = parse(incoming)
    root = fields["Root"] if fields else new_root()
    sampled = fields.get("Sampled", "1") if fields else "1"
    if sampled == "?":
        sampled = "1"
    return f"Root={root};Parent={_hex(8)};Sampled={sampled}"
