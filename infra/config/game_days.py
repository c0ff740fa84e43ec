"""Game days: AWS FIS experiment templates of the plan's chaos tests, run weekly in staging (docs/game-days.md).

Every experiment has a bounded target selection, a duration, stop conditions on the stack's alarms and what it
is expected to do to the pager (`expect`: one page, or none), which the weekly report checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.config.formats import ASG_NAME_PATTERN
from infra.config.schema import LOG_RETENTION_DAYS, setting

ENVIRONMENTS = ("staging", "prod")
Expect = Literal["page", "no-page"]
EXPECT_CHOICES = ("page", "no-page")
# An Auto Scaling group name: 1-255 characters without ':' (AWS Auto Scaling API reference).
RUNBOOK_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


@dataclass(frozen=True)
class SpotInterruptionSettings:
    enabled: bool = setting(True, doc="template the spot interruption of the REST tier's spot capacity")
    asg_name: str | None = setting(None, doc="Auto Scaling group of the REST tier's spot instances (targets: its "
                                             "running instances, by the aws:autoscaling:groupName tag)",
                                   pattern=ASG_NAME_PATTERN)
    instance_count: int = setting(1, doc="instances interrupted per experiment (COUNT(n))", minimum=1, maximum=10)
    # FIS aws:ec2:send-spot-instance-interruptions: durationBeforeInterruption from 2 to 15 minutes.
    notice_minutes: int = setting(2, doc="minutes between the interruption notice and the interruption",
                                  minimum=2, maximum=15)
    expect: Expect = setting("page", doc="what the pager should see: one page, or none", choices=EXPECT_CHOICES)
    expected_runbook: str | None = setting("error-budget-fast-burn", doc="runbook the page should run (none: any)",
                                           pattern=RUNBOOK_ID_PATTERN)


@dataclass(frozen=True)
class LambdaFaultSettings:
    enabled: bool = setting(True, doc="template invocation errors and added delay on the anomaly detector "
                                      "(needs the FIS Lambda extension on the function: docs/game-days.md)")
    invocation_percentage: int = setting(100, doc="share of invocations that fail / are delayed",
                                         minimum=1, maximum=100)
    # The detector's DetectorErrors alarm needs 30 minutes of errors: a shorter error fault tickets nothing.
    error_duration_minutes: int = setting(35, doc="how long invocations fail", minimum=1, maximum=60)
    delay_duration_minutes: int = setting(15, doc="how long invocations are delayed", minimum=1, maximum=60)
    delay_ms: int = setting(2000, doc="startup delay added to each affected invocation", minimum=1,
                            maximum=900_000)
    expect: Expect = setting("no-page", doc="what the pager should see (the detector's alarms ticket, P2)",
                             choices=EXPECT_CHOICES)


@dataclass(frozen=True)
class PodFaultSettings:
    enabled: bool = setting(False, doc="template network latency on the REST tier's pods (FIS EKS action; the "
                                       "cluster needs EKS access entries: docs/game-days.md)")
    cluster_name: str | None = setting(None, doc="EKS cluster of the REST tier",
                                       pattern=r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
    namespace: str = setting("akidb", doc="namespace of the REST pods (the FIS service account and RBAC live "
                                          "there, nowhere else)", format="k8s_namespace")
    label_selector: str = setting("app.kubernetes.io/name=akidb-rest", doc="label selector of the REST pods "
                                  "(key=value)", pattern=r"^[A-Za-z0-9./_-]{1,253}=[A-Za-z0-9._-]{0,63}$")
    target_percent: int = setting(50, doc="share of the selected pods affected (PERCENT(p))", minimum=1,
                                  maximum=100)
    delay_ms: int = setting(300, doc="network latency added", minimum=1, maximum=60_000)
    jitter_ms: int = setting(50, doc="latency jitter", minimum=0, maximum=60_000)
    duration_minutes: int = setting(10, doc="how long the latency lasts", minimum=1, maximum=60)
    expect: Expect = setting("page", doc="what the pager should see", choices=EXPECT_CHOICES)
    expected_runbook: str | None = setting("latency-slo-violation", doc="runbook the page should run (none: any)",
                                           pattern=RUNBOOK_ID_PATTERN)


@dataclass(frozen=True)
class GameDaysConfig:
    enabled: bool = setting(False, doc="deploy the FIS experiment templates (staging; prod only when listed in "
                                       "allowedEnvironments too)")
    allowed_environments: list[str] = setting(default_factory=lambda: ["staging"], choices=ENVIRONMENTS,
                                              doc="environments experiments may exist in")
    log_retention_days: int = setting(30, doc="retention of the experiments' log group", choices=LOG_RETENTION_DAYS)
    spot_interruption: SpotInterruptionSettings = setting(default_factory=SpotInterruptionSettings,
                                                          doc="REST tier spot interruption")
    lambda_faults: LambdaFaultSettings = setting(default_factory=LambdaFaultSettings,
                                                 doc="anomaly detector invocation faults")
    pod_faults: PodFaultSettings = setting(default_factory=PodFaultSettings, doc="REST pod network latency")


def cross_field_problems(cfg: GameDaysConfig, ns: str, *, environment: str) -> list[tuple[str, object, str]]:
    """(key, value, allowed) for what no single game-day field can check. An experiment whose target or stop
    alarms belong to a switched-off component is not an error: it is skipped, and the plan's `gameDaySkipped`
    output says why (infra/components/game_days.py)."""
    if not cfg.enabled:
        return []
    p: list[tuple[str, object, str]] = []
    if environment not in cfg.allowed_environments:
        p.append((f"{ns}:gameDays.enabled", True, f"experiments may only exist in {cfg.allowed_environments} "
                  f"(gameDays.allowedEnvironments); this stack is {environment}"))
    if cfg.spot_interruption.enabled and not cfg.spot_interruption.asg_name:
        p.append((f"{ns}:gameDays.spotInterruption.asgName", None, "required when spotInterruption is enabled"))
    pods = cfg.pod_faults
    if pods.enabled and not pods.cluster_name:
        p.append((f"{ns}:gameDays.podFaults.clusterName", None, "required when podFaults is enabled"))
    if pods.enabled and pods.namespace in ("kube-system", "kube-public", "kube-node-lease"):
        p.append((f"{ns}:gameDays.podFaults.namespace", pods.namespace, "must be the REST tier's namespace, not a "
                  "system one"))
    return p
