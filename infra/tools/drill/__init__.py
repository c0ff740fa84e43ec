"""`make drill`: the shipped rules and Alertmanager config in real Prometheus and Alertmanager on loopback, fed by a
synthetic akidb-rest exporter, paging local PagerDuty and Slack stand-ins whose signed V3 webhooks reach the
project's runbook webhook and worker on a moto server. Scenario definitions (scenarios.py) are data; the runner
(runner.py) times fault -> firing -> notification -> page -> runbook outcome -> resolve; report.py prints it."""
