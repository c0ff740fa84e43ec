"""Generator: SLO definitions (`rules/slos.yaml`) -> Prometheus rule files, promtool unit tests, Alertmanager config.

`make generate` (infra/offline/generate.py, through infra/slo/generate.py) rewrites every file under
`rules/prometheus/`, `rules/tests/` and `rules/alertmanager/`; `tests/test_slo_rules.py` fails when the checked-in
files differ from what the generator writes. The component (`infra/components/slo_alerting.py`) deploys the
same groups as PrometheusRule objects and the same Alertmanager config (infra/slo/alertmanager.py), rendered
with the stack's URLs.

Rule files:
- slo.rules.yml: per SLO, the SLI recordings of every tier window and the P0/P1/P2 multiwindow burn-rate alerts;
- slo-budget.rules.yml: objectives, the period's error ratio and error budget remaining (evaluated every 2m: a
  30-day range is expensive, and the budget moves slowly);
- slo-meta.rules.yml: absent metrics, a missing latency bucket, and the always-firing heartbeat.

An SLO annotated `akidb.io/sloth-compatible: "true"` is also recorded as Sloth records it (sloth_recordings), at
the end of the same groups, so Sloth's Grafana dashboards work on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.slo.runbooks import runbook_mark
from infra.slo.sloth import sloth_budget_recordings, sloth_recordings
from infra.slo.spec import (
    ABSENT_ALERT,
    BUCKET_ALERT,
    BURN_ALERT,
    BURN_RATE_TIERS,
    DEFAULT_LINKS,
    HEARTBEAT_ALERT,
    SLO_DASHBOARD_UID,
    BurnRateTier,
    LinkSettings,
    Slo,
    duration_seconds,
    error_budget_remaining_metric,
    objective_metric,
    sli_error_ratio_metric,
    sli_total_rate_metric,
)
from infra.slo.symptoms import SYMPTOMS_RULE_FILE, SymptomSpec, symptom_rule_file

SLO_FILE = "slo.rules.yml"
BUDGET_FILE = "slo-budget.rules.yml"
META_FILE = "slo-meta.rules.yml"
RULE_FILES = (SLO_FILE, BUDGET_FILE, META_FILE, SYMPTOMS_RULE_FILE)
PAGING = ("P0", "P1")


# --------------------------------------------------------------------------------------------------------------
# Prometheus rules
# --------------------------------------------------------------------------------------------------------------


def _sel(slo: Slo) -> str:
    return f'{{service="{slo.service}",slo="{slo.name}"}}'


def _recordings(slo: Slo, windows: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for w in windows:
        out.append({"record": sli_error_ratio_metric(w), "expr": slo.window_error_ratio_query(w), "labels": slo.labels})
        out.append({"record": sli_total_rate_metric(w), "expr": slo.total_query(w), "labels": slo.labels})
    return out


def _tier_windows(severities: Sequence[str]) -> list[str]:
    found = {w for t in BURN_RATE_TIERS if t.severity in severities for w in (t.long_window, t.short_window)}
    return sorted(found, key=duration_seconds)


def burn_threshold(slo: Slo, tier: BurnRateTier) -> float:
    return tier.burn_rate * slo.error_budget


# A scrape gap is not a recovery: while the short window's ratio is absent (no sample: the target failed its
# scrapes, its series went stale or it left discovery), a firing tier keeps firing, for at most GAP_HOLD after
# the ratio's last sample. Without it, the page resolves in the gap and a second one follows it.
GAP_HOLD = "10m"


def burn_alert(slo: Slo, tier: BurnRateTier, links: LinkSettings, *, gap_hold: bool = True) -> dict[str, Any]:
    """Both windows above the tier's burn rate, and enough requests in the long window to mean something;
    or, through a gap in the data, the tier's own firing alert (GAP_HOLD).

    The expression's value is the long window's burn rate (error ratio / error budget), so `$value` in the
    annotations is the burn rate itself (1 while held through a gap).
    """
    budget = f"{slo.error_budget:.10g}"
    long_s = duration_seconds(tier.long_window)
    long_ratio = f"{sli_error_ratio_metric(tier.long_window)}{_sel(slo)}"
    expr = (
        f"{long_ratio} / {budget} > {tier.burn_rate:g}\n"
        f"and on(service, slo)\n"
        f"{sli_error_ratio_metric(tier.short_window)}{_sel(slo)} / {budget} > {tier.burn_rate:g}\n"
        f"and on(service, slo)\n"
        f"{sli_total_rate_metric(tier.long_window)}{_sel(slo)} * {long_s} >= {slo.min_events}\n"
    )
    if gap_hold:
        # Evidence: what the tier needs to decide at all (its short window's ratio, and enough requests in its
        # long window). Without it, the tier's firing alert holds, up to GAP_HOLD after the evidence was last seen.
        evidence = (f"({sli_error_ratio_metric(tier.short_window)}{_sel(slo)}\n"
                    f"   and on(service, slo) {sli_total_rate_metric(tier.long_window)}{_sel(slo)} * {long_s}"
                    f" >= {slo.min_events})")
        firing = (f'ALERTS{{alertname="{BURN_ALERT}",alertstate="firing",service="{slo.service}",'
                  f'slo="{slo.name}",tier="{tier.name}"}}')
        expr += (f"or on(service, slo) (\n"
                 f"  max without(alertname, alertstate) ({firing})\n"
                 f"  unless on(service, slo) {evidence}\n"
                 f"  and on(service, slo) present_over_time({evidence}[{GAP_HOLD}:])\n"
                 f")\n")
    # Share of the whole period's budget the long window burned: ratio x long / (period x budget), in percent.
    factor = 100 * long_s / (slo.window_days * 86400 * slo.error_budget)
    consumed = (f'{{{{ with printf "{sli_error_ratio_metric(tier.long_window)}'
                f'{{service=\\"%s\\",slo=\\"%s\\"}} * {factor:.10g}" $labels.service $labels.slo | query }}}}'
                f'{{{{ . | first | value | printf "%.2f" }}}}%{{{{ else }}}}unknown{{{{ end }}}}')
    return {
        "alert": BURN_ALERT,
        "expr": expr,
        "labels": {
            **slo.labels,
            "severity": tier.severity,
            "tier": tier.name,
            "long_window": tier.long_window,
            "short_window": tier.short_window,
            "burn_rate_threshold": f"{tier.burn_rate:g}",
        },
        "annotations": {
            "summary": (f"{{{{ $labels.service }}}} {{{{ $labels.slo }}}}: error budget burning at "
                        f"{{{{ printf \"%.1f\" $value }}}}x ({tier.severity} {tier.name}: {tier.long_window} and "
                        f"{tier.short_window} above {tier.burn_rate:g}x) {runbook_mark(slo.runbook)}"),
            "description": (f"{slo.description}. Objective {slo.objective:.10g} over {slo.window}; "
                            f"this tier fires when both windows burn faster than {tier.burn_rate:g}x "
                            f"({tier.why})."),
            "burn_rate": "{{ printf \"%.2f\" $value }}",
            "budget_consumed": (f"{consumed} of the {slo.window} error budget burned in the last "
                                f"{tier.long_window}"),
            "runbook_url": f"{links.runbook_base_url.rstrip('/')}/{slo.runbook}",
            "dashboard": _dashboard(slo, links),
        },
    }


def _dashboard(slo: Slo, links: LinkSettings) -> str:
    return (f"{links.grafana_base_url.rstrip('/')}/d/{SLO_DASHBOARD_UID}/"
            f"?var-service={slo.service}&var-slo={slo.name}")


MONITORING_BLIND_RUNBOOK = "slo-monitoring-blind"  # rules/runbooks.yaml


def meta_alerts(slos: Sequence[Slo], links: LinkSettings) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for slo in slos:
        common = {"runbook_url": links.runbook(MONITORING_BLIND_RUNBOOK), "dashboard": _dashboard(slo, links)}
        mark = runbook_mark(MONITORING_BLIND_RUNBOOK)  # the incident title names it: the webhook dispatches on it
        rules.append({
            "alert": ABSENT_ALERT,
            "expr": f"absent({slo.total_selector})",
            "for": "10m",
            "labels": {"severity": "P1", **slo.labels, "tier": "monitoring"},
            "annotations": {
                "summary": (f"{slo.service} {slo.name}: no {slo.total_selector.metric} series for 10m; "
                            f"the SLO evaluates to nothing {mark}"),
                **common,
            },
        })
        if slo.kind == "latency":
            assert slo.good_selector is not None
            rules.append({
                "alert": BUCKET_ALERT,
                "expr": f"absent({slo.good_selector})\nand on() count({slo.total_selector}) > 0\n",
                "for": "10m",
                "labels": {"severity": "P1", **slo.labels, "tier": "monitoring"},
                "annotations": {
                    "summary": (f"{slo.service} {slo.name}: the histogram has no le=\"{slo.good_selector.label('le')}\""
                                f" bucket (the SLO threshold); the latency SLO evaluates to nothing {mark}"),
                    **common,
                },
            })
    rules.append({
        "alert": HEARTBEAT_ALERT,
        "expr": "vector(1)",
        "labels": {"severity": "heartbeat"},
        "annotations": {"summary": "Always firing: the dead-man's switch pages when these notifications stop"},
    })
    return rules


def rule_files(slos: Sequence[Slo], links: LinkSettings = DEFAULT_LINKS,
               tiers: Sequence[BurnRateTier] = BURN_RATE_TIERS,
               symptoms: SymptomSpec | None = None, *, sloth: bool = True) -> dict[str, dict[str, Any]]:
    """File name -> {"groups": [...]} (plain Prometheus rule file format).

    One group per SLO holds every recording its alerts read (rules in a group run in order; groups run
    independently, so an alert must never read another group's recording). `tiers` selects tiers for the
    replays (a month of 1-minute steps is affordable for the 10m tier, not for 1d/3d ranges); `sloth=False`
    leaves out Sloth's series of the sloth-compatible SLOs (the replays judge alerts, which never read them).
    """
    tier_windows = sorted({w for t in tiers for w in (t.long_window, t.short_window)}, key=duration_seconds)
    main, budget = [], []
    for slo in slos:
        base = f"slo-{slo.service}-{slo.name}"
        main.append({"name": base, "rules": [
            *_recordings(slo, tier_windows),
            *[burn_alert(slo, t, links) for t in tiers if slo.reaches(t)],
            *(sloth_recordings(slo, tier_windows) if sloth and slo.sloth_compatible else []),
        ]})
        budget.append({"name": f"{base}-budget", "interval": "2m", "rules": [
            {"record": objective_metric(), "expr": f"vector({slo.objective:.10g})", "labels": slo.labels},
            *[r for r in _recordings(slo, [slo.window]) if r["record"] == sli_error_ratio_metric(slo.window)],
            {"record": error_budget_remaining_metric(),
             "expr": (f"1 - {sli_error_ratio_metric(slo.window)}{_sel(slo)}\n"
                      f"  / on(service, slo) (1 - {objective_metric()}{_sel(slo)})\n"),
             "labels": slo.labels},
            *(sloth_budget_recordings(slo) if sloth and slo.sloth_compatible else []),
        ]})
    files = {
        SLO_FILE: {"groups": main},
        BUDGET_FILE: {"groups": budget},
        META_FILE: {"groups": [{"name": "slo-meta", "rules": meta_alerts(slos, links)}]},
    }
    if symptoms is not None:
        files[SYMPTOMS_RULE_FILE] = symptom_rule_file(symptoms, links)
    return files


def all_groups(slos: Sequence[Slo], links: LinkSettings = DEFAULT_LINKS,
               symptoms: SymptomSpec | None = None) -> list[dict[str, Any]]:
    return [g for f in rule_files(slos, links, symptoms=symptoms).values() for g in f["groups"]]
