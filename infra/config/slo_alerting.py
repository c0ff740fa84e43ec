"""SLO alerting settings: SLO rules, Alertmanager routing, severity subscriptions, runbooks."""

from __future__ import annotations

from dataclasses import dataclass, field

from infra.config.formats import ASG_NAME_PATTERN
from infra.config.schema import AWS_REGION_PATTERN, LOG_RETENTION_DAYS, Problem, setting
from infra.slo.spec import SLO_FILE, Slo, SloSpecError, load_slos
from infra.slo.symptoms import SYMPTOMS_FILE, SymptomSpec, load_symptoms

# The PagerDuty webhook receiver's Lambda timeout (PagerDuty waits 5 s for a 2xx): no invocation lasts longer,
# so a duration alarm at or above it could never fire.
RUNBOOK_RECEIVER_TIMEOUT_S = 4


@dataclass(frozen=True)
class RunbookSettings:
    enabled: bool = setting(True, doc="deploy the PagerDuty webhook runbook automation")
    dry_run: bool = setting(True, doc="decide and audit, but do not act")
    # The explicit guard of prod's dry-run switch (as pagingDisabledReason guards paging): a prod stack whose
    # runbooks only audit must say so, and why (the default is dry-run: a prod file that forgets dryRun: false
    # would otherwise plan, deploy and never act).
    dry_run_reason: str | None = setting(None, format="printable",
                                         doc="why this prod stack's runbooks only decide and audit: required to "
                                             "keep dryRun true in prod (and refused otherwise)")
    allowed_asgs: list[str] = setting(default_factory=list, doc="Auto Scaling groups runbooks may scale",
                                      pattern=ASG_NAME_PATTERN)
    max_capacity: int = setting(20, doc="upper bound for any scale-out", minimum=1, maximum=1000)
    max_actions_per_hour: int = setting(3, doc="actions per runbook per hour", minimum=0, maximum=60)
    scale_out_asg: str | None = setting(None, doc="ASG the spot-cascade and latency runbooks scale out "
                                        "(must be in allowedAsgs; none: those runbooks only notify)",
                                        pattern=ASG_NAME_PATTERN)
    scale_out_step: int = setting(2, doc="instances added per scale-out action", minimum=1, maximum=50)
    log_retention_days: int = setting(30, doc="retention of the runbook functions' logs", choices=LOG_RETENTION_DAYS)


@dataclass(frozen=True)
class MaintenanceWindow:
    service: str = setting(doc="service label whose alerts the window mutes", pattern=r"^[a-z][a-z0-9-]{0,62}$")
    weekdays: list[str] = setting(doc="weekday names or ranges, e.g. tuesday or monday:friday", min_items=1,
                                  pattern=r"^(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
                                          r"(:(monday|tuesday|wednesday|thursday|friday|saturday|sunday))?\Z")
    start: str = setting(doc="start time HH:MM (UTC)", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")
    end: str = setting(doc="end time HH:MM (UTC), after start", pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]\Z")


@dataclass(frozen=True)
class ChatbotSettings:
    """AWS Chatbot: the CloudWatch side of the chat receiver (the Slack workspace must be authorised once in the
    console; these ids are not secrets)."""

    slack_team_id: str = setting(doc="Slack workspace id (T...)", pattern=r"^T[A-Z0-9]{6,14}\Z")
    slack_channel_id: str = setting(doc="Slack channel id (C...)", pattern=r"^[CG][A-Z0-9]{6,14}\Z")
    region: str = setting("us-west-2", doc="region of the Chatbot control plane", pattern=AWS_REGION_PATTERN)


@dataclass(frozen=True)
class DeployGateSettings:
    """The error budget policy of a deploy (Google SRE Workbook, "Example Error Budget Policy": changes halt
    while a service is over its budget for the trailing period): `python -m infra.tools.budget_gate`."""

    # 1.0 is the workbook's policy: hold only once a 30-day budget is exhausted. A smaller share holds earlier
    # (0.75: keep a quarter of the budget for the incidents still to come this period).
    max_budget_spent: float = setting(1.0, doc="share of its error budget (over its window, e.g. 30d) an SLO may "
                                      "have spent for a prod deploy to go ahead (`python -m "
                                      "infra.tools.budget_gate`; 1.0: hold once a budget is exhausted)",
                                      exclusive_minimum=0, maximum=1)


@dataclass(frozen=True)
class SloAlertingConfig:
    enabled: bool = setting(True, doc="deploy SLO rules, routing, severity subscriptions and runbooks")
    paging_enabled: bool = setting(False, doc="page PagerDuty (prod); otherwise everything goes to tickets")
    # The explicit guard of prod's paging switch (as protectStateful guards its protection): a prod stack that
    # pages nobody must say so, and why, in its stack file.
    paging_disabled_reason: str | None = setting(None, format="printable",
                                                 doc="why this prod stack pages nobody: required to set "
                                                     "pagingEnabled false in prod (and refused otherwise)")
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
    chat_channel: str = setting("#akidb-alerts", pattern=r"^#[a-z0-9_-]{1,80}$",
                                doc="Slack channel of informational and P2 alerts (webhook: secret slackWebhookUrl)")
    chatbot: ChatbotSettings | None = setting(None, doc="AWS Chatbot channel the P2 severity topics of every alarm "
                                              "region notify (none: CloudWatch P2 goes to tickets only)")
    maintenance_windows: list[MaintenanceWindow] = setting(
        default_factory=list, doc="recurring windows in which a service's alerts are muted (Alertmanager "
        "time_intervals); the deploy workflow raises the CloudWatch suppressor for ad-hoc ones")
    deploy_gate: DeployGateSettings = setting(default_factory=DeployGateSettings,
                                              doc="error budget policy the deploy workflow enforces")
    # rules/slos.yaml and rules/symptoms.yaml, loaded and validated once with the config (load_slo_definitions),
    # then passed to the components, the dashboards and the plan's validation.
    slos: tuple[Slo, ...] = field(default=(), metadata={"doc": "SLO definitions", "internal": True})
    symptoms: SymptomSpec | None = field(default=None, metadata={"doc": "symptom alerts", "internal": True})


class DefinitionProblem(Problem):
    """A problem of rules/slos.yaml or rules/symptoms.yaml, reported with the config's problems."""

    def __str__(self) -> str:
        return f"{self.key}: {self.allowed}"


def load_slo_definitions() -> tuple[tuple[Slo, ...], SymptomSpec | None, list[Problem]]:
    """The SLO and symptom definitions, or the problems that make them unusable (never an exception)."""
    problems: list[Problem] = []
    slos: tuple[Slo, ...] = ()
    symptoms: SymptomSpec | None = None
    try:
        slos = tuple(load_slos())
    except SloSpecError as err:
        problems += [DefinitionProblem(str(SLO_FILE.name), None, p) for p in err.problems]
    try:
        symptoms = load_symptoms(slos)
    except SloSpecError as err:
        problems += [DefinitionProblem(str(SYMPTOMS_FILE.name), None, p) for p in err.problems]
    return slos, symptoms, problems
