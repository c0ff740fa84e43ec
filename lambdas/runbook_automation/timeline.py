"""The incident timeline: every PagerDuty lifecycle event of an incident, kept in DynamoDB, turned into the plan's
outcome metrics (time to detect, acknowledge, resolve; pages) per service and severity in CloudWatch.

Why inside the runbook package: the same signed webhook carries both, so the receiver verifies, dedupes and
queues once, and the worker (already fed by the encrypted queue with retries and a DLQ) records the event before
it runs any runbook. No second public endpoint, no second copy of the signature code.

Delivery is at-least-once and in any order, so:
- `record` writes each event under its own key (incident, occurred_at, event id) with a conditional put: a
  duplicate changes nothing. It then queues a `timeline-publish` job delayed by `timeline_settle_s`.
- `publish` acts only on a settled incident (no event received for `timeline_settle_s`: the last event's job is
  the one that publishes) and computes the figures from all stored events, whatever order they came in:
  - triggered at: the earliest `incident.triggered`, else the incident's `created_at` (in every event's data);
  - time to detect: triggered at - the alert's condition start (from the alert's custom details);
  - time to acknowledge: the earliest `incident.acknowledged` - triggered at (none: not published);
  - time to resolve: the final `incident.resolved` - triggered at, published once the incident's latest event is
    a resolution (a reopened incident counts until its last resolution);
  - pages: 1 per incident, at its trigger time (summed per week on the dashboards and the alarm).
  Each publication is claimed first (a conditional flag on the incident's summary item) and the flag is removed
  again when PutMetricData fails, so it happens once and a retry still publishes it.
- An incident reopened after its figures were published (after the settle time) is a new episode: its time to
  acknowledge and resolve run from the reopening to that episode's last resolution (`reopened_episode`); the
  published figures stay those of the episode they closed (CloudWatch cannot take a point back).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .audit import LOG
from .delivery import BadDelivery, Delivery, parse_time
from .ledger import Ledger, unbounded_time

KIND_PUBLISH = "timeline-publish"
LIFECYCLE = ("incident.triggered", "incident.acknowledged", "incident.escalated", "incident.resolved",
             "incident.reopened")
# Metric names and dimensions: infra/dashboard_defs/outcomes.py draws and alarms on exactly these.
TIME_TO_DETECT, TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE, PAGES = (
    "TimeToDetect", "TimeToAcknowledge", "TimeToResolve", "Pages")
DIMENSIONS = ("Service", "Severity")  # plus a dimensionless aggregate: the alarms' and the targets' series
SUMMARY_SK = "summary"
COVERED = "covered_until"  # on the summary: the resolution the published figures run to (epoch s)
# PutMetricData's accepted timestamps, with a margin for the time the request takes (AWS API reference).
MAX_METRIC_AGE_S = 14 * 86400 - 3600
MAX_METRIC_LEAD_S = 2 * 3600 - 300
MAX_LABEL = 128
# Where the alert's labels are: Alertmanager's pagerduty_configs `details` / a CloudWatch alarm's SNS message,
# both as PagerDuty custom details. Keys are tried in order.
CORRELATION_KEYS = {
    "service": ("service",),
    "slo": ("slo",),
    "tier": ("tier", "tiers"),
    "alarm": ("alarm", "AlarmName", "alertname"),
    "severity": ("severity",),
}
CONDITION_START_KEYS = ("condition_started_at", "starts_at", "startsAt", "StateChangeTime")
# Alertmanager's page title ends with `[since:<first alert's StartsAt>]` (infra/slo/alertmanager.py): a V3
# delivery carries the incident's title, not the event's custom details.
START_MARK = re.compile(r"\[since:([0-9][0-9T:.+\-]*Z?)\]")


class BadTimelineEvent(ValueError):
    """A queued timeline event that is not what `timeline_event` writes (refused, not retried)."""


def _label(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:MAX_LABEL]
    return None


def _details(data: dict[str, Any]) -> dict[str, Any]:
    for candidate in (data.get("custom_details"), (data.get("body") or {}).get("details")
                      if isinstance(data.get("body"), dict) else None):
        if isinstance(candidate, dict):
            return candidate
    return {}


def correlate(data: dict[str, Any]) -> dict[str, Any]:
    """The alert that opened the incident: its labels and the time its condition started (best effort: what
    is missing stays out, and the figures that need it are not published)."""
    details = _details(data)
    found: dict[str, Any] = {}
    for field, keys in CORRELATION_KEYS.items():
        for key in keys:
            value = _label(details.get(key))
            if value:
                found[field] = value
                break
    if "service" not in found and isinstance(data.get("service"), dict):
        service = _label(data["service"].get("summary"))
        if service:
            found["service"] = service
    for key in CONDITION_START_KEYS:
        if key in details:
            try:
                found["condition_started_at"] = parse_time(details[key], f"custom details {key}")
            except BadDelivery as e:
                found["correlation_problem"] = str(e)
            break
    else:
        mark = START_MARK.search(data["title"]) if isinstance(data.get("title"), str) else None
        if mark:
            try:
                found["condition_started_at"] = parse_time(mark.group(1), "the title's [since:] mark")
            except BadDelivery as e:
                found["correlation_problem"] = str(e)
    return found


def timeline_event(d: Delivery) -> dict[str, Any]:
    """The compact, bounded record the receiver queues for `record` (the raw data never travels further)."""
    created_at: float | None
    try:
        created_at = parse_time(d.data.get("created_at"), "event.data.created_at")
    except BadDelivery:
        created_at = None
    return {"event_id": d.event_id, "event_type": d.event_type, "occurred_at": d.occurred_at,
            "incident_id": d.data["id"], "created_at": created_at,
            "urgency": _label(d.data.get("urgency")) or "", "correlation": correlate(d.data)}


def _check(ev: object) -> dict[str, Any]:
    if not isinstance(ev, dict):
        raise BadTimelineEvent("a timeline event is an object")
    for key, kind in (("event_id", str), ("event_type", str), ("incident_id", str), ("occurred_at", (int, float)),
                      ("correlation", dict)):
        if not isinstance(ev.get(key), kind) or isinstance(ev.get(key), bool):
            raise BadTimelineEvent(f"{key} is missing or of the wrong type")
    return ev


def _n(value: float) -> dict[str, str]:
    return {"N": repr(round(float(value), 3))}


def record(deps: Any, event: object) -> bool:
    """Store one lifecycle event (True) or recognise a duplicate (False); then queue the delayed publish job."""
    ev = _check(event)
    s = deps.settings
    if not s.timeline_table_name:
        return False
    if ev["event_type"] not in LIFECYCLE:
        LOG.info(json.dumps({"decision": "timeline-skip", "event_type": ev["event_type"]}))
        return False
    now = deps.now()
    item = {
        "pk": {"S": f"incident#{ev['incident_id']}"},
        "sk": {"S": f"event#{ev['occurred_at']:017.3f}#{ev['event_id']}"},
        "event_type": {"S": ev["event_type"]}, "occurred_at": _n(ev["occurred_at"]), "received_at": _n(now),
        "urgency": {"S": str(ev.get("urgency", ""))},
        "correlation": {"S": json.dumps(ev["correlation"], sort_keys=True)},
        "expires_at": {"N": str(int(now) + s.timeline_retention_days * 86400)},
    }
    if isinstance(ev.get("created_at"), (int, float)):
        item["created_at"] = _n(ev["created_at"])
    stored = True
    try:
        deps.dynamodb.put_item(TableName=s.timeline_table_name, Item=item,
                               ConditionExpression="attribute_not_exists(sk)")
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        stored = False
    # Also after a duplicate: the first attempt may have failed right after its put.
    deps.sqs.send_message(QueueUrl=s.queue_url, DelaySeconds=s.timeline_settle_s,
                          MessageBody=json.dumps({"kind": KIND_PUBLISH, "incident_id": ev["incident_id"]}))
    return stored


@dataclass(frozen=True)
class Figures:
    incident_id: str
    service: str
    severity: str
    triggered_at: float | None
    condition_started_at: float | None
    acknowledged_at: float | None
    resolved_at: float | None  # the final resolution, when the incident's latest event is one

    @property
    def time_to_detect(self) -> float | None:
        if self.triggered_at is None or self.condition_started_at is None:
            return None
        return max(0.0, self.triggered_at - self.condition_started_at)

    @property
    def time_to_acknowledge(self) -> float | None:
        if self.triggered_at is None or self.acknowledged_at is None:
            return None
        return max(0.0, self.acknowledged_at - self.triggered_at)

    @property
    def time_to_resolve(self) -> float | None:
        if self.triggered_at is None or self.resolved_at is None:
            return None
        return max(0.0, self.resolved_at - self.triggered_at)


def _rank(event_type: str) -> int:
    return LIFECYCLE.index(event_type) if event_type in LIFECYCLE else len(LIFECYCLE)


def figures(incident_id: str, events: list[dict[str, Any]]) -> Figures:
    """The incident's figures from its stored events (any arrival order; duplicates are one key already).
    Each event: event_type, occurred_at, created_at (optional), urgency, correlation (dict)."""
    # Events of one instant keep the lifecycle's order (a trigger and its resolution can share a millisecond;
    # alphabetically "resolved" would come first and the incident would look open forever).
    ordered = sorted(events, key=lambda e: (e["occurred_at"], _rank(e["event_type"])))

    def first(kind: str) -> float | None:
        times = [e["occurred_at"] for e in ordered if e["event_type"] == kind]
        return min(times) if times else None

    created = [e["created_at"] for e in ordered if e.get("created_at") is not None]
    triggered_at = first("incident.triggered")
    if triggered_at is None and created:
        triggered_at = min(created)
    correlation: dict[str, Any] = {}
    # The trigger's details first: they describe the alert that opened the incident.
    for e in sorted(ordered, key=lambda e: e["event_type"] != "incident.triggered"):
        for key, value in e["correlation"].items():
            correlation.setdefault(key, value)
    urgency = next((e["urgency"] for e in ordered if e.get("urgency")), "")
    severity = correlation.get("severity") or (f"urgency-{urgency}" if urgency else "unknown")
    last = ordered[-1] if ordered else None
    resolved_at = last["occurred_at"] if last and last["event_type"] == "incident.resolved" else None
    acknowledged_at = first("incident.acknowledged")
    if acknowledged_at is not None and resolved_at is not None and acknowledged_at > resolved_at:
        acknowledged_at = None  # an acknowledgement after the resolution acknowledged nothing
    return Figures(incident_id=incident_id, service=str(correlation.get("service", "unknown")),
                   severity=str(severity), triggered_at=triggered_at,
                   condition_started_at=correlation.get("condition_started_at"),
                   acknowledged_at=acknowledged_at, resolved_at=resolved_at)


def _events(deps: Any, incident_id: str) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    s = deps.settings
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": s.timeline_table_name, "ConsistentRead": True,
                              "KeyConditionExpression": "pk = :pk",
                              "ExpressionAttributeValues": {":pk": {"S": f"incident#{incident_id}"}}}
    while True:
        page = deps.dynamodb.query(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    events, summary, last_received = [], {}, 0.0
    for it in items:
        if it["sk"]["S"] == SUMMARY_SK:
            summary = it
            continue
        last_received = max(last_received, float(it["received_at"]["N"]))
        events.append({"event_type": it["event_type"]["S"], "occurred_at": float(it["occurred_at"]["N"]),
                       "created_at": float(it["created_at"]["N"]) if "created_at" in it else None,
                       "urgency": it.get("urgency", {}).get("S", ""),
                       "correlation": json.loads(it["correlation"]["S"])})
    return events, summary, last_received


def accepted_time(at: float, now: float) -> float:
    """`at` moved into the span PutMetricData accepts (two weeks back, two hours ahead; one refused datum refuses
    the whole request, AWS "PutMetricData"): an incident open for weeks still counts, stamped at the oldest
    accepted minute, so the weekly figures include it instead of losing the whole batch."""
    return min(max(at, now - MAX_METRIC_AGE_S), now + MAX_METRIC_LEAD_S)


def _datum(name: str, value: float, at: float, unit: str, f: Figures, now: float) -> list[dict[str, Any]]:
    stamped = accepted_time(at, now)
    if stamped != at:
        LOG.info(json.dumps({"decision": "timeline-restamped", "incident": f.incident_id, "metric": name,
                             "occurred_at": at, "stamped_at": stamped}))
    base = {"MetricName": name, "Value": value, "Unit": unit, "Timestamp": datetime.fromtimestamp(stamped, tz=UTC),
            "StorageResolution": 60}
    per_service = [{"Name": "Service", "Value": f.service}, {"Name": "Severity", "Value": f.severity}]
    return [{**base, "Dimensions": per_service}, {**base, "Dimensions": []}]


def _values(data: list[dict[str, Any]]) -> str:
    return json.dumps({d["MetricName"]: d["Value"] for d in data}, sort_keys=True)


def _once(deps: Any, incident_id: str, flag: str, data: list[dict[str, Any]],
          covers: tuple[float | None, float] | None = None) -> bool:
    """Claim `flag` on the summary item (holding what is published), publish, and drop the claim again if
    publishing fails. `covers` (previous, new): the resolution the figures run to, stored with the claim in one
    conditional write as COVERED (and put back to `previous` with the claim's removal)."""
    s = deps.settings
    # The claim and the put are one step: never started without the time for both (a timeout between them
    # would leave the figure claimed and never published).
    Ledger.guard(getattr(deps, "time_left_ms", unbounded_time), 2)
    key = {"pk": {"S": f"incident#{incident_id}"}, "sk": {"S": SUMMARY_SK}}
    update, values = "SET #f = :v, expires_at = :exp", {
        ":v": {"S": _values(data)}, ":exp": {"N": str(int(deps.now()) + s.timeline_retention_days * 86400)}}
    if covers is not None:
        update += f", {COVERED} = :cov"
        values[":cov"] = _n(covers[1])
    try:
        deps.dynamodb.update_item(
            TableName=s.timeline_table_name, Key=key, UpdateExpression=update,
            ConditionExpression="attribute_not_exists(#f)", ExpressionAttributeNames={"#f": flag},
            ExpressionAttributeValues=values)
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    try:
        deps.cloudwatch.put_metric_data(Namespace=s.metrics_namespace, MetricData=data)
    except (ClientError, BotoCoreError):
        undo: dict[str, Any] = {"UpdateExpression": "REMOVE #f"}
        if covers is not None and covers[0] is not None:
            undo = {"UpdateExpression": f"REMOVE #f SET {COVERED} = :prev",
                    "ExpressionAttributeValues": {":prev": _n(covers[0])}}
        elif covers is not None:
            undo = {"UpdateExpression": f"REMOVE #f, {COVERED}"}
        deps.dynamodb.update_item(TableName=s.timeline_table_name, Key=key, ExpressionAttributeNames={"#f": flag},
                                  **undo)
        raise
    return True


def reopened_episode(incident_id: str, events: list[dict[str, Any]], covered: float) -> Figures | None:
    """The figures of what came after the published resolution `covered`: an incident reopened after its figures
    were published (after the settle time) is a new episode, from its reopening to its last resolution (the
    published one cannot be taken back, and was right for the episode it closed). None while it is open or when
    only late events of the closed episode arrived. No time to detect: the alert's condition start is the first
    episode's."""
    later = sorted((e for e in events if e["occurred_at"] > covered),
                   key=lambda e: (e["occurred_at"], _rank(e["event_type"])))
    start = next((i for i, e in enumerate(later) if e["event_type"] in ("incident.reopened", "incident.triggered")),
                 None)
    if start is None:
        return None
    episode = [{**e, "event_type": "incident.triggered" if i == start else e["event_type"], "created_at": None,
                "correlation": {k: v for k, v in e["correlation"].items() if k != "condition_started_at"}}
               for i, e in enumerate(later[start:], start)]
    f = figures(incident_id, episode)
    # Service and severity stay the incident's (the trigger's details), whatever the reopening carries.
    whole = figures(incident_id, events)
    return Figures(incident_id=incident_id, service=whole.service, severity=whole.severity,
                   triggered_at=f.triggered_at, condition_started_at=None, acknowledged_at=f.acknowledged_at,
                   resolved_at=f.resolved_at)


def _figure_data(f: Figures, now: float) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    for name, value, at in ((TIME_TO_DETECT, f.time_to_detect, f.triggered_at),
                            (TIME_TO_ACKNOWLEDGE, f.time_to_acknowledge, f.acknowledged_at),
                            (TIME_TO_RESOLVE, f.time_to_resolve, f.resolved_at)):
        if value is not None and at is not None:
            data += _datum(name, value, at, "Seconds", f, now)
    return data


def publish(deps: Any, incident_id: str) -> dict[str, Any]:
    """Publish what a settled incident's events determine, once; returns what was decided (for the log)."""
    s = deps.settings
    if not s.timeline_table_name or not incident_id:
        return {"decision": "skip", "reason": "no timeline table or incident"}
    events, summary, last_received = _events(deps, incident_id)
    if not events:
        return {"decision": "skip", "reason": "no events"}
    if deps.now() - last_received < s.timeline_settle_s - 1:  # a later event queued a later job
        return {"decision": "skip", "reason": "not settled"}
    f = figures(incident_id, events)
    out: dict[str, Any] = {"decision": "published", "incident": incident_id, "published": []}
    now = deps.now()
    if f.triggered_at is not None and _once(deps, incident_id, "pages_published",
                                            _datum(PAGES, 1, f.triggered_at, "Count", f, now)):
        out["published"].append(PAGES)
    covered = float(summary[COVERED]["N"]) if COVERED in summary else None
    if covered is not None and f.resolved_at is not None and f.resolved_at > covered:
        episode = reopened_episode(incident_id, events, covered)
        if episode is not None and episode.resolved_at is not None:
            data = _figure_data(episode, now)
            if data and _once(deps, incident_id, f"figures_published_{int(covered * 1000)}", data,
                              covers=(covered, episode.resolved_at)):
                out["published"] += sorted({d["MetricName"] for d in data})
                out["episode_from"] = episode.triggered_at
    elif f.resolved_at is not None:
        data = _figure_data(f, now)
        if data and _once(deps, incident_id, "figures_published", data, covers=(None, f.resolved_at)):
            out["published"] += sorted({d["MetricName"] for d in data})
        elif data and summary.get("figures_published", {}).get("S") not in (None, _values(data)) and \
                not any(k.startswith("figures_published_") for k in summary):  # a later episode is not "late"
            # CloudWatch cannot take a data point back: say so, with both versions, for the weekly review.
            LOG.warning(json.dumps({"decision": "timeline-late", "incident": incident_id,
                                    "published": summary["figures_published"]["S"], "now": _values(data),
                                    "reason": "an event arrived after the figures were published"}))
    LOG.info(json.dumps({**out, "figures": f.__dict__}, default=str))
    return out

