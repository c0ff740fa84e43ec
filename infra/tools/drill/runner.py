"""Run drill scenarios end to end, each in its own Prometheus + Alertmanager + exporter (the rules sum over
job="akidb-rest", so scenarios cannot share one Prometheus), in parallel, sharing the moto server, the stand-ins
and the project's webhook. Every step is timed from the fault's start."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from infra.tools import daemons
from infra.tools.drill import anomaly, configs, exporter, webhook
from infra.tools.drill.scenarios import Scenario, Traffic
from infra.tools.drill.standins import TIMED_OUT, StandIns

POLL_S = 0.5
HISTORY_STEP_S = 30.0  # the backfilled history's sample spacing (kube-prometheus-stack's scrape interval)
DAY_S, WEEK_S = 86400.0, 7 * 86400.0
# The stack's missing-heartbeat alarm: NumberOfMessagesPublished per 5-minute period, missing data breaching,
# `alertingPath.heartbeat.missingPeriods` (default 2) empty periods.
HEARTBEAT_PERIOD_S, HEARTBEAT_MISSING_PERIODS = 300, 2


@dataclass(frozen=True)
class Timing:
    """Scrape and rule evaluation intervals. The default is kube-prometheus-stack's (30 s each); shorter ones keep
    every rule's meaning (windows, `for`, the budget groups' own 2m interval are the shipped ones) and only make
    detection less coarse."""

    scrape_s: int = 30
    evaluation_s: int = 30


@dataclass
class Result:
    scenario: Scenario
    fault_at: float = 0.0
    firing_at: dict[str, float] = field(default_factory=dict)  # alertname -> first seen firing in Prometheus
    in_alertmanager_at: dict[str, float] = field(default_factory=dict)  # alertname -> first seen in Alertmanager
    suppressed: dict[str, str] = field(default_factory=dict)  # alertname -> why Alertmanager held it back
    recovered_at: float | None = None
    pages: list[dict[str, Any]] = field(default_factory=list)  # PagerDuty incidents opened (stand-in)
    chat: int = 0
    tickets: int = 0
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # V3 deliveries and the webhook's answers
    runbook: list[dict[str, Any]] = field(default_factory=list)  # audit entries for this scenario's incidents
    heartbeats: list[float] = field(default_factory=list)  # heartbeat messages that reached SNS (moto)
    # Per incident: TTD/TTA/TTR as the incident timeline (lambdas/runbook_automation/timeline.py) computed them
    # from the events the drill produced, and whether it published them (it does once the incident resolved).
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # The anomaly path: each detector run (at, outcome for the watched metric) and each notice the ticket
    # stand-in received through the anomaly topic (at, event, episode id).
    detector_runs: list[dict[str, Any]] = field(default_factory=list)
    anomaly_notices: list[dict[str, Any]] = field(default_factory=list)
    alertmanager_stopped_at: float | None = None
    # The scrape gap (Scenario.gap_s): when the target left and came back, the SLO page's P0 tiers firing when
    # it left, and every poll from then until the recovery: (at, P0 tiers firing in Prometheus).
    gap_at: float | None = None
    gap_ended_at: float | None = None
    gap_held: tuple[str, ...] = ()
    gap_polls: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    alertmanager_url: str = ""
    setup_s: float = 0.0  # backfill, daemons, warm-up
    ended_at: float = 0.0
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    data = _get(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")
    return list(data["data"]["result"])


class Drill:
    def __init__(self, out_dir: Path, timing: Timing = Timing(), *, wait_resolve: bool = True) -> None:
        self.out_dir, self.timing, self.wait_resolve = out_dir, timing, wait_resolve
        self._audit: list[dict[str, Any]] = []
        self._histories: dict[tuple[float, bool], tuple[Path, exporter.Counts]] = {}
        self._history_lock = threading.Lock()
        self._heartbeats: list[dict[str, Any]] = []
        self._collect_lock = threading.Lock()
        self._world: Future[webhook.World] = Future()

    # ---------------------------------------------------------------------------------------- the whole run
    def run(self, scenarios: Sequence[Scenario]) -> list[Result]:
        shutil.rmtree(self.out_dir, ignore_errors=True)
        self.out_dir.mkdir(parents=True)
        # The backfilled histories are written while moto starts and the world is created.
        histories = ThreadPoolExecutor(max_workers=1)
        for s in {(s.history_s, s.backfill_baseline): s for s in scenarios}.values():
            histories.submit(self._history, s)
        histories.shutdown(wait=False)
        with daemons.moto_server(workdir=self.out_dir / "moto") as moto:
            saved = {k: os.environ.get(k) for k in (*webhook.aws_environment(moto.url), "RUNBOOK_SETTINGS")}
            os.environ.update(webhook.aws_environment(moto.url))
            try:
                # The world is made while the scenarios start their daemons; a fault waits for it (_drive).
                maker = ThreadPoolExecutor(max_workers=1)
                self._world = maker.submit(webhook.create_world)
                maker.shutdown(wait=False)
                secrets = {s.name: ("not-" + webhook.SECRET) if s.wrong_webhook_secret else webhook.SECRET
                           for s in scenarios}
                with webhook.Functions(lambda: self.world) as functions, \
                        StandIns(functions.deliver, secrets) as self.standins:
                    for s in scenarios:
                        if s.late_first_answer:
                            self.standins.late_first_answer(s.name)
                    with ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
                        results = list(pool.map(self._run_one, scenarios))
                    self._settle()
                functions.run_worker()
                self._collect()
                timelines = webhook.timeline_figures(self.world)
                capacity = webhook.asg_capacity()
                for r in results:
                    self._attach(r, timelines)
                acted = sum(1 for r in results for a in r.runbook if a.get("decision") == "acted"
                            and a.get("action") == "scale-out")
                if capacity != webhook.START_CAPACITY + acted * webhook.SCALE_OUT_STEP:
                    for r in results:
                        if any(a.get("decision") == "acted" for a in r.runbook):
                            r.problems.append(f"the ASG's desired capacity is {capacity}, expected "
                                              f"{webhook.START_CAPACITY} + {acted} audited scale-outs x "
                                              f"{webhook.SCALE_OUT_STEP}: a side effect not audited once")
            finally:
                webhook.reset()  # the functions' cached clients point at this moto server
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        for r in results:
            _judge(r)
        return results

    def _collect(self) -> None:
        with self._collect_lock:
            self._audit += webhook.drain(self.world.audit_queue)
            self._heartbeats += webhook.drain(self.world.heartbeat_queue)

    @property
    def world(self) -> webhook.World:
        return self._world.result(timeout=120)

    def _settle(self) -> None:
        """Until every webhook PagerDuty owes was delivered (acknowledge goes a second after the trigger,
        retries up to half a minute later)."""
        deadline = time.time() + 60
        while time.time() < deadline and not self.standins.idle():
            time.sleep(POLL_S)

    def _history(self, s: Scenario) -> tuple[Path, exporter.Counts]:
        """Backfilled TSDB blocks of healthy history (one per kind of history, shared by the scenarios: every
        scenario's exporter has the same `instance` label), and the counters where the history ends."""
        key = (s.history_s, s.backfill_baseline)
        with self._history_lock:
            if key not in self._histories:
                wd = self.out_dir / "history" / f"{int(s.history_s)}{'-baseline' if s.backfill_baseline else ''}"
                wd.mkdir(parents=True)
                now, step = time.time(), HISTORY_STEP_S
                windows: tuple[tuple[float, float], ...] = ()
                if s.backfill_baseline:
                    windows = tuple((now - ago - 1800, now - ago + 1800) for ago in (DAY_S, WEEK_S))
                counts = exporter.history(wd / "history.om", exporter.INSTANCE, start=now - s.history_s,
                                          end=now - step, step_s=step, traffic=Traffic(), baselines=windows)
                # Blocks as long as the history (Prometheus's compaction makes such from 2h ones anyway):
                # promtool's default 2h blocks took 18 s for 3 days, one block per 96h takes 2 s.
                hours = math.ceil(s.history_s / 3600) + 1
                out = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                                      f"--max-block-duration={hours}h", str(wd / "history.om"), str(wd / "blocks")],
                                     capture_output=True, text=True, timeout=300, check=False)
                if out.returncode != 0:
                    raise RuntimeError(f"promtool create-blocks-from openmetrics: {out.stderr[-2000:]}")
                self._histories[key] = (wd / "blocks", counts)
            blocks, counts = self._histories[key]
        return blocks, dataclasses.replace(counts)

    def _attach(self, r: Result, timelines: dict[str, dict[str, Any]]) -> None:
        name = r.scenario.name
        incidents = {i.id for i in self.standins.incidents(name)}
        r.timeline = [timelines[i] for i in sorted(incidents) if i in timelines]
        r.pages = [{"incident": i.id, "title": i.title, "opened_at": i.opened_at, "resolved_at": i.resolved_at,
                    "triggers": i.triggers, "triggered_at": list(i.triggered_at)}
                   for i in self.standins.incidents(name)]
        r.webhooks = [{"at": w.at, "event_type": w.event_type, "status": w.status, "answer": w.answer,
                       "incident": w.incident, "webhook_id": w.webhook_id, "attempt": w.attempt}
                      for w in self.standins.webhooks(name)]
        r.runbook = [a for a in self._audit if a.get("incident") in incidents]
        r.heartbeats = sorted(h["_received_at"] for h in self._heartbeats
                              if r.alertmanager_url and str(h.get("raw", "")).endswith(r.alertmanager_url))
        r.chat = len(self.standins.recorder.of(name, "slack"))
        r.tickets = len(self.standins.recorder.of(name, "tickets"))

    # ---------------------------------------------------------------------------------------- one scenario
    def _run_one(self, s: Scenario) -> Result:
        result = Result(s)
        try:
            self._scenario(s, result)
        except Exception as e:
            result.error = f"{type(e).__name__}: {e}"
        return result

    def _scenario(self, s: Scenario, r: Result) -> None:
        started = time.time()
        wd = self.out_dir / s.name
        wd.mkdir(parents=True)
        baseline = Traffic()
        port = daemons.free_port()
        blocks, counts = self._history(s)
        tsdb = wd / "tsdb"
        shutil.copytree(blocks, tsdb)
        routing_key = wd / "routing-key"
        routing_key.write_text(f"drill-{s.name}-routing-key\n")
        slack = wd / "slack-url"
        slack.write_text(self.standins.url(s.name, "slack") + "\n")
        endpoints = configs.Endpoints(pagerduty_url=self.standins.url(s.name, "pagerduty"), slack_url_file=slack,
                                      tickets_url=self.standins.url(s.name, "tickets"),
                                      routing_key_file=routing_key,
                                      sns_url=os.environ["AWS_ENDPOINT_URL"])
        shipped = configs.load_shipped()
        am_doc = configs.drill_alertmanager(shipped, endpoints, now=datetime.now(UTC), maintenance=s.maintenance)
        extra = configs.unexpected_differences(shipped, am_doc)
        if extra:
            raise RuntimeError("the drill's Alertmanager config differs from the shipped one: " + "; ".join(extra))
        am_cfg = wd / "alertmanager.yml"
        am_cfg.write_text(yaml.safe_dump(am_doc, sort_keys=False))
        exp = exporter.Exporter(port, counts, baseline)
        exp.start()
        with ExitStack() as stack:
            stack.callback(exp.stop)
            am = stack.enter_context(daemons.alertmanager(am_cfg, workdir=wd / "alertmanager"))
            prom_cfg = wd / "prometheus.yml"
            prom_cfg.write_text(yaml.safe_dump(configs.prometheus_config(
                exporter_target=exp.target, instance=exporter.INSTANCE, alertmanager_url=am.url,
                scrape_interval_s=self.timing.scrape_s,
                evaluation_interval_s=self.timing.evaluation_s)))
            prom = stack.enter_context(daemons.prometheus(prom_cfg, tsdb=tsdb, workdir=wd / "prometheus"))
            self._warm_up(prom.url, am.url, s)
            if s.stop_alertmanager:
                self._await_heartbeat(am.url, s)
            detector = None
            if s.anomaly:
                topic = anomaly.create_world(self.standins.url(s.name, "tickets"))
                anomaly.seed_band(baseline.rps, time.time())
                detector = stack.enter_context(anomaly.Detector(wd, prom.url, topic))
                self._detect(detector, r)  # a healthy run first: no notice
            r.setup_s = time.time() - started
            self._drive(s, r, exp, prom.url, am, baseline, detector)
            r.ended_at = time.time()
            r.alertmanager_url = am.url

    def _warm_up(self, prom: str, am: str, s: Scenario) -> None:
        """Until the target is scraped, the rules evaluate the backfilled windows and Prometheus knows its
        Alertmanager: the fault then starts from a steady state. (The heartbeat, evaluated before Prometheus
        discovered the Alertmanager, reaches it at the next resend, `--rules.alert.resend-delay` 1m; an alert
        that starts firing later is sent at once.)"""
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                up = _query(prom, 'up{job="akidb-rest"}')
                ready = _query(prom, 'slo:sli_total:rate10m{slo="availability"}')
                known = _get(f"{prom}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
                if up and up[0]["value"][1] == "1" and ready and any(am in a["url"] for a in known):
                    return
            except OSError:
                pass
            time.sleep(POLL_S)
        raise RuntimeError(f"{s.name}: Prometheus/Alertmanager not steady within 180 s")

    def _heartbeat_seen(self, am: str) -> bool:
        self._collect()
        with self._collect_lock:
            return any(str(h.get("raw", "")).endswith(am) for h in self._heartbeats)

    def _await_heartbeat(self, am: str, s: Scenario) -> None:
        """Until a heartbeat of this Alertmanager reached SNS: the silence after the stop then means something.
        (The first arrives with Prometheus's resend, at most `--rules.alert.resend-delay` 1m after start.)"""
        deadline = time.time() + 180
        while time.time() < deadline:
            self._collect()
            with self._collect_lock:
                if any(str(h.get("raw", "")).endswith(am) for h in self._heartbeats):
                    return
            time.sleep(1)
        raise RuntimeError(f"{s.name}: no heartbeat reached SNS within 180 s of the start")

    def _detect(self, detector: anomaly.Detector, r: Result) -> None:
        at = time.time()
        out = detector.invoke()
        metric = (out.get("ok") or {}).get("metrics", {}).get(anomaly.METRIC, {})
        r.detector_runs.append({"at": at, "error": out.get("error"), **metric})
        with (self.out_dir / r.scenario.name / "detector-runs.jsonl").open("a") as log:
            log.write(json.dumps({"at": at, **out}, default=str) + "\n")
        r.anomaly_notices = []
        for got in self.standins.recorder.of(r.scenario.name, "tickets"):
            if got.body.get("Type") == "Notification":
                message = json.loads(got.body.get("Message") or "{}")
                r.anomaly_notices.append({"at": got.at, "event": message.get("event"),
                                          "episode": message.get("episode_id"), "metric": message.get("metric"),
                                          "confidence": message.get("confidence")})

    def _drive(self, s: Scenario, r: Result, exp: exporter.Exporter, prom: str, am: daemons.Daemon,
               baseline: Traffic, detector: anomaly.Detector | None = None) -> None:
        webhook.asg_ready(self.world)
        r.fault_at = time.time()
        exp.set_traffic(s.fault)
        if s.stop_alertmanager:
            am.process.terminate()
            am.process.wait(timeout=10)
            r.alertmanager_stopped_at = time.time()
        paged_at: float | None = None
        while True:
            now = time.time()
            elapsed = now - r.fault_at
            self._observe(r, prom, None if s.stop_alertmanager else am.url)
            if detector is not None:
                if now - r.detector_runs[-1]["at"] >= anomaly.DETECTOR_EVERY_S:
                    self._detect(detector, r)
                if (any(n["event"] == "anomaly_start" for n in r.anomaly_notices) and elapsed >= s.fault_s) \
                        or elapsed > s.page_timeout_s:
                    break
                time.sleep(POLL_S)
                continue  # the fault holds until the episode's notice reached the ticket webhook
            pages = self.standins.incidents(s.name)
            if pages and paged_at is None:
                paged_at = now
            inhibited = all(any(k.split(" ")[0] == name and why == "inhibited" for k, why in r.suppressed.items())
                            for name in s.expect_inhibited)
            if s.expect_pages > 0:
                done = (paged_at is not None and elapsed >= s.fault_s and now - paged_at >= s.hold_after_page_s
                        and inhibited)
                if done or elapsed > s.page_timeout_s:
                    break
            else:
                reached = min(r.in_alertmanager_at.values(), default=None)
                quiet = (s.quiet_after_alert_s > 0 and reached is not None
                         and now - reached >= s.quiet_after_alert_s
                         and (not s.maintenance or self._heartbeat_seen(am.url)))
                if r.recovered_at is None and ((elapsed >= s.fault_s and not s.quiet_after_alert_s) or quiet):
                    exp.set_traffic(baseline)
                    r.recovered_at = time.time()
                if quiet or elapsed > max(s.page_timeout_s, s.fault_s):
                    break
            time.sleep(POLL_S)
        if s.gap_s > 0 and paged_at is not None:
            self._gap(s, r, exp, prom, am.url)
        if r.recovered_at is None:
            exp.set_traffic(baseline)
            r.recovered_at = time.time()
        if detector is not None and self.wait_resolve:
            deadline = time.time() + s.resolve_timeout_s
            while time.time() < deadline and not any(n["event"] == "anomaly_end" for n in r.anomaly_notices):
                time.sleep(max(0.0, r.detector_runs[-1]["at"] + anomaly.DETECTOR_EVERY_S - time.time()))
                self._detect(detector, r)
        if self.wait_resolve and s.resolve_timeout_s > 0 and self.standins.incidents(s.name):
            deadline = time.time() + s.resolve_timeout_s
            while time.time() < deadline and any(i.resolved_at is None for i in self.standins.incidents(s.name)):
                self._observe(r, prom, None if s.stop_alertmanager else am.url)
                time.sleep(POLL_S)

    def _gap(self, s: Scenario, r: Result, exp: exporter.Exporter, prom: str, am: str) -> None:
        """The target leaves for `gap_s` (its port closes: scrapes fail, its series go stale) with the fault going
        on, then comes back; every poll until `after_gap_s` later records the P0 tiers firing in Prometheus."""
        r.gap_held = _burn_tiers(prom)
        r.gap_at = time.time()
        exp.set_traffic(dataclasses.replace(s.fault, up=False))
        for until, traffic in ((r.gap_at + s.gap_s, s.fault), (r.gap_at + s.gap_s + s.after_gap_s, None)):
            while time.time() < until:
                self._observe(r, prom, am)
                with suppress(OSError):
                    r.gap_polls.append((time.time(), _burn_tiers(prom)))
                time.sleep(2 * POLL_S)
            if traffic is not None:
                exp.set_traffic(traffic)
                r.gap_ended_at = time.time()

    def _observe(self, r: Result, prom: str, am: str | None) -> None:
        now = time.time()
        try:
            for a in _get(f"{prom}/api/v1/alerts")["data"]["alerts"]:
                name = a["labels"]["alertname"]
                if a["state"] == "firing" and name != "SLOAlertingHeartbeat":
                    r.firing_at.setdefault(f"{name} {a['labels'].get('severity', '')}".strip(), now)
            if am is not None:
                for a in _get(f"{am}/api/v2/alerts"):
                    name = a["labels"]["alertname"]
                    if name == "SLOAlertingHeartbeat":
                        continue
                    r.in_alertmanager_at.setdefault(name, now)
                    status, key = a["status"], f"{name} {a['labels'].get('severity', '')}".strip()
                    if status.get("inhibitedBy"):
                        r.suppressed[key] = "inhibited"
                    elif status.get("silencedBy"):
                        r.suppressed[key] = "silenced"
        except OSError:
            pass


def _burn_tiers(prom: str) -> tuple[str, ...]:
    """The tiers of the SLO burn-rate alert firing at P0 in Prometheus now."""
    found = _query(prom, 'ALERTS{alertname="SLOErrorBudgetBurn",alertstate="firing",severity="P0"}')
    return tuple(sorted(a["metric"].get("tier", "") for a in found))


def heartbeat_alarm_at(last: float) -> float:
    """When the stack's missing-heartbeat alarm breaches after the last heartbeat at `last`: at the end of the
    HEARTBEAT_MISSING_PERIODS-th clock-aligned 5-minute period with no message."""
    first_empty = (int(last) // HEARTBEAT_PERIOD_S + 1) * HEARTBEAT_PERIOD_S
    return float(first_empty + HEARTBEAT_MISSING_PERIODS * HEARTBEAT_PERIOD_S)


def _judge(r: Result) -> None:
    s = r.scenario
    if r.error:
        return
    for name in s.expect_firing:
        if not any(k.split(" ")[0] == name for k in r.firing_at):
            r.problems.append(f"{name} never fired")
    if len(r.pages) != s.expect_pages:
        r.problems.append(f"{len(r.pages)} pages, expected {s.expect_pages}")
    before = [h for h in r.heartbeats if h < r.fault_at]
    after = [h for h in r.heartbeats if h >= r.fault_at + 5]
    # The heartbeat is re-sent every 1-2 minutes: a scenario over sooner proves nothing either way.
    if s.expect_heartbeat and not after and r.ended_at - r.fault_at > 150:
        r.problems.append("no heartbeat reached SNS after the fault started")
    if s.maintenance and not r.heartbeats:  # the window is active from Alertmanager's start
        r.problems.append("no heartbeat reached SNS inside the maintenance window")
    if not s.expect_heartbeat and (after or not before):
        r.problems.append(f"heartbeat: {len(before)} before the stop, {len(after)} after (expected some, none)")
    triggered = [w for w in r.webhooks if w["event_type"] == "incident.triggered"]
    if s.wrong_webhook_secret:
        if not r.webhooks or any(w["status"] != 401 for w in r.webhooks):
            r.problems.append("a webhook signed with the wrong secret was not refused with 401")
        if r.runbook:
            r.problems.append("a runbook ran on an unauthenticated webhook")
    elif r.pages:
        if any(w["status"] >= 400 for w in r.webhooks):
            r.problems.append("the webhook answered 4xx/5xx to a validly signed delivery: "
                              + ", ".join(f"{w['event_type']} {w['status']}" for w in r.webhooks))
        if not triggered:
            r.problems.append("no incident.triggered reached the webhook")
        if not r.runbook:
            r.problems.append("no runbook decision was audited")
        _judge_exactly_once(r)
    if s.anomaly:
        starts = [n for n in r.anomaly_notices if n["event"] == "anomaly_start"]
        if len(starts) != 1:
            r.problems.append(f"{len(starts)} anomaly_start notices reached the ticket webhook, expected 1")
        if r.detector_runs and (r.detector_runs[0].get("is_anomaly") or r.detector_runs[0].get("error")):
            r.problems.append(f"the healthy run before the fault was not clean: {r.detector_runs[0]}")
        if len({n["episode"] for n in r.anomaly_notices}) > 1:
            r.problems.append("the start and end notices name different episodes")
    if s.gap_s > 0:
        judge_gap(r)
    for name in s.expect_inhibited:
        if not any(k.split(" ")[0] == name and why == "inhibited" for k, why in r.suppressed.items()):
            r.problems.append(f"{name} was not seen inhibited in Alertmanager")
    paged = " ".join(p["title"] for p in r.pages)
    for name in s.expect_inhibited:
        if name in paged:
            r.problems.append(f"{name} paged although inhibited")


def judge_gap(r: Result) -> None:
    """Through the gap the SLO page held: its P0 tiers firing in Prometheus at every poll, its incident opened
    before the gap, not resolved before the recovery; the only other page is ServiceDown's, for the dark target."""
    if r.gap_at is None or r.recovered_at is None:
        r.problems.append("the target never left (no page before the gap)")
        return
    if not r.gap_held:
        r.problems.append("no P0 tier of the SLO page was firing when the target left")
    for at, tiers in r.gap_polls:
        missing = sorted(set(r.gap_held) - set(tiers))
        if missing:
            r.problems.append(f"the SLO page stopped firing in Prometheus {at - r.gap_at:.0f} s into the gap "
                              f"({', '.join(missing)} not firing)")
            break
    before = [p for p in r.pages if p["opened_at"] < r.gap_at]
    during = [p for p in r.pages if p["opened_at"] >= r.gap_at]
    if len(before) != 1:
        r.problems.append(f"{len(before)} pages before the gap, expected the SLO page alone")
    for p in before:
        if p["resolved_at"] is not None and p["resolved_at"] < r.recovered_at:
            r.problems.append(f"the SLO page was resolved {p['resolved_at'] - r.gap_at:.0f} s into the gap, "
                              "before the recovery")
    if len(during) != 1 or "answers its scrape" not in during[0]["title"]:
        r.problems.append("after the target left, expected ServiceDown's page alone, got: "
                          + ("; ".join(p["title"] for p in during) or "none"))


# What the audit records once per page: the webhook's decision on the trigger, then the worker's runbook outcome.
WEBHOOK_DECISIONS = ("accepted", "no-automation", "ignored", "unknown-runbook")
WORKER_DECISIONS = ("acted", "refused", "dry-run")


def _judge_exactly_once(r: Result) -> None:
    """Every webhook PagerDuty retried was finally answered 2xx, and each incident's runbook decided (and acted)
    once and was recorded once in the timeline, however many times its trigger was delivered."""
    attempts: dict[str, list[dict[str, Any]]] = {}
    for w in r.webhooks:
        attempts.setdefault(w["webhook_id"], []).append(w)
    for tries in attempts.values():
        if not 200 <= tries[-1]["status"] < 300:
            r.problems.append(f"{tries[-1]['event_type']} never answered 2xx in {len(tries)} attempts")
    for p in r.pages:
        for stage, kinds in (("webhook", WEBHOOK_DECISIONS), ("worker", WORKER_DECISIONS)):
            decisions = [a for a in r.runbook if a.get("incident") == p["incident"] and a.get("decision") in kinds]
            if len(decisions) > 1:
                r.problems.append(f"{p['incident']}: {len(decisions)} {stage} decisions for one page (exactly "
                                  "once: " + ", ".join(str(a.get("decision")) for a in decisions) + ")")
    if r.scenario.late_first_answer and not any(w["status"] == TIMED_OUT for w in r.webhooks):
        r.problems.append("no delivery was retried (the late first answer did not happen)")
    for t in r.timeline:
        if t["events"] > len({w["webhook_id"] for w in r.webhooks if w["incident"] == t["incident"]}):
            r.problems.append(f"{t['incident']}: the timeline holds {t['events']} events for fewer deliveries")
