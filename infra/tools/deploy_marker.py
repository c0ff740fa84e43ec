"""Deploy markers and the edge maintenance suppressor, called by the deploy and rollback workflows.

    python -m infra.tools.deploy_marker suppressor raise --stack prod   # once a minute while `pulumi up` runs
    python -m infra.tools.deploy_marker suppressor lower --stack prod   # afterwards, also on failure
    python -m infra.tools.deploy_marker record --stack prod --run-id 123-1 --phase start --commit <sha> --actor <login>
    python -m infra.tools.deploy_marker record --stack prod --run-id 123-1 --phase end --outcome failure ...
    python -m infra.tools.deploy_marker list --stack prod --days 7

Everything it needs comes from the stack file (Pulumi.<stack>.yaml): the edge function's physical name and its
Regions (infra/components/emf_edge.py names it, infra/components/edge_composite.py alarms on
`AkiDB/Maintenance MaintenanceActive{Service=<function>}`), the home Region and the incident timeline table
(infra/components/incident_timeline.py).

- `suppressor raise` puts 1 in every edge Region; the suppressor alarm goes to ALARM and the edge-outage composite's
  actions are suppressed. `lower` puts 0: the alarm is OK at its next evaluation instead of one period after the
  last 1 (missing data is not breaching, so a lost `lower` still ends the suppression by itself).
- `record` writes the deploy event into the incident timeline table under `pk = deploy#<stack>`,
  `sk = run#<run id>#<phase>` (incidents are `incident#<id>`, so the timeline's queries never see deploys), with a
  conditional put: one item per (stack, run id, phase) however often the step is retried. It then puts the
  `AkiDB/Deploys Deploy{Stack, Phase}` data point the dashboards draw as markers, stamped with the item's time, and
  marks the item as published. A retry after a failure in between publishes the same data point again (same
  timestamp and value: the boards draw Maximum, so it is still one marker) and never writes a second event.

Exit codes: 0 done (or nothing to do, said on stdout), 1 an AWS error (named, with the Region), 2 bad arguments
or stack config.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.components.edge_composite import MAINTENANCE_DIMENSION, MAINTENANCE_METRIC, MAINTENANCE_NAMESPACE
from infra.components.incident_timeline import RETENTION_DAYS
from infra.config import ConfigError, parse_stack_config
from infra.config.stack import StackConfig
from infra.core.naming import MAX_LAMBDA_NAME, Naming
from infra.dashboard_defs.definitions import timeline_deployed
from infra.dashboard_defs.outcomes import DEPLOY_METRIC, DEPLOY_NAMESPACE
from infra.offline.stackfile import StackFileError, read_stack_file, with_offline_secrets

PHASES = ("start", "end")
OUTCOMES = ("success", "failure", "cancelled", "skipped")
KINDS = ("deploy", "rollback")
RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\[\]._-]{0,99}$")  # GitHub logins, and bots such as `name[bot]`
# A deploy's API calls must not hang a job: a few fast retries, then a named error.
BOTO = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15)


class UsageError(Exception):
    """Bad arguments or stack config: one message, exit code 2."""


class AwsError(Exception):
    """An AWS call failed: named with its operation and Region, exit code 1."""


@dataclass(frozen=True)
class Targets:
    """Where a stack's markers and suppressors go, from its stack file."""

    stack: str
    home_region: str
    edge_function: str | None  # None: the stack has no edge function (nothing to suppress)
    edge_regions: tuple[str, ...]
    timeline_table: str | None  # None: the runbook automation (and with it the timeline) is not deployed


def targets_of(stack: str, cfg: StackConfig) -> Targets:
    naming = Naming(cfg.service, cfg.environment)
    edge = cfg.emf_edge
    return Targets(
        stack=stack, home_region=cfg.aws.region,
        # The same derivation as infra/components/emf_edge.py `function_name`.
        edge_function=naming.physical(edge.function_name, max_len=MAX_LAMBDA_NAME) if edge.enabled else None,
        edge_regions=tuple(edge.edge_regions) if edge.enabled else (),
        timeline_table=naming.physical("incident-timeline") if timeline_deployed(cfg) else None)


def load_targets(stack: str) -> Targets:
    try:
        # Secrets are never read here: stand-ins let the config parse before they are set.
        stack_file, _ = with_offline_secrets(read_stack_file(stack))
        cfg = parse_stack_config(stack_file.values, set(stack_file.secret_keys))
    except (StackFileError, ConfigError) as e:
        raise UsageError(f"stack {stack!r}: {e}") from None
    return targets_of(stack, cfg)


ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


def default_clients(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, config=BOTO)


def _aws(what: str, region: str, e: Exception) -> AwsError:
    code = e.response.get("Error", {}).get("Code", "") if isinstance(e, ClientError) else type(e).__name__
    return AwsError(f"{what} in {region} failed ({code}): {e}")


