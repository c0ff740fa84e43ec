"""PagerDuty V3 webhooks -> runbooks and the incident timeline.

`handler` (API Gateway HTTP API, payload 2.0), cheapest check first: a signature header that cannot match is
refused (401) before the secret is read or any AWS call is made, so unsigned floods stay cheap; then the HMAC
(401), then the signed body (delivery.py: 400 naming the field when malformed, stale or from the future). The
delivery is deduplicated on the signed `event.id` with a claim (a DynamoDB conditional put) that is marked
`queued` only after the job reached SQS and deleted if queueing failed, so PagerDuty's retry runs it; a claim
left `pending` by a crashed invocation expires after CLAIM_LEASE_S (a retry may then queue the event a second
time: the worker's ledger, keyed by the same event id, does its steps once). Every incident lifecycle event is
queued for the timeline (timeline.py); `incident.triggered` also carries the runbook named in the incident title
(`[runbook:<id>]`, written there by the Alertmanager config). A validly signed page is never answered 4xx: a
runbook the catalogue marks manual, or an id it does not know, answers 200 "no-automation" (audited once, the
unknown id as such) and a person follows the page. The answer comes in milliseconds. `worker` (SQS) records
the timeline, publishes the receiver's decision and runs the runbook with its guardrails, each once
(ledger.py). The webhook secret is read from Secrets Manager once per container, never from the environment.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from . import settings as settings_mod
from . import timeline
from .audit import LOG, SHAPE, Audit
from .delivery import MAX_BODY_BYTES, BadDelivery, Delivery, looks_signed, parse
from .ledger import BOTO_CONFIG, Ledger, OutOfTime, unbounded_time
from .runbook_ids import MANUAL_RUNBOOK_IDS
from .runbooks import RUNBOOKS, Deps, Job, audit_once, run
from .signature import verify

RUNBOOK_TOKEN = re.compile(r"\[runbook:([a-z0-9][a-z0-9-]{0,62})\]")
# Longer than the freshness window (settings.max_event_age_s <= 1 day): a replay is either a duplicate or stale.
DEDUPE_TTL_S = 7 * 86400
CLAIM_LEASE_S = 60  # > the receiver's timeout (4 s): a pending claim this old belongs to a dead invocation
KIND_INCIDENT_EVENT = "incident-event"
# Keys the worker sets on a decision's audit entry itself (or Audit.record's own parameters).
RESERVED_AUDIT_KEYS = frozenset({"decision", "event_id", "dry_run", "notice_id", "self"})
_state: dict[str, Any] = {}


def _reset() -> None:
    """Forget cached settings, clients and secret (tests; a new container)."""
    _state.clear()


def _init() -> dict[str, Any]:
    if not _state:
        s = settings_mod.load()
        _state.update(settings=s, **{name: boto3.client(name, config=BOTO_CONFIG)  # bounded calls (ledger.py)
                                     for name in ("sns", "dynamodb", "sqs", "autoscaling", "cloudwatch")})
        _state["audit"] = Audit(_state["sns"], s.audit_topic_arn, s.environment)
    return _state


def _secret(st: dict[str, Any]) -> bytes:
    if "secret" not in st:
        sm = boto3.client("secretsmanager")
        st["secret"] = sm.get_secret_value(SecretId=st["settings"].secret_id)["SecretString"].encode()
    return bytes(st["secret"])


def _response(code: int, **body: Any) -> dict[str, Any]:
    return {"statusCode": code, "headers": {"content-type": "application/json"},
            "body": json.dumps(body, sort_keys=True)}


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise ValueError("body is not text")
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8")


def _headers(event: dict[str, Any]) -> dict[str, str]:
    raw = event.get("headers")
    return {str(k).lower(): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _unauthenticated(event: dict[str, Any]) -> dict[str, Any]:
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    LOG.warning(json.dumps({"decision": "unauthenticated",
                            "source_ip": http.get("sourceIp") if isinstance(http, dict) else None}))
    return _response(401, error="missing or invalid X-PagerDuty-Signature")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    SHAPE.bind(context)
    if not isinstance(event, dict):
        return _response(400, error="not an API Gateway HTTP API (payload 2.0) event")
    headers = _headers(event)
    signature = headers.get("x-pagerduty-signature")
    if not looks_signed(signature):  # no secret, no client, no AWS call for what cannot match
        return _unauthenticated(event)
    try:
        body = _raw_body(event)
    except (binascii.Error, ValueError):
        return _response(400, error="body is not valid base64 (isBase64Encoded) or not text")
    if len(body) > MAX_BODY_BYTES:
        return _response(413, error=f"body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    st = _init()
    s = st["settings"]
    if not verify(_secret(st), body, signature):
        return _unauthenticated(event)
    try:
        delivery = parse(body, now=time.time(), max_age_s=s.max_event_age_s, skew_s=s.clock_skew_s)
    except BadDelivery as e:
        LOG.warning(json.dumps({"decision": "malformed", "reason": str(e)}))
        return _response(400, error=str(e))
    if delivery.resource_type != "incident":
        return _response(202, status="ignored", reason=f"event type {delivery.event_type} runs no runbook")
    job, code, answer, audit_entry = _decide(delivery)
    # The decision's audit entry travels with the event: the worker publishes it once (its ledger), so neither a
    # receiver that dies after queueing nor a retry that queues the event again can lose or repeat it.
    message = {"kind": KIND_INCIDENT_EVENT, "event": timeline.timeline_event(delivery),
               "job": job.__dict__ if job else None, "audit": audit_entry}
    claim = _claim(st, delivery.event_id)
    if claim is None:
        LOG.info(json.dumps({"decision": "duplicate", "event_id": delivery.event_id}))
        return _response(200, status="duplicate", event_id=delivery.event_id)
    try:
        st["sqs"].send_message(QueueUrl=s.queue_url, MessageBody=json.dumps(message, sort_keys=True))
    except (ClientError, BotoCoreError) as e:
        _release(st, delivery.event_id, claim)
        LOG.error(json.dumps({"decision": "queue-failed", "event_id": delivery.event_id, "error": str(e)}))
        return _response(503, error="could not queue the event; the claim was released, retry")
    _mark_queued(st, delivery.event_id, claim)
    if job is not None:
        answer["dry_run"] = s.dry_run
    return _response(code, **answer)


def _decide(d: Delivery) -> tuple[Job | None, int, dict[str, Any], dict[str, Any] | None]:
    """For an `incident.triggered`: the runbook job its title names (if known), the answer (code, body) and the
    audit entry the worker publishes once (ledger step `decision` of the signed event)."""
    if d.event_type != "incident.triggered":
        return None, 202, {"status": "recorded", "reason": f"event type {d.event_type} runs no runbook"}, None
    data, incident = d.data, d.data["id"]
    title = str(data.get("title", ""))[:1024]
    match = RUNBOOK_TOKEN.search(title)
    if not match:
        return None, 202, {"status": "ignored", "reason": "the incident title names no [runbook:<id>]"}, \
            {"decision": "ignored", "reason": "incident names no runbook", "incident": incident}
    runbook = match.group(1)
    # Never 4xx on a signed page: PagerDuty would retry it and then disable the subscription, and the manual
    # runbooks (service-down above all) are pages a person handles. Unknown ids are audited as such (a catalogue
    # or alert definition out of step), still answered 200 so the delivery is not retried for nothing.
    if runbook in MANUAL_RUNBOOK_IDS:
        return None, 200, {"status": "no-automation", "runbook": runbook}, \
            {"decision": "no-automation", "runbook": runbook, "incident": incident}
    if runbook not in RUNBOOKS:
        return None, 200, {"status": "no-automation", "runbook": runbook,
                           "reason": f"unknown runbook {runbook!r}; automated: {', '.join(sorted(RUNBOOKS))}"}, \
            {"decision": "unknown-runbook", "reason": f"unknown runbook {runbook!r}", "runbook": runbook,
             "incident": incident}
    job = Job(runbook=runbook, incident_id=str(incident), title=title, webhook_id=d.event_id,
              urgency=str(data.get("urgency", ""))[:20], html_url=str(data.get("html_url", ""))[:500])
    return job, 202, {"status": "accepted", "runbook": runbook}, \
        {"decision": "accepted", "runbook": runbook, "incident": incident}


def _claim(st: dict[str, Any], event_id: str) -> str | None:
    """A pending claim on the signed event id, or None when another delivery holds or has queued it."""
    s, now, token = st["settings"], int(time.time()), uuid.uuid4().hex
    try:
        st["dynamodb"].put_item(
            TableName=s.table_name,
            Item={"pk": {"S": f"event#{event_id}"}, "status": {"S": "pending"}, "claim": {"S": token},
                  "claimed_at": {"N": str(now)}, "expires_at": {"N": str(now + DEDUPE_TTL_S)}},
            ConditionExpression="attribute_not_exists(pk) OR (#s = :pending AND claimed_at < :stale)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":pending": {"S": "pending"}, ":stale": {"N": str(now - CLAIM_LEASE_S)}})
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise
    return token


def _release(st: dict[str, Any], event_id: str, token: str) -> None:
    """Undo our claim (only ours: the condition) so that PagerDuty's retry is not taken for a duplicate."""
    try:
        st["dynamodb"].delete_item(TableName=st["settings"].table_name, Key={"pk": {"S": f"event#{event_id}"}},
                                   ConditionExpression="claim = :mine",
                                   ExpressionAttributeValues={":mine": {"S": token}})
    except (ClientError, BotoCoreError) as e:  # the lease still frees it after CLAIM_LEASE_S
        LOG.error(json.dumps({"decision": "release-failed", "event_id": event_id, "error": str(e)}))


