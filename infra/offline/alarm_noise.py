"""A noise budget for the CloudWatch alarms: how often each alarm of a plan fires in a healthy week.

For every metric alarm of the plan, a seeded synthetic healthy history of its metric (HEALTHY below: what each
kind of metric looks like when nothing is wrong, and how often it has a datapoint at all) is evaluated with the
alarm's own definition, as CloudWatch evaluates it ("Evaluating an alarm" and "Configuring how CloudWatch alarms
treat missing data", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html):
every period, the last `evaluationPeriods` datapoints, missing ones replaced per `treatMissingData` (breaching /
notBreaching count as such; `missing` with no datapoint at all is INSUFFICIENT_DATA; `ignore` keeps the state),
ALARM when at least `datapointsToAlarm` breach. A firing is a transition into ALARM. The sum per stack must stay
under the plan's 10 alerts a week (`make alarm-noise`; tests/test_coverage.py).

Composite alarms are left out: they fire only when a metric alarm below them does (counted there).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.plan.model import Plan, PlannedResource
from infra.plan.types import METRIC_ALARM as ALARM

WEEK_S = 7 * 24 * 3600
PLAN_WEEKLY_ALERTS = 10  # the plan's alert budget: at most 10 alerts a week


@dataclass(frozen=True)
class Healthy:
    """A metric in a healthy week: `present` = chance a period has a datapoint; `draw(rng, period_s, threshold)`."""

    present: float
    draw: Callable[[random.Random, int, float], float]
    why: str


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: the means here are small.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _errors(per_hour: float) -> Callable[[random.Random, int, float], float]:
    return lambda rng, period, _t: float(_poisson(rng, per_hour * period / 3600))


def _below(fraction: float, spread: float) -> Callable[[random.Random, int, float], float]:
    """Lognormal around `fraction` of the threshold (latencies, ages)."""
    return lambda rng, _p, threshold: max(threshold, 1.0) * fraction * rng.lognormvariate(0, spread)


def _success(fail: float, full: float) -> Callable[[random.Random, int, float], float]:
    return lambda rng, _p, _t: 0.0 if rng.random() < fail else full


# Metric name -> healthy behaviour. Application errors: transient ones, about one every four days at full traffic
# (a healthy service still loses the odd request to a retryable failure); platform errors (AWS-side system errors,
# throttles under the limits, SNS deliveries failed after SNS's own retries): ten times rarer. Latencies and ages:
# a quarter of the threshold, lognormal; probes: one failed check in a thousand. `present` < 1 where a metric is
# published only with traffic (half the periods of a quiet internal component); 1 where a schedule publishes it.
HEALTHY: dict[str, Healthy] = {
    **{m: Healthy(0.5, _errors(0.01), "application errors, ~1.7 a week at full traffic; published with traffic")
       for m in ("Errors", "ErrorCount", "5xx", "LambdaExecutionError", "LambdaValidationError")},
    **{m: Healthy(0.5, _errors(0.001), "platform errors, ~1 in 6 weeks at full traffic; published with traffic")
       for m in ("Throttles", "SystemErrors", "ReadThrottleEvents", "WriteThrottleEvents",
                 "LambdaLimitExceededErrors", "NumberOfNotificationsFailed")},
    "DetectorErrors": Healthy(0.999, _errors(0.01), "published by every 5-minute detector run (0 when healthy); "
                                                    "one run in a thousand late"),
    # Guarded ratios (IF(requests >= n, rejected / requests, 0)): 0 unless a burst of rejections.
    **{m: Healthy(1.0, lambda rng, _p, _t: 1.0 if rng.random() < 0.0005 else 0.0,
                  "a guarded ratio, 0 but for one burst of rejected requests in 2000 periods")
       for m in ("4xx", "unauthorized")},
    "ApproximateNumberOfMessagesVisible": Healthy(1.0, _errors(0.001), "a failure queue holds nothing but the odd "
                                                                       "retried message"),
    "ApproximateAgeOfOldestMessage": Healthy(1.0, _below(0.05, 0.5), "messages are consumed within a minute"),
    **{m: Healthy(0.5, _below(0.25, 0.3), "a quarter of the threshold, lognormal; with traffic only")
       for m in ("Latency", "Duration", "InferenceLatency")},
    "Success": Healthy(1.0, _success(0.001, 1.0), "one failed probe check in a thousand"),
    "SuccessPercent": Healthy(1.0, _success(0.001, 100.0), "one failed canary run in a thousand"),
    "NumberOfMessagesPublished": Healthy(1.0, lambda rng, p, _t: float(p // 60), "a heartbeat every minute"),
    "CacheHit": Healthy(0.5, lambda rng, _p, _t: 0.97, "97% warm containers (the rate the alarm's expression "
                                                       "returns)"),
    "IsAnomaly": Healthy(1.0, lambda rng, _p, _t: 0.0, "no anomaly in a healthy week (scored x confidence = 0)"),
    "ForecastAge": Healthy(1.0, _below(0.3, 0.2), "the daily forecast is hours old, not days"),
    "MaintenanceActive": Healthy(0.0, lambda rng, _p, _t: 0.0, "no maintenance window in a healthy week"),
    "Pages": Healthy(1.0, lambda rng, _p, _t: 2.0, "2 pages a week (the outcome target is 10)"),
    "TimeToDetect": Healthy(1.0, _below(0.5, 0.2), "half the target"),
    "TimeToResolve": Healthy(1.0, _below(0.5, 0.2), "half the target"),
    # Log metric filters (infra/components/logs.py): their default value 0 is published every period.
    "WebhookSignatureFailures": Healthy(1.0, _errors(0.01), "the odd unsigned request to the public webhook URL"),
    "RunbookRefusedActions": Healthy(1.0, _errors(0.001), "a guardrail refusal, rare without incidents"),
    # The log archive's Firehose streams (published while there are log lines to deliver): the oldest record
    # waits about one buffer interval (a third of the alarm's three), S3 puts fail about one in ten thousand.
    "DeliveryToS3.DataFreshness": Healthy(0.5, _below(1 / 3, 0.2), "about one buffer interval; with log lines"),
    "DeliveryToS3.Success": Healthy(0.5, _success(0.0001, 1.0), "one failed put to S3 in ten thousand periods; "
                                                                "with log lines"),
}


class UnknownMetric(ValueError):
    """An alarm on a metric HEALTHY does not describe: its noise cannot be estimated."""


def alarm_metric(alarm: PlannedResource) -> str:
    """The metric that decides the alarm: its own, or (metric math) the first query's metric HEALTHY knows."""
    i = alarm.inputs
    if i.get("metricName"):
        return str(i["metricName"])
    names = [str((q.get("metric") or {}).get("metricName")) for q in i.get("metricQueries") or [] if q.get("metric")]
    for name in names:
        if name in HEALTHY and name not in ("Count", "RequestCount"):
            return name
    # A metric-math query naming an error metric by its id (API 401s are a log metric filter's count).
    return "unauthorized" if any("unauthorized" in n for n in names) else (names[0] if names else "?")


