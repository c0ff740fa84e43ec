"""The figures of one game-day experiment, read back from what really paged (docs/game-days.md).

    python -m infra.tools.game_day_report --experiment KEY --started-at TIME --ended-at TIME
        --expect page|no-page [--expected-runbook ID] [--fault-delay-seconds N]
        [--environment staging] [--service akidb]
        [--region us-east-1] [--grace-minutes 20] [--table NAME] [--worker-log-group NAME]

Reads the incident timeline table (lambdas/runbook_automation/timeline.py writes one item per PagerDuty lifecycle
event: pk `incident#<id>`, sk `event#<occurred_at>#<event id>`) for the incidents triggered between the fault's
start and its end plus the grace period, and the runbook worker's log group for the audit records of those
incidents (lambdas/runbook_automation/audit.py: one JSON line per decision, with `incident`). Per experiment it
publishes, to stdout and $GITHUB_STEP_SUMMARY: time to detect (fault start -> page; the fault starts
`--fault-delay-seconds` after the experiment, e.g. a spot interruption after its notice), to acknowledge (page -> ack),
to resolve (page -> final resolution), pages per fault and the runbook outcome.

Exit 0: as expected. Exit 1: a fault that should page did not page within the plan's MTTD target, paged more
than once, did not run the expected runbook, or a fault that should not page paged. Exit 2: bad arguments or the
table cannot be read. The last line printed is the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.core.naming import MAX_LAMBDA_NAME, Naming
from infra.core.paths import LAMBDAS_DIR
from infra.dashboard_defs.outcomes import TIME_TO_DETECT, target

# The timeline imports the shared code its zip holds at the root (include.txt: logshape); the runtime has that
# root on sys.path, lambdas/ stands for it here (as infra/artifacts/edge_probe.py does).
if str(LAMBDAS_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDAS_DIR))

from lambdas.runbook_automation.timeline import SUMMARY_SK, figures

AS_EXPECTED, MISSED, UNREADABLE = 0, 1, 2
EXPECT = ("page", "no-page")
MTTD_TARGET_S = float(target(TIME_TO_DETECT).limit or 300)  # the plan's MTTD target (< 5 min)


class ReportError(Exception):
    """Bad input or an unreadable source, said plainly (exit 2)."""


def parse_time(text: str, what: str) -> float:
    """ISO 8601 (what `aws fis get-experiment` prints; a Z suffix too) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{what} {text!r} is not a time: give ISO 8601 (2026-12-07T10:00:00Z) or epoch "
                          "seconds") from None
    if parsed.tzinfo is None:
        raise ReportError(f"{what} {text!r} has no time zone: add Z or +00:00")
    return parsed.timestamp()


@dataclass
class Incident:
    incident_id: str
    service: str
    severity: str
    triggered_at: float
    time_to_detect: float  # fault start -> page
    time_to_acknowledge: float | None
    time_to_resolve: float | None
    alert_time_to_detect: float | None  # the alert's condition start -> page (what the timeline publishes)
    runbook: str | None
    runbook_outcome: str


@dataclass
class Report:
    experiment: str
    expect: str
    expected_runbook: str | None
    started_at: float
    ended_at: float
    fault_at: float  # when the fault itself started (TTD counts from here)
    incidents: list[Incident] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return len(self.incidents)

    @property
    def code(self) -> int:
        return MISSED if self.problems else AS_EXPECTED


def read_incidents(ddb: Any, table: str, since: float) -> dict[str, list[dict[str, Any]]]:
    """Every stored lifecycle event of incidents with an event at or after `since`, per incident (events as
    `timeline.figures` takes them)."""
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True,
                              "FilterExpression": "occurred_at >= :since",
                              "ExpressionAttributeValues": {":since": {"N": repr(round(since, 3))}}}
    touched: set[str] = set()
    while True:
        page = ddb.scan(**kwargs)
        touched |= {it["pk"]["S"] for it in page.get("Items", []) if it["sk"]["S"] != SUMMARY_SK}
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    out: dict[str, list[dict[str, Any]]] = {}
    for pk in sorted(touched):
        query: dict[str, Any] = {"TableName": table, "ConsistentRead": True, "KeyConditionExpression": "pk = :pk",
                                 "ExpressionAttributeValues": {":pk": {"S": pk}}}
        items: list[dict[str, Any]] = []
        while True:
            page = ddb.query(**query)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        out[pk.removeprefix("incident#")] = [
            {"event_type": it["event_type"]["S"], "occurred_at": float(it["occurred_at"]["N"]),
             "created_at": float(it["created_at"]["N"]) if "created_at" in it else None,
             "urgency": it.get("urgency", {}).get("S", ""), "correlation": json.loads(it["correlation"]["S"])}
            for it in items if it["sk"]["S"] != SUMMARY_SK]
    return out