def _mark_queued(st: dict[str, Any], event_id: str, token: str) -> None:
    try:
        st["dynamodb"].update_item(TableName=st["settings"].table_name, Key={"pk": {"S": f"event#{event_id}"}},
                                   UpdateExpression="SET #s = :queued", ConditionExpression="claim = :mine",
                                   ExpressionAttributeNames={"#s": "status"},
                                   ExpressionAttributeValues={":queued": {"S": "queued"}, ":mine": {"S": token}})
    except (ClientError, BotoCoreError) as e:  # queued already; at worst a retry after the lease queues it again
        LOG.error(json.dumps({"decision": "mark-failed", "event_id": event_id, "error": str(e)}))


def _audit_or_log(st: dict[str, Any], decision: str, **details: Any) -> None:
    """A notice about one attempt (a refusal, an error): never lets a failed publish fail the other records of
    the batch (their redelivery would repeat what they did)."""
    try:
        st["audit"].record(decision, **details)
    except (ClientError, BotoCoreError) as e:
        LOG.error(json.dumps({"decision": "audit-failed", "audited": decision, "error": str(e)}, default=str))


def _time_left(context: Any) -> Callable[[], float]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: float(remaining())) if callable(remaining) else unbounded_time


def worker(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SQS batch: record timeline events, publish settled incidents, audit the receiver's decision and run runbook
    jobs, each step once (ledger.py); only transient AWS failures and a run stopped for time are reported for
    retry (refusals are final)."""
    SHAPE.bind(context)
    st = _init()
    time_left = _time_left(context)
    deps = Deps(settings=st["settings"], audit=st["audit"], autoscaling=st["autoscaling"],
                dynamodb=st["dynamodb"], sns=st["sns"], sqs=st["sqs"], cloudwatch=st["cloudwatch"],
                time_left_ms=time_left)
    failures = []
    records = event.get("Records", [])
    for index, record in enumerate(records):
        try:
            message = json.loads(record["body"])
            if not isinstance(message, dict):
                raise TypeError("a job is a JSON object")
            kind = message.get("kind")
            job = Job.from_dict(message["job"]) if kind == KIND_INCIDENT_EVENT and message.get("job") \
                else (Job.from_dict(message) if kind is None else None)
            decision = message.get("audit") if kind == KIND_INCIDENT_EVENT else None
            if decision is not None and not (isinstance(decision, dict) and isinstance(decision.get("decision"), str)
                                             and isinstance(message.get("event"), dict)
                                             and isinstance(message["event"].get("event_id"), str)):
                raise TypeError("an audit entry is an object with a decision, beside an event with an event_id")
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            _audit_or_log(st, "refused", reason=f"malformed job: {e}", message_id=record.get("messageId"))
            continue
        try:
            # The timeline first: it is idempotent, so a retry caused by the runbook below repeats nothing.
            if kind == KIND_INCIDENT_EVENT:
                timeline.record(deps, message["event"])
            elif kind == timeline.KIND_PUBLISH:
                timeline.publish(deps, str(message.get("incident_id", "")))
            elif kind is not None:
                _audit_or_log(st, "refused", reason=f"unknown job kind {kind!r}", message_id=record.get("messageId"))
            if decision is not None:
                event_id = str(message["event"]["event_id"])
                details = {k: v for k, v in decision.items() if k not in RESERVED_AUDIT_KEYS}
                audit_once(deps, Ledger(deps.dynamodb, deps.settings.table_name, event_id, time_left), "decision",
                           str(decision["decision"]), event_id=event_id, dry_run=deps.settings.dry_run, **details)
            if job is not None:
                run(deps, job)
        except timeline.BadTimelineEvent as e:
            _audit_or_log(st, "refused", reason=f"malformed timeline event: {e}", message_id=record.get("messageId"))
        except OutOfTime as e:  # this record and the rest of the batch: SQS redelivers them
            LOG.warning(json.dumps({"decision": "out-of-time", "error": str(e)}))
            failures += [{"itemIdentifier": r.get("messageId")} for r in records[index:]]
            break
        except (ClientError, BotoCoreError) as e:
            _audit_or_log(st, "error", runbook=job.runbook if job else None, kind=kind, error=str(e))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}