def _period(alarm: PlannedResource) -> int:
    i = alarm.inputs
    if i.get("period"):
        return int(i["period"])
    periods = [int((q.get("metric") or {}).get("period") or 0) for q in i.get("metricQueries") or []]
    return max([p for p in periods if p] or [60])


def _breaches(value: float, threshold: float, op: str) -> bool:
    return {"GreaterThanThreshold": value > threshold, "GreaterThanOrEqualToThreshold": value >= threshold,
            "LessThanThreshold": value < threshold, "LessThanOrEqualToThreshold": value <= threshold}[op]


def weekly_firings(alarm: PlannedResource, seed: int = 0, weeks: int = 1) -> float:
    """Transitions into ALARM per week of the alarm on its metric's healthy history (seeded, deterministic)."""
    i = alarm.inputs
    metric = alarm_metric(alarm)
    if metric not in HEALTHY:
        raise UnknownMetric(f"{alarm.label}: no healthy model for metric {metric!r} (infra/offline/alarm_noise.py "
                            f"HEALTHY knows {', '.join(sorted(HEALTHY))})")
    healthy = HEALTHY[metric]
    period = _period(alarm)
    n = int(i.get("evaluationPeriods") or 1)
    m = int(i.get("datapointsToAlarm") or n)
    threshold = float(i.get("threshold") or 0.0)
    op = str(i.get("comparisonOperator") or "GreaterThanThreshold")
    treat = str(i.get("treatMissingData") or "missing")
    digest = hashlib.sha256(f"{seed}:{alarm.urn}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    window: list[bool | None] = []
    state, firings = "OK", 0
    for _ in range(weeks * WEEK_S // period):
        present = rng.random() < healthy.present
        window.append(_breaches(healthy.draw(rng, period, threshold), threshold, op) if present else None)
        window = window[-n:]
        if all(v is None for v in window) and treat in ("missing", "ignore"):
            state = "INSUFFICIENT_DATA" if treat == "missing" else state
            continue
        filled = [(treat == "breaching") if v is None else v for v in window
                  if v is not None or treat in ("breaching", "notBreaching")]
        new = "ALARM" if sum(filled) >= m else "OK"
        firings += new == "ALARM" and state != "ALARM"
        state = new
    return firings / weeks


def noise(plan: Plan, seed: int = 0, weeks: int = 4) -> dict[str, float]:
    """Alarm name -> expected firings per healthy week (mean over `weeks` seeded weeks)."""
    return {str(a.inputs.get("name")): weekly_firings(a, seed, weeks) for a in plan.of_type(ALARM)}


def main(argv: list[str] | None = None) -> int:
    from infra.offline.plan import run_plan  # the program: only this command needs it

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--stack", action="append", default=[], help="stack (repeatable; default staging and prod)")
    ap.add_argument("--weeks", type=int, default=4, help="healthy weeks to average over")
    ap.add_argument("--verbose", action="store_true", help="every alarm that fires at all")
    args = ap.parse_args(argv)
    worst = 0.0
    for stack in args.stack or ["staging", "prod"]:
        result = run_plan(stack, quiet=True, write=False, offline_secrets=True)
        assert result.plan is not None
        per_alarm = noise(result.plan, weeks=args.weeks)
        total = sum(per_alarm.values())
        worst = max(worst, total)
        print(f"{stack}: {len(per_alarm)} alarms, {total:.2f} firings per healthy week "
              f"(budget {PLAN_WEEKLY_ALERTS})")
        for name, rate in sorted(per_alarm.items(), key=lambda kv: -kv[1]):
            if args.verbose and rate:
                print(f"  {rate:6.2f}  {name}")
    return 0 if worst < PLAN_WEEKLY_ALERTS else 1


if __name__ == "__main__":
    sys.exit(main())


def describe_models() -> dict[str, Any]:
    """The healthy model of each metric, for the docs."""
    return {name: {"present": h.present, "why": h.why} for name, h in sorted(HEALTHY.items())}
