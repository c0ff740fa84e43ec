"""A PagerDuty V3 webhook delivery, checked before anything acts on it.

Order matters for cost: `looks_signed` is a pure shape check of the signature header, run before the secret is
fetched or any AWS client is used, so an unsigned flood costs microseconds per request. After the HMAC matched,
`parse` turns the signed body into a `Delivery` or raises `BadDelivery` naming the field and what is allowed (the
handler answers 400): a signed body can still be malformed (PagerDuty bug, a test delivery, a stolen secret).
Freshness and identity come only from the signed body (`event.id`, `event.occurred_at`), never from the unsigned
`X-Webhook-Id` header (PagerDuty "Verifying Signatures": the signature covers the raw body only,
https://developer.pagerduty.com/docs/verifying-webhook-signatures).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_BODY_BYTES = 256 * 1024  # PagerDuty's payloads are a few KB; a bound keeps HMAC and JSON cost fixed
MAX_SIGNATURE_HEADER = 1024
SIGNATURE = re.compile(r"v1=[0-9a-f]{64}")
EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
EVENT_TYPE = re.compile(r"[a-z_]{1,40}(\.[a-z_]{1,40}){1,3}")
INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class BadDelivery(ValueError):
    """A signed delivery that is malformed, stale or from the future: the reason says which field and why."""


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_type: str
    resource_type: str
    occurred_at: float  # epoch seconds
    data: dict[str, Any]


def looks_signed(header: str | None) -> bool:
    """At least one `v1=<64 lowercase hex>`: anything else cannot match, so it is refused before any AWS call."""
    if not header or len(header) > MAX_SIGNATURE_HEADER:
        return False
    return any(SIGNATURE.fullmatch(part.strip()) for part in header.split(","))


def parse_time(value: object, field: str) -> float:
    """ISO 8601 with a zone (PagerDuty writes `2026-11-23T10:00:00.000Z`; CloudWatch `...+0000`) -> epoch s."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise BadDelivery(f"{field} must be an ISO 8601 timestamp with a zone, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadDelivery(f"{field} must be an ISO 8601 timestamp with a zone, got {_show(value)}") from None
    if parsed.tzinfo is None:
        raise BadDelivery(f"{field} must carry a zone (Z or +hh:mm), got {_show(value)}")
    return parsed.timestamp()


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _string(ev: dict[str, Any], key: str, pattern: re.Pattern[str], allowed: str) -> str:
    value = ev.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadDelivery(f"event.{key} must be {allowed}, got {_show(value)}")
    return value


def parse(body: bytes, *, now: float, max_age_s: int, skew_s: int) -> Delivery:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        raise BadDelivery("body must be JSON: a PagerDuty V3 webhook {\"event\": {...}}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), dict):
        raise BadDelivery("body must be a PagerDuty V3 webhook: {\"event\": {\"id\", \"event_type\", "
                          "\"resource_type\", \"occurred_at\", \"data\": {...}}}")
    ev: dict[str, Any] = payload["event"]
    event_id = _string(ev, "id", EVENT_ID, "1-128 characters of [A-Za-z0-9_.:-]")
    event_type = _string(ev, "event_type", EVENT_TYPE, "a dotted type such as incident.triggered")
    resource_type = ev.get("resource_type", event_type.split(".", 1)[0])
    if not isinstance(resource_type, str) or not resource_type.isidentifier():
        raise BadDelivery(f"event.resource_type must be a word such as incident, got {_show(resource_type)}")
    occurred_at = parse_time(ev.get("occurred_at"), "event.occurred_at")
    if occurred_at < now - max_age_s:
        raise BadDelivery(f"event.occurred_at is {int(now - occurred_at)} s old: events older than {max_age_s} s "
                          "are refused (replay protection)")
    if occurred_at > now + skew_s:
        raise BadDelivery(f"event.occurred_at is {int(occurred_at - now)} s in the future: at most {skew_s} s of "
                          "clock skew is allowed")
    data = ev.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadDelivery(f"event.data must be an object, got {type(data).__name__}")
    if resource_type == "incident" and not (isinstance(data.get("id"), str) and INCIDENT_ID.fullmatch(data["id"])):
        raise BadDelivery(f"event.data.id must be the incident id (1-64 of [A-Za-z0-9_-]), got "
                          f"{_show(data.get('id'))}")
    return Delivery(event_id=event_id, event_type=event_type, resource_type=resource_type,
                    occurred_at=occurred_at, data=data)
