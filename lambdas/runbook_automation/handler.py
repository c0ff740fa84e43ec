"""PagerDuty V3 webhooks -> runbooks.

`handler` (API Gateway HTTP API, payload 2.0) verifies the signature (401 otherwise), ignores duplicate
deliveries (X-Webhook-Id, DynamoDB conditional put), picks the runbook named in the incident title
(`[runbook:<id>]`, written there by the Alertmanager config), rejects unknown runbooks (422), queues the job on
SQS and answers 202 in milliseconds. `worker` (SQS) runs the runbook with its guardrails. Both audit every
decision. The webhook secret is read from Secrets Manager once per container, never from the environment.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

from . import settings as settings_mod
from .audit import LOG, Audit
from .runbooks import RUNBOOKS, Deps, Job, run
from .signature import verify

RUNBOOK_TOKEN = re.compile(r"\[runbook:([a-z0-9][a-z0-9-]{0,62})\]")
DEDUPE_TTL_S = 7 * 86400
_state: dict[str, Any] = {}


def _reset() -> None:
    """Forget cached settings, clients and secret (tests; a new container)."""
    _state.clear()


def _init() -> dict[str, Any]:
    if not _state:
        s = settings_mod.load()
        _state.update(settings=s, sns=boto3.client("sns"), dynamodb=boto3.client("dynamodb"),
                      sqs=boto3.client("sqs"), autoscaling=boto3.client("autoscaling"))
        _state["audit"] = Audit(_state["sns"], s.audit_topic_arn, s.environment)
    return _state


def _secret(st: dict[str, Any]) -> bytes:
    if "secret" not in st:
        sm = boto3.client("secretsmanager")
        st["secret"] = sm.get_secret_value(SecretId=st["settings"].secret_arn)["SecretString"].encode()
    return st["secret"]


def _response(code: int, **body: Any) -> dict[str, Any]:
    return {"statusCode": code, "headers": {"content-type": "application/json"},
            "body": json.dumps(body, sort_keys=True)}


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    st = _init()
    s, audit = st["settings"], st["audit"]
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        body = _raw_body(event)
    except (binascii.Error, ValueError):
        return _response(400, error="body is not valid base64")
    if not verify(_secret(st), body, headers.get("x-pagerduty-signature")):
        LOG.warning(json.dumps({"decision": "unauthenticated", "source_ip": (event.get("requestContext") or {})
                                .get("http", {}).get("sourceIp")}))
        return _response(401, error="missing or invalid X-PagerDuty-Signature")
    webhook_id = headers.get("x-webhook-id", "")
    if not webhook_id or len(webhook_id) > 200:
        return _response(400, error="X-Webhook-Id header is required (at most 200 characters)")
    try:
        payload = json.loads(body)
        ev = payload["event"]
        event_type, data = str(ev["event_type"]), ev.get("data") or {}
    except (ValueError, KeyError, TypeError):
        return _response(400, error="body must be a PagerDuty V3 webhook: {\"event\": {\"event_type\": ..., "
                                    "\"data\": {...}}}")
    try:
        st["dynamodb"].put_item(
            TableName=s.table_name,
            Item={"pk": {"S": f"webhook#{webhook_id}"}, "expires_at": {"N": str(int(time.time()) + DEDUPE_TTL_S)}},
            ConditionExpression="attribute_not_exists(pk)")
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            LOG.info(json.dumps({"decision": "duplicate", "webhook_id": webhook_id}))
            return _response(200, status="duplicate", webhook_id=webhook_id)
        raise
    if event_type != "incident.triggered":
        return _response(202, status="ignored", reason=f"event type {event_type} runs no runbook")
    title = str(data.get("title", ""))
    match = RUNBOOK_TOKEN.search(title)
    if not match:
        audit.record("ignored", reason="incident names no runbook", incident=data.get("id"), webhook_id=webhook_id)
        return _response(202, status="ignored", reason="the incident title names no [runbook:<id>]")
    runbook = match.group(1)
    if runbook not in RUNBOOKS:
        audit.record("rejected", reason=f"unknown runbook {runbook!r}", incident=data.get("id"),
                     webhook_id=webhook_id)
        return _response(422, error=f"unknown runbook {runbook!r}; known runbooks: {', '.join(sorted(RUNBOOKS))}")
    job = Job(runbook=runbook, incident_id=str(data.get("id", "")), title=title, webhook_id=webhook_id,
              urgency=str(data.get("urgency", "")), html_url=str(data.get("html_url", "")))
    st["sqs"].send_message(QueueUrl=s.queue_url, MessageBody=json.dumps(job.__dict__, sort_keys=True))
    audit.record("accepted", runbook=runbook, incident=job.incident_id, webhook_id=webhook_id,
                 dry_run=s.dry_run)
    return _response(202, status="accepted", runbook=runbook, dry_run=s.dry_run)


def worker(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SQS batch: run each job; report only transient AWS failures for retry (refusals are final)."""
    st = _init()
    deps = Deps(settings=st["settings"], audit=st["audit"], autoscaling=st["autoscaling"],
                dynamodb=st["dynamodb"], sns=st["sns"])
    failures = []
    for record in event.get("Records", []):
        try:
            job = Job.from_json(record["body"])
        except (ValueError, KeyError, TypeError) as e:
            st["audit"].record("refused", reason=f"malformed job: {e}", message_id=record.get("messageId"))
            continue
        try:
            run(deps, job)
        except ClientError as e:
            st["audit"].record("error", runbook=job.runbook, incident=job.incident_id, error=str(e))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}
