"""The runbook ids the automation dispatches on: shared by the Lambda (runbooks.RUNBOOKS must hold exactly these)
and by infra (rules/slos.yaml's `akidb.io/runbook` must name one of them). Constants only: infra imports this
module without importing any Lambda code.

MANUAL_RUNBOOK_IDS are the catalogue's (rules/runbooks.yaml) `automation: manual` ids, baked in because the Lambda
cannot read rules/ at run time; tests/test_runbook_catalogue.py fails when the two disagree."""

from __future__ import annotations

SPOT_CASCADE = "error-budget-fast-burn"
LATENCY = "latency-slo-violation"
EDGE_COLD_START = "lambda-edge-cold-start"

RUNBOOK_IDS: tuple[str, ...] = (SPOT_CASCADE, LATENCY, EDGE_COLD_START)

# rules/runbooks.yaml, automation: manual (a person follows the page; the webhook answers 200 "no-automation").
MANUAL_RUNBOOK_IDS: tuple[str, ...] = (
    "service-down",
    "traffic-drop",
    "memory-leak",
    "memory-pressure",
    "processing-backlog",
    "slo-monitoring-blind",
    "edge-errors",
    "edge-latency",
    "edge-maintenance",
    "synthetic-probe-failure",
    "alerting-path-failure",
    "alertmanager-heartbeat-missing",
    "runbook-webhook-rejected",
    "anomaly-pipeline-failure",
    "anomaly-episode",
    "incident-outcome-target",
    "log-archive-delivery",
    "trace-pipeline",
)