def _audit_entry(message: str) -> dict[str, Any] | None:
    """The audit JSON of a log line: the runtime's text format (`[INFO]\\t<time>\\t<request id>\\t{...}`) or the
    JSON log format (`{"message": "{...}"}`)."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        entry = json.loads(message[start:])
    except ValueError:
        return None
    if isinstance(entry, dict) and isinstance(entry.get("message"), str):
        return _audit_entry(entry["message"])
    return entry if isinstance(entry, dict) and "decision" in entry else None


def read_audit(logs: Any, log_group: str, since: float) -> dict[str, list[dict[str, Any]]] | None:
    """Audit records per incident from the worker's log group; None when the group does not exist."""
    out: dict[str, list[dict[str, Any]]] = {}
    kwargs: dict[str, Any] = {"logGroupName": log_group, "startTime": int(since * 1000)}
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                entry = _audit_entry(str(event.get("message", "")))
                if entry and isinstance(entry.get("incident"), str):
                    out.setdefault(entry["incident"], []).append(entry)
            if not page.get("nextToken") or page.get("nextToken") == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    return out


def outcome_of(entries: list[dict[str, Any]] | None) -> tuple[str | None, str]:
    """(runbook, outcome) from an incident's audit records: the last action-level decision wins."""
    if entries is None:
        return None, "unknown (no worker log group)"
    if not entries:
        return None, "no runbook ran"
    entry = sorted(entries, key=lambda e: e.get("at", 0))[-1]
    what = entry.get("action") or entry.get("reason") or ""
    return entry.get("runbook"), f"{entry['decision']}{' ' + str(what) if what else ''}"


def build_report(ddb: Any, logs: Any, *, experiment: str, expect: str, expected_runbook: str | None,
                 started_at: float, ended_at: float, grace_s: float, table: str, log_group: str,
                 fault_delay_s: float = 0.0) -> Report:
    report = Report(experiment, expect, expected_runbook, started_at, ended_at, started_at + fault_delay_s)
    audit = read_audit(logs, log_group, started_at)
    for incident_id, events in read_incidents(ddb, table, started_at).items():
        f = figures(incident_id, events)
        if f.triggered_at is None or not started_at <= f.triggered_at <= ended_at + grace_s:
            continue
        runbook, outcome = outcome_of(None if audit is None else audit.get(incident_id, []))
        report.incidents.append(Incident(
            incident_id=incident_id, service=f.service, severity=f.severity, triggered_at=f.triggered_at,
            time_to_detect=round(f.triggered_at - report.fault_at, 3), time_to_acknowledge=f.time_to_acknowledge,
            time_to_resolve=f.time_to_resolve, alert_time_to_detect=f.time_to_detect, runbook=runbook,
            runbook_outcome=outcome))
    report.incidents.sort(key=lambda i: i.triggered_at)
    judge(report)
    return report


