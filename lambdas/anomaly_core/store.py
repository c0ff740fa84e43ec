"""S3 layout of the anomaly bucket, in one place (trainer writes, detector reads):

- models/<metric>/<trained_at>.json   Prophet model as JSON (prophet.serialize.model_to_json; never pickle)
- bands/<metric>/latest.json          forecast band (ts, yhat, lower, upper on the 5-minute grid) + metadata
- state/<metric>.json                 detector state: confidence memory and the open anomaly episode
"""

from __future__ import annotations

import json
from typing import Any

from .scoring import BandPoint


class StoreError(RuntimeError):
    """An object is missing or malformed."""


def model_key(metric: str, trained_at: str) -> str:
    return f"models/{metric}/{trained_at}.json"


def band_key(metric: str) -> str:
    return f"bands/{metric}/latest.json"


def state_key(metric: str) -> str:
    return f"state/{metric}.json"


def put_json(s3: Any, bucket: str, key: str, doc: Any) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc, separators=(",", ":")).encode(),
                  ContentType="application/json")


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
    except json.JSONDecodeError as e:
        raise StoreError(f"s3://{bucket}/{key} is not valid JSON: {e}") from e


def parse_band(doc: Any, key: str) -> tuple[dict[str, Any], list[BandPoint]]:
    """(metadata, band points) of a band document; StoreError naming what is wrong."""
    if not isinstance(doc, dict) or not isinstance(doc.get("band"), list):
        raise StoreError(f"{key}: not a band document (no 'band' list)")
    try:
        points = [BandPoint(float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in doc["band"]]
        float(doc["trained_at_epoch"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise StoreError(f"{key}: malformed band document ({e})") from e
    meta = {k: v for k, v in doc.items() if k != "band"}
    if not isinstance(meta.get("seed_residuals", []), list):
        raise StoreError(f"{key}: seed_residuals must be a list")
    return meta, sorted(points, key=lambda p: p.ts)
