"""The drill's report: one row per scenario (times from the fault's start), as a Markdown table for stdout and
build/drill/report.md, and a PNG timeline per scenario."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.tools.drill import anomaly
from infra.tools.drill.runner import Result, heartbeat_alarm_at

COLUMNS = ("scenario", "result", "setup (s)", "firing (s)", "in Alertmanager (s)", "page received (s)", "pages",
           "webhook", "runbook outcome", "runbook done (s)", "resolved (s after recovery)",
           "timeline TTD (fault->page) / TTA / TTR (s)", "heartbeat", "notes")


def _s(value: float | None, since: float) -> str:
    return "-" if value is None else f"{value - since:.0f}"


def _first(times: dict[str, float]) -> float | None:
    return min(times.values()) if times else None


def outcome(r: Result) -> str:
    decisions = [f"{a.get('decision')}" + (f" {a.get('action')} {a.get('current')}->{a.get('desired')}"
                                           if a.get("action") == "scale-out" else "")
                 + (f" ({a.get('runbook')})" if a.get("runbook") else "")
                 for a in r.runbook]
    return "; ".join(dict.fromkeys(decisions)) or "-"


def webhooks(r: Result) -> str:
    if not r.webhooks:
        return "-"
    codes: dict[int, int] = {}
    for w in r.webhooks:
        codes[w["status"]] = codes.get(w["status"], 0) + 1
    return ", ".join(f"{n}x{code or 'timeout'}" for code, n in sorted(codes.items()))


def _fig(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def ttd(r: Result, t: dict[str, Any]) -> float | None:
    """Time to detect of one incident: from the fault's start (the drill's marker) to the page as PagerDuty
    dated it (the trigger's occurred_at, else the incident's created_at: what a V3 delivery carries, kept by the
    timeline). An upper bound of the alert's own detection time, the figure game_day_report gives for a game day
    (fault start -> page). PagerDuty's V3 incident object has no alert start (no custom details), so the
    timeline's own TTD (alert condition start -> page) is shown only when it had one ("alert" below)."""
    at = t.get("triggered_at")
    return None if at is None or not r.fault_at else max(0.0, at - r.fault_at)


def timeline(r: Result) -> str:
    """The incident timeline's figures per incident; "published" once it put them to CloudWatch (on resolve),
    else what it computes from the events so far."""
    return "; ".join(f"{_fig(ttd(r, t))} / {_fig(t['tta'])} / {_fig(t['ttr'])}"
                     + (f" (alert {_fig(t['ttd'])})" if t["ttd"] is not None else "")
                     + (" published" if t["published"] else " (unresolved: computed)") for t in r.timeline) or "-"


def heartbeat(r: Result) -> str:
    before = [h for h in r.heartbeats if h < r.fault_at]
    after = [h for h in r.heartbeats if h >= r.fault_at]
    text = f"{len(before)} before, {len(after)} after fault"
    if r.alertmanager_stopped_at is not None and before:
        last = before[-1] if not after else after[-1]
        text += f"; silent since {last - r.fault_at:+.0f} s, alarm at +{heartbeat_alarm_at(last) - r.fault_at:.0f} s"
    return text


def anomaly_path(r: Result) -> str:
    """Who the episode reached and when: the detector's first run outside the band, each notice at the ticket
    webhook, and when the P1 page alarm would breach (moto evaluates no alarms: computed from the published
    IsAnomaly x Confidence, see infra/tools/drill/anomaly.py)."""
    t0 = r.fault_at
    runs = [x for x in r.detector_runs if x["at"] >= t0]
    first = next((x for x in runs if x.get("is_anomaly")), None)
    parts = [f"detector every {anomaly.DETECTOR_EVERY_S:.0f} s (the stack: {anomaly.SHIPPED.detect_schedule}): "
             + (f"outside the band at +{first['at'] - t0:.0f} s (value {first['value']:.1f}, confidence "
                f"{first['confidence']:.2f})" if first else "never outside the band")]
    parts += [f"ticket webhook got {n['event']} at +{n['at'] - t0:.0f} s (episode {n['episode']})"
              for n in r.anomaly_notices]
    points = [(x["at"], (1.0 if x.get("is_anomaly") else 0.0) * float(x.get("confidence") or 0.0)) for x in runs]
    period = anomaly.first_breaching_period(points)
    cfg = anomaly.SHIPPED
    parts.append(f"P1 page alarm (confidence >= {cfg.page_confidence:g} for {cfg.page_after_minutes} min): "
                 + (f"first period at or above ends +{period - t0:.0f} s, pages at +"
                    f"{period - t0 + (cfg.page_after_minutes - 5) * 60:.0f} s if the episode lasts (computed)"
                    if period is not None else
                    f"not reached within the drill (peak {max((v for _, v in points), default=0.0):.2f})"))
    return "; ".join(parts)


