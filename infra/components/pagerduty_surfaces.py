"""The PagerDuty side's shape, without the PagerDuty SDK: the paging surfaces and severities that get a service each,
the integration type of Alertmanager's, and the webhook events the runbook receiver reads. The component
(infra/components/pagerduty.py) builds from these and the plan-time rules (infra/validation/pagerduty.py) check
against them; the rules import no PagerDuty SDK, so the policy pack needs none either."""

from __future__ import annotations

PAGING_SEVERITIES = ("P0", "P1")
# A surface is a way a page enters PagerDuty.
SURFACES: dict[str, str] = {
    "rest": "akidb-rest SLO and symptom pages: Prometheus -> Alertmanager -> Events API v2",
    "cloudwatch": "CloudWatch alarms of every alarm region -> P0/P1 severity topics -> Amazon CloudWatch integration",
}
EVENTS_API_V2 = "events_api_v2_inbound_integration"
# The vendor name PagerDuty lists for its CloudWatch integration (GET /vendors; get_vendor matches by name).
CLOUDWATCH_VENDOR = "Amazon CloudWatch"
# The incident lifecycle the runbook receiver and the incident timeline read (lambdas/runbook_automation/
# timeline.py LIFECYCLE; tests/test_pagerduty.py keeps the two equal).
WEBHOOK_EVENTS = ("incident.triggered", "incident.acknowledged", "incident.escalated", "incident.resolved",
                  "incident.reopened")
