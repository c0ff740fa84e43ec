"""Day 4 settings: SLO rules, Alertmanager routing, severity subscriptions, runbooks."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import LOG_RETENTION_DAYS, setting


@dataclass(frozen=True)
class RunbookSettings:
    enabled: bool = setting(True, doc="deploy the PagerDuty webhook runbook automation")
    dry_run: bool = setting(True, doc="decide and audit, but do not act")
    allowed_asgs: list[str] = setting(default_factory=list, doc="Auto Scaling groups runbooks may scale",
                                      pattern=r"^[\w.:/-]{1,255}$")
    max_capacity: int = setting(20, doc="upper bound for any scale-out", minimum=1, maximum=1000)
    max_actions_per_hour: int = setting(3, doc="actions per runbook per hour", minimum=0, maximum=60)
    scale_out_asg: str | None = setting(None, doc="ASG the spot-cascade and latency runbooks scale out "
                                        "(must be in allowedAsgs; none: those runbooks only notify)",
                                        pattern=r"^[\w.:/-]{1,255}$")
    scale_out_step: int = setting(2, doc="instances added per scale-out action", minimum=1, maximum=50)
    log_retention_days: int = setting(30, doc="retention of the runbook functions' logs", choices=LOG_RETENTION_DAYS)


@dataclass(frozen=True)
class SloAlertingConfig:
    enabled: bool = setting(True, doc="deploy SLO rules, routing, severity subscriptions and runbooks")
    paging_enabled: bool = setting(False, doc="page PagerDuty (prod); otherwise everything goes to tickets")
    runbook_base_url: str = setting("https://runbooks.akidb.internal", doc="base URL of runbook links",
                                    format="https_url")
    grafana_base_url: str = setting("https://grafana.akidb.internal", doc="base URL of dashboard links",
                                    format="https_url")
    runbooks: RunbookSettings = setting(default_factory=RunbookSettings, doc="runbook automation guardrails")
    ticket_webhook_url: str = setting("https://tickets.akidb.internal/alertmanager", format="https_url",
                                      doc="ticket/chat receiver of P2 (and of everything when paging is off)")
    heartbeat_webhook_url: str = setting("https://heartbeat.akidb.internal/ping", format="https_url",
                                         doc="dead-man's-switch receiver of the always-firing heartbeat")
    alertmanager_secret_name: str = setting("alertmanager-akidb", format="k8s_name",
                                            doc="Secret holding alertmanager.yaml (the Alertmanager's configSecret)")
