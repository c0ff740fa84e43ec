"""Settings of the alarms on the alerting path itself (the `alertingPath` section): SNS deliveries, the runbook
queues, functions and API, Alertmanager's heartbeat (infra/components/alerting_path.py)."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import setting


@dataclass(frozen=True)
class HeartbeatSettings:
    """Alertmanager's dead-man's switch, received by the stack (infra/components/alerting_path.py)."""

    enabled: bool = setting(True, doc="route the always-firing heartbeat to an SNS topic of the stack (IAM-signed "
                                      "publish, no shared secret) and page P1 when it stops")
    service_account: str = setting("kube-prometheus-stack-alertmanager", format="k8s_name",
                                   doc="Alertmanager's service account in kubernetes.namespace: the only identity "
                                       "the publish role trusts (annotate it with that role)")
    missing_periods: int = setting(2, minimum=1, maximum=12,
                                   doc="5-minute periods without a heartbeat before the P1 page")


@dataclass(frozen=True)
class AlertingPathConfig:
    enabled: bool = setting(True, doc="alarm on the alerting path itself (SNS delivery, queues, functions, API)")
    queue_age_s: int = setting(900, doc="oldest message age of a failures/jobs queue that fires", minimum=60,
                               maximum=1209600)
    webhook_p99_ms: int = setting(3000, doc="runbook webhook p99 duration that fires (PagerDuty waits 5 s)",
                                  minimum=100, maximum=30000)
    api_p99_ms: int = setting(4000, doc="webhook API p99 latency that fires", minimum=100, maximum=30000)
    webhook_4xx_share: float = setting(0.2, doc="share of webhook API requests answered 4xx that tickets",
                                       exclusive_minimum=0.0, maximum=1.0)
    webhook_401_share: float = setting(0.5, doc="share of webhook API requests answered 401 that pages P1 "
                                       "(a wrong PagerDuty signing secret answers 401 to every delivery)",
                                       exclusive_minimum=0.0, maximum=1.0)
    webhook_min_requests: int = setting(3, doc="requests in 5 minutes below which the 4xx/401 shares are not "
                                        "judged (a lone probe is not a rate)", minimum=1, maximum=10000)
    heartbeat: HeartbeatSettings = setting(default_factory=HeartbeatSettings,
                                           doc="Alertmanager's heartbeat and its missing-heartbeat alarm")
