"""Read the log archive back (infra/components/logs.py): the restore path of the DR drill's part 3.

What Firehose writes for a CloudWatch Logs subscription: objects under `logs/YYYY/MM/DD/` holding the records as
they came, each record one gzip member of a JSON document {messageType, logGroup, logStream, logEvents: [{id,
timestamp, message}]} ("Using CloudWatch Logs subscription filters", Amazon CloudWatch Logs User Guide);
CONTROL_MESSAGE documents are CloudWatch's own reachability checks and carry no event.

`archived_events` reads them (optionally one log group, a time window); `replay` writes them into a log group of
their own (`/restored/<group>`) so that the saved Logs Insights queries run on them again; `archive_object` is
the same format, for the drill and the tests (moto runs no subscription).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

ARCHIVE_PREFIX = "logs/"
RESTORED_PREFIX = "/restored"
PUT_BATCH = 1000  # PutLogEvents: at most 10,000 events and 1 MB per call; 1000 short lines stay far below both


@dataclass(frozen=True)
class ArchivedEvent:
    log_group: str
    log_stream: str
    timestamp_ms: int
    message: str
    event_id: str


class ArchiveFormatError(ValueError):
    """An archive object is not what Firehose writes for CloudWatch Logs (names the object and what is wrong)."""


def _documents(key: str, data: bytes) -> Iterator[dict[str, Any]]:
    """The JSON documents of one object: gzip members one after the other, each one document (or several)."""
    rest = data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            text = d.decompress(rest) + d.flush()
        except zlib.error as exc:
            raise ArchiveFormatError(f"{key}: not gzip records of CloudWatch Logs ({exc})") from exc
        rest = d.unused_data
        decoder, pos, body = json.JSONDecoder(), 0, text.decode("utf-8")
        while pos < len(body):
            while pos < len(body) and body[pos].isspace():
                pos += 1
            if pos >= len(body):
                break
            try:
                doc, pos = decoder.raw_decode(body, pos)
            except ValueError as exc:
                raise ArchiveFormatError(f"{key}: a record is not JSON ({exc})") from exc
            if not isinstance(doc, dict):
                raise ArchiveFormatError(f"{key}: a record is not a JSON object")
            yield doc


def archived_events(s3: Any, bucket: str, *, log_group: str | None = None, since_ms: int = 0,
                    until_ms: int | None = None, prefix: str = ARCHIVE_PREFIX) -> list[ArchivedEvent]:
    """Every archived event (of `log_group`, in [since_ms, until_ms)), oldest first."""
    out: list[ArchivedEvent] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].startswith(f"{prefix}errors/"):
                continue  # Firehose's failed deliveries: what is there is retried by hand, not restored
            data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            for doc in _documents(obj["Key"], data):
                if doc.get("messageType") != "DATA_MESSAGE":
                    continue
                group = str(doc.get("logGroup"))
                if log_group is not None and group != log_group:
                    continue
                for ev in doc.get("logEvents") or []:
                    ts = int(ev["timestamp"])
                    if ts >= since_ms and (until_ms is None or ts < until_ms):
                        out.append(ArchivedEvent(group, str(doc.get("logStream")), ts, str(ev["message"]),
                                                 str(ev.get("id", ""))))
    return sorted(out, key=lambda e: (e.timestamp_ms, e.log_group, e.log_stream, e.event_id))


def restored_group(log_group: str) -> str:
    return f"{RESTORED_PREFIX}{log_group if log_group.startswith('/') else '/' + log_group}"


def replay(logs: Any, events: Iterable[ArchivedEvent], *, kms_key_id: str | None = None,
           retention_days: int = 7) -> dict[str, int]:
    """Write `events` into `/restored/<group>` (created with retention and the key: the plan's rules hold for it
    too), one stream per original stream; events per restored group."""
    counts: dict[str, int] = {}
    streams: dict[tuple[str, str], list[ArchivedEvent]] = {}
    for e in events:
        streams.setdefault((e.log_group, e.log_stream), []).append(e)
    for (group, stream), evs in sorted(streams.items()):
        target = restored_group(group)
        if target not in counts:
            existing = logs.describe_log_groups(logGroupNamePrefix=target).get("logGroups", [])
            if not any(g["logGroupName"] == target for g in existing):
                logs.create_log_group(logGroupName=target, **({"kmsKeyId": kms_key_id} if kms_key_id else {}))
                logs.put_retention_policy(logGroupName=target, retentionInDays=retention_days)
            counts[target] = 0
        logs.create_log_stream(logGroupName=target, logStreamName=stream)
        evs = sorted(evs, key=lambda e: e.timestamp_ms)
        for i in range(0, len(evs), PUT_BATCH):
            logs.put_log_events(logGroupName=target, logStreamName=stream, logEvents=[
                {"timestamp": e.timestamp_ms, "message": e.message} for e in evs[i:i + PUT_BATCH]])
        counts[target] += len(evs)
    return counts


def archive_object(log_group: str, log_stream: str, events: list[tuple[int, str]]) -> bytes:
    """One record as CloudWatch Logs sends it to Firehose (and Firehose stores it): a gzip JSON document."""
    doc = {"messageType": "DATA_MESSAGE", "owner": "111111111111", "logGroup": log_group, "logStream": log_stream,
           "subscriptionFilters": ["archive"],
           "logEvents": [{"id": str(i), "timestamp": ts, "message": msg} for i, (ts, msg) in enumerate(events)]}
    return gzip.compress(json.dumps(doc).encode(), mtime=0)