def gap(r: Result) -> str:
    """The scrape gap: when the target left and came back, and how many polls saw the SLO page's tiers firing."""
    assert r.gap_at is not None
    held = sum(1 for _, tiers in r.gap_polls if set(r.gap_held) <= set(tiers))
    back = f"back +{r.gap_ended_at - r.fault_at:.0f} s" if r.gap_ended_at else "never back"
    slo = [p for p in r.pages if p["opened_at"] < r.gap_at]
    triggers = ", ".join(f"+{t - r.fault_at:.0f}" for p in slo for t in p["triggered_at"]) or "-"
    return (f"target gone +{r.gap_at - r.fault_at:.0f} s, {back}; {', '.join(r.gap_held) or 'no tier'} firing at "
            f"{held}/{len(r.gap_polls)} polls until the recovery; the SLO page's trigger events at {triggers} s "
            f"({len(slo)} incident before the gap)")


def row(r: Result) -> list[str]:
    page = min((p["opened_at"] for p in r.pages), default=None)
    resolved = max((p["resolved_at"] for p in r.pages if p["resolved_at"]), default=None)
    notes = list(r.problems) + ([r.error] if r.error else [])
    if r.firing_at:
        notes.append("fired: " + ", ".join(sorted(r.firing_at)))
    if r.suppressed:
        notes.append("held back: " + ", ".join(f"{k} {v}" for k, v in sorted(r.suppressed.items())))
    if r.scenario.anomaly:
        notes.append(anomaly_path(r))
    if r.gap_at is not None:
        notes.append(gap(r))
    if r.scenario.maintenance and r.firing_at and not r.pages:
        notes.append("muted by the maintenance window")
    if r.pages and not resolved:
        notes.append("not resolved within the run")
    return [r.scenario.name, "PASS" if r.ok else "FAIL", f"{r.setup_s:.0f}", _s(_first(r.firing_at), r.fault_at),
            _s(_first(r.in_alertmanager_at), r.fault_at), _s(page, r.fault_at), str(len(r.pages)), webhooks(r),
            outcome(r), _s(max((a["_received_at"] for a in r.runbook), default=None), r.fault_at),
            _s(resolved, r.recovered_at or r.fault_at) if resolved else "-", timeline(r), heartbeat(r),
            "; ".join(notes)]


def table(results: Sequence[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row(r)) + " |" for r in results]
    return "\n".join(lines)


def write(results: Sequence[Result], out_dir: Path, header: str) -> Path:
    path = out_dir / "report.md"
    path.write_text(f"# Drill report\n\n{header}\n\n{table(results)}\n")
    return path


def timelines(results: Sequence[Result], out_dir: Path) -> list[Path]:
    """One PNG per scenario: the fault, recovery, firing, Alertmanager, pages, webhooks, heartbeats on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for r in results:
        if not r.fault_at:
            continue
        t0 = r.fault_at
        lanes: list[tuple[str, list[float]]] = [
            ("fault", [0.0]),
            ("recovered", [(r.recovered_at or t0) - t0] if r.recovered_at else []),
            ("firing (Prometheus)", [v - t0 for v in r.firing_at.values()]),
            ("in Alertmanager", [v - t0 for v in r.in_alertmanager_at.values()]),
            ("page received", [p["opened_at"] - t0 for p in r.pages]),
            ("webhook answered", [w["at"] - t0 for w in r.webhooks]),
            ("runbook audited", [a["_received_at"] - t0 for a in r.runbook]),
            ("page resolved", [p["resolved_at"] - t0 for p in r.pages if p["resolved_at"]]),
            ("heartbeat at SNS", [h - t0 for h in r.heartbeats]),
        ]
        fig, ax = plt.subplots(figsize=(10, 3.6))
        for y, (_label, xs) in enumerate(lanes):
            ax.scatter(xs, [y] * len(xs), s=30)
        ax.set_yticks(range(len(lanes)), [label for label, _ in lanes])
        ax.set_xlabel("seconds from the fault's start")
        ax.set_title(f"{r.scenario.name}: {r.scenario.title}"[:110], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{r.scenario.name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
