"""PagerDuty V3 webhook -> verified, deduplicated, guarded runbook automation (see handler.py)."""
