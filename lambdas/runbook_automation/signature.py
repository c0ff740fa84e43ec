"""PagerDuty V3 webhook signatures: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of the raw body
with the subscription's secret. Several v1 values appear while a secret is rotated: any one may match."""

from __future__ import annotations

import hashlib
import hmac


def expected(secret: bytes, body: bytes) -> str:
    return "v1=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time comparison against every v1 signature in the header; anything malformed is False."""
    if not header or not secret:
        return False
    want = expected(secret, body).encode()
    ok = False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("v1="):
            # compare_digest on every candidate (no early exit) keeps the time independent of which matched.
            ok = hmac.compare_digest(want, candidate.encode()) or ok
    return ok