# ------------------------------------------------------------------------------------------------ suppressor
def set_suppressor(clients: ClientFactory, t: Targets, active: bool) -> list[str]:
    """Put 1 (active) or 0 in every edge Region; returns the Regions done. Every Region is tried even when one
    fails (lowering must reach as many as it can); the failures are raised together afterwards."""
    if t.edge_function is None:
        return []
    done, failed = [], []
    for region in t.edge_regions:
        try:
            clients("cloudwatch", region).put_metric_data(Namespace=MAINTENANCE_NAMESPACE, MetricData=[{
                "MetricName": MAINTENANCE_METRIC, "Value": 1.0 if active else 0.0, "Unit": "Count",
                "Dimensions": [{"Name": MAINTENANCE_DIMENSION, "Value": t.edge_function}]}])
            done.append(region)
        except (ClientError, BotoCoreError) as e:
            failed.append(str(_aws(f"put-metric-data {MAINTENANCE_NAMESPACE}/{MAINTENANCE_METRIC}", region, e)))
    if failed:
        raise AwsError("; ".join(failed) + (f" (done in {', '.join(done)})" if done else ""))
    return done


# ---------------------------------------------------------------------------------------------- deploy event
@dataclass(frozen=True)
class DeployEvent:
    stack: str
    run_id: str
    phase: str
    commit: str
    actor: str
    kind: str = "deploy"
    outcome: str | None = None  # end only
    run_url: str = ""

    def check(self) -> DeployEvent:
        problems = []
        if self.phase not in PHASES:
            problems.append(f"--phase {self.phase!r}: one of {', '.join(PHASES)}")
        if self.phase == "end" and self.outcome not in OUTCOMES:
            problems.append(f"--outcome {self.outcome!r}: the end of a deploy needs one of {', '.join(OUTCOMES)}")
        if self.phase == "start" and self.outcome is not None:
            problems.append("--outcome is given with --phase end only")
        if not RUN_ID.match(self.run_id):
            problems.append(f"--run-id {self.run_id!r}: 1-100 of A-Z a-z 0-9 . _ - (e.g. <run id>-<attempt>)")
        if not COMMIT.match(self.commit):
            problems.append(f"--commit {self.commit!r}: a hex commit id of 7-40 lowercase characters")
        if not ACTOR.match(self.actor):
            problems.append(f"--actor {self.actor!r}: a GitHub login")
        if self.kind not in KINDS:
            problems.append(f"--kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.run_url and not self.run_url.startswith("https://"):
            problems.append(f"--run-url {self.run_url!r}: an https:// URL")
        if problems:
            raise UsageError("; ".join(problems))
        return self


def item_key(stack: str, run_id: str, phase: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"deploy#{stack}"}, "sk": {"S": f"run#{run_id}#{phase}"}}


def _put_event(ddb: Any, table: str, t: Targets, ev: DeployEvent, now: float) -> tuple[dict[str, Any], bool]:
    """The event's item: written now (True) or the one a previous attempt wrote (False)."""
    item: dict[str, Any] = {
        **item_key(t.stack, ev.run_id, ev.phase), "kind": {"S": ev.kind}, "phase": {"S": ev.phase},
        "commit": {"S": ev.commit}, "actor": {"S": ev.actor}, "at": {"N": f"{now:.3f}"},
        "expires_at": {"N": str(int(now) + RETENTION_DAYS * 86400)}}
    if ev.outcome:
        item["outcome"] = {"S": ev.outcome}
    if ev.run_url:
        item["run_url"] = {"S": ev.run_url}
    if ev.phase == "end":
        start = ddb.get_item(TableName=table, Key=item_key(t.stack, ev.run_id, "start"),
                             ConsistentRead=True).get("Item")
        if start:
            item["started_at"] = start["at"]
    try:
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        return item, True
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    existing = ddb.get_item(TableName=table, Key=item_key(t.stack, ev.run_id, ev.phase),
                            ConsistentRead=True)["Item"]
    return existing, False


def _datum(t: Targets, phase: str, at: float) -> dict[str, Any]:
    return {"MetricName": DEPLOY_METRIC, "Value": 1.0, "Unit": "Count",
            "Timestamp": datetime.fromtimestamp(at, tz=UTC), "StorageResolution": 60,
            "Dimensions": [{"Name": "Stack", "Value": t.stack}, {"Name": "Phase", "Value": phase}]}


