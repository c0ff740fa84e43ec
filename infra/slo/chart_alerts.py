"""The label shapes of kube-prometheus-stack's own alerts, as data: what the stack's Alertmanager config (which
replaces the chart's) must route. The signal-paths rule (infra/validation/paths.py) routes each through the real
routing tree and refuses a shape that reaches no person, unless the shape may be deliberately silenced.

The chart's rules (kubernetes-mixin, kube-prometheus, prometheus and alertmanager mixins) label `severity` one of
critical, warning, info or none; Watchdog and InfoInhibitor (severity none) always fire: Watchdog is the chart's
dead-man's switch, InfoInhibitor the inhibition helper for info alerts.
https://github.com/prometheus-community/helm-charts/tree/main/charts/kube-prometheus-stack/templates/prometheus/rules-1.14
https://runbooks.prometheus-operator.dev/runbooks/general/watchdog/ and .../general/infoinhibitor/
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartAlert:
    """One alert shape the chart's rules can fire. `may_silence`: a deliberate `null` receiver is a correct
    outcome (the always-firing alerts); every other shape must reach a person."""

    alertname: str
    severity: str
    labels: tuple[tuple[str, str], ...] = ()
    may_silence: bool = False

    def label_set(self) -> dict[str, str]:
        return {"alertname": self.alertname, "severity": self.severity, **dict(self.labels)}


# A representative alert per severity (the routes key on severity and alertname only; the extra labels are the
# shape the chart's alerts carry, so a route matching on them is exercised too).
CHART_ALERTS: tuple[ChartAlert, ...] = (
    ChartAlert("KubeletDown", "critical", (("namespace", "kube-system"),)),
    ChartAlert("PrometheusRuleFailures", "critical", (("namespace", "monitoring"), ("service", "prometheus"))),
    ChartAlert("KubePodCrashLooping", "warning", (("namespace", "default"), ("pod", "example"),
                                                  ("service", "kube-state-metrics"))),
    ChartAlert("KubeQuotaAlmostFull", "info", (("namespace", "default"), ("resourcequota", "example"))),
    ChartAlert("Watchdog", "none", (("namespace", "monitoring"),), may_silence=True),
    ChartAlert("InfoInhibitor", "none", (("namespace", "default"),), may_silence=True),
)
CHART_SEVERITY_SCALE = ("critical", "warning", "info", "none")
