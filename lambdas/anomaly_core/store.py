"""S3 layout of the anomaly bucket, in one place (trainer writes, detector reads):

- models/<metric>/<trained_at>.json   Prophet model as JSON (prophet.serialize.model_to_json; never pickle)
- bands/<metric>/<YYYY-MM-DD>.json    one UTC day of the forecast band (ts, yhat, lower, upper on the 5-minute
                                      grid, plus one step of each neighbouring day) + the training metadata: a
                                      detector run reads the day of the point it scores (~15 kB), not 8 days
- bands/<metric>/latest.json          the whole 8-day band, as trainers before the day objects wrote it: read only
                                      when the day's object does not exist (a bucket trained before the change)
- state/<metric>.json                 detector state: confidence memory and the open anomaly episode
- state/notices/<metric>/<episode>.<event>.<attempt>.json   one notification claimed (created with
                                      If-None-Match: *, so a second claim of the same notice fails)
- state/notices/<metric>/<episode>.<event>.<attempt>.sent.json   written once the notice was published
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from .scoring import BandPoint


class StoreError(RuntimeError):
    """An object is missing or malformed."""


def model_key(metric: str, trained_at: str) -> str:
    return f"models/{metric}/{trained_at}.json"


def band_key(metric: str) -> str:
    return f"bands/{metric}/latest.json"


def band_day_key(metric: str, day: str) -> str:
    return f"bands/{metric}/{day}.json"


def day_of(ts: float) -> str:
    """The UTC day (YYYY-MM-DD) a band point belongs to."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def band_days(meta: dict[str, Any], rows: list[list[float]], step_s: float = 300.0) -> dict[str, dict[str, Any]]:
    """The day objects of one band: per UTC day its rows plus one step on each side, so the nearest-point lookup
    (anomaly_core.scoring.lookup, within one step) finds a point near midnight in that one object."""
    out: dict[str, dict[str, Any]] = {}
    for day in sorted({day_of(r[0]) for r in rows}):
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        mine = [r for r in rows if start - step_s <= r[0] <= start + 86400]
        out[day] = {**meta, "day": day, "band": mine}
    return out


def state_key(metric: str) -> str:
    return f"state/{metric}.json"


def notice_key(metric: str, episode_id: str, event: str, attempt: int) -> str:
    return f"state/notices/{metric}/{episode_id}.{event}.{attempt}.json"


def put_json(s3: Any, bucket: str, key: str, doc: Any) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc, separators=(",", ":")).encode(),
                  ContentType="application/json")


def _error_code(e: Exception) -> str:
    response = getattr(e, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def put_json_if(s3: Any, bucket: str, key: str, doc: Any, etag: str | None) -> str:
    """Write `doc` only if the object is still the version read (ETag), or still absent (etag None).

    Returns the new ETag. StoreError on any failure, naming a lost race (PreconditionFailed) as such: two
    writers never both believe they saved.
    """
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
    try:
        resp = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **condition)
    except Exception as e:  # throttling, access denied, precondition: this metric is skipped and counted
        if _error_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise StoreError(f"s3://{bucket}/{key} changed since it was read (concurrent writer)") from e
        raise StoreError(f"writing s3://{bucket}/{key} failed: {e}") from e
    return str(resp.get("ETag", ""))


def claim(s3: Any, bucket: str, key: str, doc: Any) -> bool:
    """Create `key` if it does not exist: True when this call created it, False when it already existed."""
    try:
        put_json_if(s3, bucket, key, doc, None)
    except StoreError as e:
        if "concurrent writer" in str(e):
            return False
        raise
    return True


# A claim without its sent mark older than this was left by a run that ended between claiming and publishing (the
# detector's timeout is 60 s): the notice is taken over and published, so a run that dies there loses no notice.
NOTICE_LEASE_S = 120


def sent_key(claim_key: str) -> str:
    return claim_key.removesuffix(".json") + ".sent.json"


def claim_notice(s3: Any, bucket: str, key: str, doc: dict[str, Any], now: float) -> str:
    """"mine" when this run holds the notice's claim (it created it, or took over one left unsent past
    NOTICE_LEASE_S), "sent" when it was published already, "in-flight" when another run claimed it within the lease.
    A claim of a detector before the sent marks (no `claimed_at`) counts as sent, as it did then."""
    if claim(s3, bucket, key, {**doc, "claimed_at": now}):
        return "mine"
    if get_json(s3, bucket, sent_key(key)) is not None:
        return "sent"
    raw, etag = get_json_tagged(s3, bucket, key)
    claimed_at = raw.get("claimed_at") if isinstance(raw, dict) else None
    if not isinstance(claimed_at, int | float) or isinstance(claimed_at, bool):
        return "sent"
    if now - claimed_at < NOTICE_LEASE_S:
        return "in-flight"
    try:
        put_json_if(s3, bucket, key, {**doc, "claimed_at": now}, etag)
    except StoreError as e:
        if "concurrent writer" in str(e):  # another run took it over first
            return "in-flight"
        raise
    return "mine"


def get_json_tagged(s3: Any, bucket: str, key: str) -> tuple[Any | None, str | None]:
    """(parsed object, ETag), or (None, None) when it does not exist; StoreError otherwise."""
    try:
        resp = s3.get_object(Bucket=bucket, Key=key)
        body = resp["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None, None
    except Exception as e:
        raise StoreError(f"reading s3://{bucket}/{key} failed: {e}") from e
    try:
        return json.loads(body), str(resp.get("ETag", ""))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"s3://{bucket}/{key} is not valid JSON: {e}") from e


def get_json(s3: Any, bucket: str, key: str) -> Any | None:
    """The parsed object, or None when it does not exist."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    except Exception as e:  # AccessDenied, throttling, network: this metric is skipped and counted, never a crash
        raise StoreError(f"reading s3://{bucket}/{key} failed: {e}") from e
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"s3://{bucket}/{key} is not valid JSON: {e}") from e


def parse_band(doc: Any, key: str) -> tuple[dict[str, Any], list[BandPoint]]:
    """(metadata, band points) of a band document; StoreError naming what is wrong."""
    if not isinstance(doc, dict) or not isinstance(doc.get("band"), list):
        raise StoreError(f"{key}: not a band document (no 'band' list)")
    try:
        points = [BandPoint(float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in doc["band"]]
        trained_at = float(doc["trained_at_epoch"])
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
        raise StoreError(f"{key}: malformed band document ({e})") from e
    if not math.isfinite(trained_at):
        raise StoreError(f"{key}: trained_at_epoch must be a finite number, got {trained_at}")
    # A non-finite row (NaN from a bad fit) is left out: that timestamp then has no band and is skipped.
    points = [p for p in points if all(math.isfinite(x) for x in (p.ts, p.yhat, p.lower, p.upper))
              and p.lower <= p.upper]
    meta = {k: v for k, v in doc.items() if k != "band"}
    if not isinstance(meta.get("seed_residuals", []), list):
        raise StoreError(f"{key}: seed_residuals must be a list")
    return meta, sorted(points, key=lambda p: p.ts)