def judge(report: Report) -> None:
    """The verdict: one page within the MTTD target (and the expected runbook) when a page is expected, none
    otherwise."""
    if report.expect == "no-page":
        if report.pages:
            report.problems.append(f"paged {report.pages} time(s) where no page was expected")
        return
    if not report.pages:
        report.problems.append(f"did not page within {report.ended_at - report.started_at:.0f} s of fault and "
                               "the grace period")
        return
    if report.pages > 1:
        report.problems.append(f"paged {report.pages} times for one fault (expected exactly one page)")
    first = report.incidents[0]
    if first.time_to_detect >= MTTD_TARGET_S:
        report.problems.append(f"time to detect {first.time_to_detect:.0f} s is not under the plan's target "
                               f"{MTTD_TARGET_S:.0f} s")
    if report.expected_runbook and first.runbook != report.expected_runbook:
        report.problems.append(f"runbook {report.expected_runbook} did not run for the page (audit: "
                               f"{first.runbook or 'none'}, {first.runbook_outcome})")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def markdown(report: Report) -> str:
    verdict = "as expected" if not report.problems else "MISSED: " + "; ".join(report.problems)
    first = report.incidents[0] if report.incidents else None
    lines = [
        f"### Game day: {report.experiment}",
        "",
        f"Experiment {_at(report.started_at)} -> {_at(report.ended_at)}, fault from {_at(report.fault_at)}; "
        f"expected: {report.expect}"
        + (f" (runbook {report.expected_runbook})" if report.expected_runbook else "")
        + f"; MTTD target < {MTTD_TARGET_S:.0f} s.",
        "",
        "| experiment | pages | TTD (fault -> page) | TTA | TTR | runbook outcome | verdict |",
        "|---|---|---|---|---|---|---|",
        f"| {report.experiment} | {report.pages} | {_s(first.time_to_detect if first else None)} | "
        f"{_s(first.time_to_acknowledge if first else None)} | {_s(first.time_to_resolve if first else None)} | "
        f"{first.runbook_outcome if first else '-'} | {verdict} |",
    ]
    if report.incidents:
        lines += ["", "| incident | service | severity | paged at | TTD | alert TTD | TTA | TTR | runbook |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {i.incident_id} | {i.service} | {i.severity} | {_at(i.triggered_at)} | {_s(i.time_to_detect)} "
                  f"| {_s(i.alert_time_to_detect)} | {_s(i.time_to_acknowledge)} | {_s(i.time_to_resolve)} | "
                  f"{i.runbook or '-'}: {i.runbook_outcome} |" for i in report.incidents]
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    return json.dumps({"experiment": report.experiment, "expect": report.expect, "pages": report.pages,
                       "verdict": "as-expected" if report.code == AS_EXPECTED else "missed",
                       "problems": report.problems, "exit": report.code,
                       "incidents": [asdict(i) for i in report.incidents]}, sort_keys=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Figures of one game-day experiment from the incident timeline.")
    parser.add_argument("--experiment", required=True, help="experiment key (the template's game-day tag)")
    parser.add_argument("--started-at", required=True, help="when the fault started (ISO 8601 or epoch seconds)")
    parser.add_argument("--ended-at", required=True, help="when the experiment ended (ISO 8601 or epoch seconds)")
    parser.add_argument("--expect", required=True, choices=EXPECT, help="what the pager should have seen")
    parser.add_argument("--expected-runbook", default="", help="runbook id the page should run (empty: any)")
    parser.add_argument("--fault-delay-seconds", default="0", help="seconds from the experiment's start to the "
                        "fault (the template's fault-delay-s tag; empty: 0)")
    parser.add_argument("--environment", default="staging", help="stack environment (names the table)")
    parser.add_argument("--service", default="akidb", help="service prefix (names the table)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--grace-minutes", type=float, default=20.0,
                        help="pages triggered this long after the experiment ended still count")
    parser.add_argument("--table", help="incident timeline table (default <service>-<environment>-incident-timeline)")
    parser.add_argument("--worker-log-group", help="runbook worker log group (default /aws/lambda/<service>-"
                        "<environment>-runbook-worker)")
    parser.add_argument("--summary", type=Path, default=Path(os.environ["GITHUB_STEP_SUMMARY"])
                        if os.environ.get("GITHUB_STEP_SUMMARY") else None, help="markdown file to append to")
    args = parser.parse_args(argv)
    naming = Naming(args.service, args.environment)
    table = args.table or naming.physical("incident-timeline")
    log_group = args.worker_log_group or f"/aws/lambda/{naming.physical('runbook-worker', max_len=MAX_LAMBDA_NAME)}"
    try:
        started, ended = parse_time(args.started_at, "--started-at"), parse_time(args.ended_at, "--ended-at")
        if ended < started:
            raise ReportError(f"--ended-at {args.ended_at} is before --started-at {args.started_at}")
        if args.grace_minutes < 0:
            raise ReportError(f"--grace-minutes {args.grace_minutes} must be >= 0")
        try:
            fault_delay = float(args.fault_delay_seconds or 0)
        except ValueError:
            raise ReportError(f"--fault-delay-seconds {args.fault_delay_seconds!r} is not a number of seconds") \
                from None
        if not 0 <= fault_delay <= ended - started:
            raise ReportError(f"--fault-delay-seconds {fault_delay:g} must be within the experiment "
                              f"(0 to {ended - started:g} s)")
        session = boto3.Session(region_name=args.region)
        report = build_report(session.client("dynamodb"), session.client("logs"), experiment=args.experiment,
                              expect=args.expect, expected_runbook=args.expected_runbook or None,
                              started_at=started, ended_at=ended, grace_s=args.grace_minutes * 60,
                              table=table, log_group=log_group, fault_delay_s=fault_delay)
    except ReportError as e:
        print(f"game day report: {e}", file=sys.stderr)
        return UNREADABLE
    except (ClientError, BotoCoreError) as e:
        print(f"game day report: cannot read the incident timeline {table} / {log_group} in {args.region}: {e}",
              file=sys.stderr)
        return UNREADABLE
    text = markdown(report)
    print(text)
    if args.summary is not None:
        with args.summary.open("a", encoding="utf-8") as out:
            out.write(text + "\n")
    print(as_json(report))
    return report.code


if __name__ == "__main__":
    sys.exit(main())
