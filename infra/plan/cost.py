"""Monthly cost estimate of what a plan creates: per component and resource type, from the checked-in price
table (`infra/plan/prices.yaml`, with its source and date) and the usage assumptions of the stack config
(`costWatch.usage`). Counts (alarms and their metrics, dashboards, canaries and their schedules, keys,
secrets, functions with their memory, schedules and triggers, pods and their requests) come from the plan
itself; traffic-driven lines (requests, traces, log GB, stored GB, custom metrics) from the assumptions.

Compared with the project plan's +$170/month (its "Cost Analysis") and with `costWatch.ceilingUsd`:
the plan-time rule `cost_within_ceiling` fails above the ceiling; `python -m infra.offline.cost_report` prints it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from infra.config.cost_watch import UsageAssumptions
from infra.config.synthetics import schedule_minutes
from infra.core import yamldoc
from infra.plan.model import Plan, PlannedResource

PRICES_PATH = Path(__file__).with_name("prices.yaml")
PLAN_TARGET_USD = 170.0  # the project plan's cost analysis: "+$170/month"
HOURS_PER_MONTH = 730.0
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
WEEKS_PER_MONTH = DAYS_PER_MONTH / 7
SHARED = "(shared usage)"
EXTERNAL = "(external)"


@dataclass(frozen=True)
class Line:
    component: str
    kind: str  # resource type or usage line
    quantity: str
    usd: float


@dataclass
class Estimate:
    stack: str
    lines: list[Line] = field(default_factory=list)
    source: str = ""
    date: str = ""

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    def by(self, attr: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for line in self.lines:
            out[getattr(line, attr)] += line.usd
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@cache
def price_table(path: Path = PRICES_PATH) -> dict[str, Any]:
    doc = yamldoc.safe_load(path.read_text())
    if not isinstance(doc, dict) or not {"source", "date", "prices"} <= doc.keys():
        raise ValueError(f"{path}: a price table needs 'source', 'date' and 'prices'")
    return doc


def _price(service: str, item: str) -> float:
    try:
        return float(price_table()["prices"][service][item])
    except KeyError as err:
        raise KeyError(f"{PRICES_PATH} has no price {service}.{item}") from err


def runs_per_month(expression: str) -> float:
    """Invocations a month of an EventBridge/Synthetics schedule: rate(...) exactly, cron(...) by its fields."""
    m = re.match(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$", expression)
    if m:
        n, unit = int(m.group(1)), m.group(2).rstrip("s")
        return {"minute": MINUTES_PER_MONTH, "hour": HOURS_PER_MONTH, "day": DAYS_PER_MONTH}[unit] / n
    m = re.match(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$", expression)
    if not m:
        raise ValueError(f"schedule {expression!r}: expected rate(...) or cron(...)")
    minute, hour, dom, _month, dow, _year = m.groups()

    def count(f: str, full: int) -> int:
        return full if f in ("*", "?") else len(f.split(","))

    per_day = count(minute, 60) * count(hour, 24)
    if dom not in ("*", "?"):
        days = float(count(dom, 31))
    elif dow not in ("*", "?"):
        days = count(dow, 7) * WEEKS_PER_MONTH
    else:
        days = DAYS_PER_MONTH
    return per_day * days


def _quantity(text: str) -> float:
    """Kubernetes quantities as cores / GiB: 250m -> 0.25, 512Mi -> 0.5, 2Gi -> 2."""
    m = re.match(r"^([\d.]+)(m|Ki|Mi|Gi)?$", str(text))
    if not m:
        raise ValueError(f"unreadable Kubernetes quantity {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"m": 1e-3, "Ki": 1 / 1024 ** 2, "Mi": 1 / 1024, "Gi": 1.0, None: 1.0}[unit]


def _components(plan: Plan) -> dict[str, str]:
    """Resource name -> the day component it belongs to (a direct child of the stack)."""
    parents = {r.name: r.parent for r in plan.resources}
    types = {r.name: r.type for r in plan.resources if not r.custom}
    out = {}
    for r in plan.resources:
        node, top = r.name, None
        while parents.get(node) is not None:
            node = parents[node]  # type: ignore[assignment]
            top = node
        out[r.name] = types.get(top, "(stack)").split(":")[1] if top else "(stack)"
    return out


def _alarm_metrics(r: PlannedResource) -> int:
    queries = r.inputs.get("metricQueries") or []
    if not queries:
        return 1
    n = sum(1 for q in queries if q.get("metric"))
    n += sum(2 for q in queries if "ANOMALY_DETECTION_BAND" in str(q.get("expression") or ""))
    return max(n, 1)


def estimate(plan: Plan, usage: UsageAssumptions | None = None, stack: str = "") -> Estimate:
    u = usage or plan.config.cost_watch.usage
    comp = _components(plan)
    doc = price_table()
    est = Estimate(stack=stack, source=str(doc["source"]), date=str(doc["date"]))
    add = est.lines.append
    of = plan.of_type

    for r in of("aws:cloudwatch/metricAlarm:MetricAlarm"):
        n = _alarm_metrics(r)
        hi = int(r.inputs.get("period") or 60) < 60
        add(Line(comp[r.name], "cloudwatch alarm", f"{n} metric(s)",
                 n * _price("cloudwatch", "alarm_metric_high_resolution" if hi else "alarm_metric_standard")))
    for r in of("aws:cloudwatch/compositeAlarm:CompositeAlarm"):
        add(Line(comp[r.name], "cloudwatch composite alarm", "1", _price("cloudwatch", "composite_alarm")))
    for r in of("aws:cloudwatch/dashboard:Dashboard"):
        add(Line(comp[r.name], "cloudwatch dashboard", "1", _price("cloudwatch", "dashboard")))
    for r in of("aws:synthetics/canary:Canary"):
        runs = MINUTES_PER_MONTH / schedule_minutes(str(r.get("schedule.expression")))
        add(Line(comp[r.name], "synthetics canary", f"{runs:,.0f} runs", runs * _price("synthetics", "canary_run")))
        # each run stores its log, result and HAR in the artifact bucket
        add(Line(comp[r.name], "synthetics artifacts (S3 PUT)", f"{3 * runs:,.0f} PUTs",
                 3 * runs / 1000 * _price("s3", "put_1k")))
    for r in of("aws:kms/key:Key"):
        add(Line(comp[r.name], "kms key", "1", _price("kms", "key_month")))
    for r in of("aws:secretsmanager/secret:Secret"):
        add(Line(comp[r.name], "secrets manager secret", "1", _price("secretsmanager", "secret_month")))
    for r in of("aws:budgets/budget:Budget"):
        add(Line(comp[r.name], "budget", "1", _price("free", "budget_month")))
    for r in of("aws:costexplorer/anomalyMonitor:AnomalyMonitor"):
        add(Line(comp[r.name], "cost anomaly monitor", "1", _price("free", "anomaly_monitor_month")))

    _functions(plan, u, comp, add)
    _experiments(plan, comp, add)

    for r in of("aws:apigatewayv2/api:Api"):
        add(Line(comp[r.name], "http api", f"{u.webhook_requests_per_month:,.0f} requests",
                 u.webhook_requests_per_month / 1e6 * _price("apigateway", "http_request_million")))
    for r in of("aws:dynamodb/table:Table"):
        # webhook dedupe + action counters: a few writes per delivery, a few reads
        add(Line(comp[r.name], "dynamodb table", f"{3 * u.webhook_requests_per_month:,.0f} writes",
                 3 * u.webhook_requests_per_month / 1e6 * _price("dynamodb", "write_request_million")))
    queues = of("aws:sqs/queue:Queue")
    for r in queues:
        add(Line(comp[r.name], "sqs queue", f"{3 * u.webhook_requests_per_month:,.0f} requests",
                 3 * u.webhook_requests_per_month / 1e6 * _price("sqs", "request_million")))

    def spread(resources: list[PlannedResource], kind: str, quantity: str, usd: float) -> None:
        """A usage line shared by resources of one type, split evenly between them."""
        if not resources:
            if usd:
                add(Line(SHARED, kind, quantity, usd))
            return
        for r in resources:
            add(Line(comp[r.name], kind, f"{quantity} / {len(resources)}", usd / len(resources)))

    logs = of("aws:cloudwatch/logGroup:LogGroup")
    spread(logs, "logs ingest", f"{u.log_ingest_gb_per_month:g} GB", u.log_ingest_gb_per_month
           * _price("cloudwatch", "logs_ingest_gb"))
    spread(logs, "logs storage", f"{u.log_stored_gb:g} GB", u.log_stored_gb * _price("cloudwatch", "logs_storage_gb"))
    spread(logs, "logs insights", f"{u.logs_insights_gb_scanned:g} GB scanned",
           u.logs_insights_gb_scanned * _price("cloudwatch", "logs_insights_gb_scanned"))
    # The log archive: every line ingested is put to its Region's stream (an upper bound: CloudWatch Logs gzips
    # the batches it sends).
    streams = of("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream")
    if streams:  # none with logs.enabled off: no archive to pay for
        spread(streams, "firehose ingest (log archive)", f"{u.log_ingest_gb_per_month:g} GB",
               u.log_ingest_gb_per_month * _price("firehose", "ingest_gb"))
    spread(of("aws:s3/bucket:Bucket"), "s3 storage", f"{u.s3_stored_gb:g} GB",
           u.s3_stored_gb * _price("s3", "standard_gb"))
    topics = [t for t in of("aws:sns/topic:Topic") if "alerts" in str(t.inputs.get("name"))]
    spread(topics, "sns notifications", f"{u.notifications_per_month:,.0f}",
           u.notifications_per_month / 1e6 * (_price("sns", "request_million")
                                              + _price("sns", "https_notification_million")))
    xray = [r for r in plan.resources if r.type.startswith("aws:xray/group")]
    if xray:
        spread(xray[:1], "x-ray traces recorded", f"{u.traces_recorded_per_month:,.0f}",
               u.traces_recorded_per_month / 1e6 * _price("xray", "traces_recorded_million"))
        spread(xray[:1], "x-ray traces retrieved", f"{u.traces_retrieved_per_month:,.0f}",
               u.traces_retrieved_per_month / 1e6 * _price("xray", "traces_retrieved_million"))
    add(Line(SHARED, "custom metrics", f"{u.custom_metrics:g} metrics",
             u.custom_metrics * _price("cloudwatch", "custom_metric")))
    _pods(plan, u, comp, add)
    for r in plan.resources:
        if r.custom and r.type.startswith("pagerduty:index/"):  # the stack's PagerDuty side (pagerduty.manage)
            add(Line(comp[r.name], "pagerduty object (billed per seat)", "1",
                     _price("external", "pagerduty_object_month")))
    if u.pagerduty_users:
        add(Line(EXTERNAL, "pagerduty seats", f"{u.pagerduty_users:g} users",
                 u.pagerduty_users * _price("external", "pagerduty_user_month")))
    return est


def action_minutes(template: PlannedResource) -> float:
    """What one run of an FIS experiment template bills: each action's duration (a one-shot spot interruption:
    its notice), at least one minute per action (FIS bills action-minutes, AWS FIS pricing)."""
    total = 0.0
    for action in template.inputs.get("actions") or []:
        params = {p.get("key"): str(p.get("value")) for p in action.get("parameters") or []}
        text = params.get("duration") or params.get("durationBeforeInterruption") or ""
        m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", text)
        minutes = (int(m[1] or 0) * 60 + int(m[2] or 0)) if m else 0
        total += max(1, minutes)
    return total


def _experiments(plan: Plan, comp: dict[str, str], add: Any) -> None:
    """The weekly game-day workflow starts one experiment a week, the templates in turn: each template runs
    WEEKS_PER_MONTH / len(templates) times a month. The templates themselves are free."""
    templates = plan.of_type("aws:fis/experimentTemplate:ExperimentTemplate")
    for r in templates:
        runs = WEEKS_PER_MONTH / len(templates)
        minutes = action_minutes(r)
        add(Line(comp[r.name], "fis experiment runs", f"{runs:.2f} runs x {minutes:g} action-minutes",
                 runs * minutes * _price("fis", "action_minute")))


def _functions(plan: Plan, u: UsageAssumptions, comp: dict[str, str], add: Any) -> None:
    rules = {r.inputs.get("name"): str(r.inputs.get("scheduleExpression") or "") for r in
             plan.of_type("aws:cloudwatch/eventRule:EventRule")}
    invocations: dict[str, float] = defaultdict(float)
    for t in plan.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        arn = str(t.inputs.get("arn") or "")
        if ":function:" in arn and rules.get(t.inputs.get("rule")):
            invocations[arn.split(":function:")[1].split(":")[0]] += runs_per_month(rules[t.inputs["rule"]])
    for s in plan.of_type("aws:scheduler/schedule:Schedule"):
        arn = str(s.get("target.arn") or "")
        if ":function:" in arn:
            invocations[arn.split(":function:")[1].split(":")[0]] += runs_per_month(str(s.inputs["scheduleExpression"]))
    for i in plan.of_type("aws:apigatewayv2/integration:Integration"):
        m = re.search(r":function:([\w-]+)", str(i.inputs.get("integrationUri") or ""))
        if m:
            invocations[m.group(1)] += u.webhook_requests_per_month
    for esm in plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        m = re.search(r"(?:function:)?([\w-]+)$", str(esm.inputs.get("functionName") or ""))
        if m:
            invocations[m.group(1)] += u.webhook_requests_per_month
    edge_name = plan.outputs.get("edgeFunctionName")
    for fn in plan.of_type("aws:lambda/function:Function"):
        name = str(fn.inputs.get("name"))
        memory_gb = float(fn.inputs.get("memorySize") or 128) / 1024
        if name == edge_name:
            n = u.edge_requests_per_month
            usd = (n / 1e6 * _price("lambda", "edge_request_million")
                   + n * memory_gb * u.edge_duration_ms / 1000 * _price("lambda", "edge_gb_second"))
            add(Line(comp[fn.name], "lambda@edge function", f"{n:,.0f} requests x {u.edge_duration_ms:g} ms", usd))
            continue
        n = invocations.get(name, 0.0)
        # Upper bound: every invocation runs to its timeout.
        seconds = float(fn.inputs.get("timeout") or 3)
        arm = "arm64" in (fn.inputs.get("architectures") or [])
        usd = (n / 1e6 * _price("lambda", "request_million")
               + n * memory_gb * seconds * _price("lambda", "gb_second_arm" if arm else "gb_second_x86"))
        add(Line(comp[fn.name], "lambda function", f"{n:,.0f} invocations x <= {seconds:g} s", usd))


def _pods(plan: Plan, u: UsageAssumptions, comp: dict[str, str], add: Any) -> None:
    for r in plan.of_type("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet"):
        spec = r.inputs.get("spec") or {}
        pods = float(spec.get("replicas") or 1) if r.type.endswith("Deployment") else u.cluster_nodes
        cpu = mem = 0.0
        for c in (spec.get("template") or {}).get("spec", {}).get("containers", []):
            req = (c.get("resources") or {}).get("requests") or {}
            cpu += _quantity(req.get("cpu", "0"))
            mem += _quantity(req.get("memory", "0"))
        usd = pods * HOURS_PER_MONTH * (cpu * _price("fargate", "vcpu_hour") + mem * _price("fargate", "gb_hour"))
        kind = r.type.rsplit(":", 1)[-1].lower()
        add(Line(comp[r.name], f"pod requests ({kind})", f"{pods:g} pods x {cpu:g} vCPU {mem:g} GiB", usd))


def report(est: Estimate, ceiling: float) -> str:
    lines = [f"Monthly cost estimate of stack '{est.stack}' (prices: {est.source}; {est.date})", "",
             "Per component:"]
    lines += [f"  {usd:9.2f}  {name}" for name, usd in est.by("component").items()]
    lines += ["", "Per resource type / usage line:"]
    lines += [f"  {usd:9.2f}  {name}" for name, usd in est.by("kind").items()]
    verdict = "within" if est.total <= ceiling else "ABOVE"
    lines += ["", f"Total: ${est.total:,.2f}/month vs the plan's +${PLAN_TARGET_USD:.0f}/month "
                  f"({est.total - PLAN_TARGET_USD:+,.2f}); ceiling ${ceiling:,.2f}: {verdict}"]
    return "\n".join(lines)
