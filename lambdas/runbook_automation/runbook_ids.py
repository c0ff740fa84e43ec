"""The runbook ids the automation dispatches on: shared by the Lambda (runbooks.RUNBOOKS must hold exactly these)
and by infra (rules/slos.yaml's `akidb.io/runbook` must name one of them). Constants only: infra imports this
module without importing any Lambda code."""

from __future__ import annotations

SPOT_CASCADE = "error-budget-fast-burn"
LATENCY = "latency-slo-violation"
EDGE_COLD_START = "lambda-edge-cold-start"

RUNBOOK_IDS: tuple[str, ...] = (SPOT_CASCADE, LATENCY, EDGE_COLD_START)