def record(clients: ClientFactory, t: Targets, ev: DeployEvent, now: Callable[[], float] = time.time) -> str:
    """Write the event once and put its marker; returns what was done (for the log)."""
    ev.check()
    region = t.home_region
    cw = clients("cloudwatch", region)
    if t.timeline_table is None:
        # No table to make it once: the marker alone (a repeated data point is the same marker, see above).
        try:
            cw.put_metric_data(Namespace=DEPLOY_NAMESPACE, MetricData=[_datum(t, ev.phase, now())])
        except (ClientError, BotoCoreError) as e:
            raise _aws(f"put-metric-data {DEPLOY_NAMESPACE}/{DEPLOY_METRIC}", region, e) from None
        return f"marker only: stack {t.stack} has no incident timeline table (runbook automation disabled)"
    ddb, table = clients("dynamodb", region), t.timeline_table
    try:
        item, new = _put_event(ddb, table, t, ev, now())
    except (ClientError, BotoCoreError) as e:
        missing = isinstance(e, ClientError) and e.response["Error"]["Code"] == "ResourceNotFoundException"
        hint = " (is the stack deployed? its runbook automation creates the table)" if missing else ""
        raise AwsError(f"{_aws(f'writing the deploy event to table {table}', region, e)}{hint}") from None
    if "marker_published" in item:
        return f"already recorded: {t.stack} run {ev.run_id} {ev.phase}"
    try:
        cw.put_metric_data(Namespace=DEPLOY_NAMESPACE, MetricData=[_datum(t, ev.phase, float(item["at"]["N"]))])
        ddb.update_item(TableName=table, Key=item_key(t.stack, ev.run_id, ev.phase),
                        UpdateExpression="SET marker_published = :t", ExpressionAttributeValues={":t": {"BOOL": True}})
    except (ClientError, BotoCoreError) as e:
        raise _aws(f"publishing the deploy marker of {t.stack} run {ev.run_id} {ev.phase} (the event is stored; "
                   "run the step again)", region, e) from None
    return f"{'recorded' if new else 'completed'}: {t.stack} run {ev.run_id} {ev.phase}"


def deploys(clients: ClientFactory, t: Targets, since: float) -> list[dict[str, str]]:
    """The stack's deploy events since `since` (epoch s), oldest first: what to read beside an incident."""
    if t.timeline_table is None:
        return []
    ddb = clients("dynamodb", t.home_region)
    kwargs: dict[str, Any] = {"TableName": t.timeline_table, "KeyConditionExpression": "pk = :pk",
                              "ExpressionAttributeValues": {":pk": {"S": f"deploy#{t.stack}"}}}
    items: list[dict[str, Any]] = []
    try:
        while True:
            page = ddb.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as e:
        raise _aws(f"reading deploy events from {t.timeline_table}", t.home_region, e) from None
    out = [{k: str(next(iter(v.values()))) for k, v in it.items() if k not in ("pk", "expires_at")}
           for it in items if float(it["at"]["N"]) >= since]
    return sorted(out, key=lambda e: float(e["at"]))


# ----------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.tools.deploy_marker",
                                description="Deploy markers and the edge maintenance suppressor.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("suppressor", help="raise or lower the edge maintenance suppressor in every edge Region")
    s.add_argument("action", choices=("raise", "lower"))
    s.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    r = sub.add_parser("record", help="record a deploy's start or end (timeline item + dashboard marker)")
    r.add_argument("--stack", required=True)
    r.add_argument("--run-id", required=True, help="unique per deploy attempt, e.g. <github.run_id>-<run_attempt>")
    r.add_argument("--phase", required=True, choices=PHASES)
    r.add_argument("--outcome", choices=OUTCOMES, help="with --phase end: the job's outcome")
    r.add_argument("--commit", required=True)
    r.add_argument("--actor", required=True)
    r.add_argument("--kind", default="deploy", choices=KINDS)
    r.add_argument("--run-url", default="")
    ls = sub.add_parser("list", help="the stack's deploy events of the last days")
    ls.add_argument("--stack", required=True)
    ls.add_argument("--days", type=float, default=7.0)
    return p


def main(argv: Sequence[str] | None = None, clients: ClientFactory = default_clients) -> int:
    args = _parser().parse_args(argv)
    try:
        t = load_targets(args.stack)
        if args.command == "suppressor":
            if t.edge_function is None:
                print(f"stack {t.stack} has no edge function: no maintenance suppressor to {args.action}")
                return 0
            regions = set_suppressor(clients, t, args.action == "raise")
            print(f"suppressor {args.action}d for {t.edge_function} in {', '.join(regions)}")
        elif args.command == "record":
            ev = DeployEvent(stack=t.stack, run_id=args.run_id, phase=args.phase, commit=args.commit,
                             actor=args.actor, kind=args.kind, outcome=args.outcome, run_url=args.run_url)
            print(record(clients, t, ev))
        else:
            if args.days <= 0:
                raise UsageError(f"--days {args.days}: a positive number of days")
            for e in deploys(clients, t, time.time() - args.days * 86400):
                print(" ".join(f"{k}={v}" for k, v in sorted(e.items())))
    except (UsageError, AwsError) as e:
        print(f"deploy_marker: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
