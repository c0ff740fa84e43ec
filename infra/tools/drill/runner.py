"""Run drill scenarios end to end, each in its own Prometheus + Alertmanager + exporter (the rules sum over
job="akidb-rest", so scenarios cannot share one Prometheus), in parallel, sharing the moto server, the stand-ins
and the project's webhook. Every step is timed from the fault's start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from infra.tools import daemons
from infra.tools.drill import configs, exporter, webhook
from infra.tools.drill.scenarios import Scenario, Traffic
from infra.tools.drill.standins import StandIns

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
    alertmanager_stopped_at: float | None = None
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
        self._heartbeats: list[dict[str, Any]] = []
        self._collect_lock = threading.Lock()

    # ---------------------------------------------------------------------------------------- the whole run
    def run(self, scenarios: Sequence[Scenario]) -> list[Result]:
        shutil.rmtree(self.out_dir, ignore_errors=True)
        self.out_dir.mkdir(parents=True)
        with daemons.moto_server(workdir=self.out_dir / "moto") as moto:
            saved = {k: os.environ.get(k) for k in (*webhook.aws_environment(moto.url), "RUNBOOK_SETTINGS")}
            os.environ.update(webhook.aws_environment(moto.url))
            try:
                self.world = webhook.create_world()
                functions = webhook.Functions(self.world)
                secrets = {s.name: ("not-" + webhook.SECRET) if s.wrong_webhook_secret else webhook.SECRET
                           for s in scenarios}
                with StandIns(functions.deliver, secrets) as self.standins:
                    with ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
                        results = list(pool.map(self._run_one, scenarios))
                    time.sleep(2)  # the last webhooks (acknowledge is sent a second after the trigger)
                    self._collect()
                    for r in results:
                        self._attach(r)
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

    def _attach(self, r: Result) -> None:
        name = r.scenario.name
        incidents = {i.id for i in self.standins.incidents(name)}
        r.pages = [{"incident": i.id, "title": i.title, "opened_at": i.opened_at, "resolved_at": i.resolved_at,
                    "triggers": i.triggers} for i in self.standins.incidents(name)]
        r.webhooks = [{"at": w.at, "event_type": w.event_type, "status": w.status, "answer": w.answer}
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
        instance = f"127.0.0.1:{port}"
        now = time.time()
        step = HISTORY_STEP_S
        windows: tuple[tuple[float, float], ...] = ()
        if s.backfill_baseline:
            windows = tuple((now - ago - 1800, now - ago + 1800) for ago in (DAY_S, WEEK_S))
        history = wd / "history.om"
        counts = exporter.history(history, instance, start=now - s.history_s, end=now - step, step_s=step,
                                  traffic=baseline, baselines=windows)
        tsdb = wd / "tsdb"
        out = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(history), str(tsdb)],
                             capture_output=True, text=True, timeout=300, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"promtool create-blocks-from openmetrics: {out.stderr[-2000:]}")
        routing_key = wd / "routing-key"
        routing_key.write_text(f"drill-{s.name}-routing-key\n")
        slack = wd / "slack-url"
        slack.write_text(self.standins.url(s.name, "slack") + "\n")
        endpoints = configs.Endpoints(pagerduty_url=self.standins.url(s.name, "pagerduty"), slack_url_file=slack,
                                      tickets_url=self.standins.url(s.name, "tickets"),
                                      routing_key_file=routing_key,
                                      sns_url=os.environ["AWS_ENDPOINT_URL"])
        shipped = configs.load_shipped()
        am_doc = configs.drill_alertmanager(shipped, endpoints,
                                            maintenance_at=datetime.now(UTC) if s.maintenance else None)
        extra = configs.unexpected_differences(shipped, am_doc, maintenance=s.maintenance)
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
                exporter_target=instance, alertmanager_url=am.url, scrape_interval_s=self.timing.scrape_s,
                evaluation_interval_s=self.timing.evaluation_s)))
            prom = stack.enter_context(daemons.prometheus(prom_cfg, tsdb=tsdb, workdir=wd / "prometheus"))
            self._warm_up(prom.url, am.url, s)
            if s.stop_alertmanager:
                self._await_heartbeat(am.url, s)
            r.setup_s = time.time() - started
            self._drive(s, r, exp, prom.url, am, baseline)
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

    def _drive(self, s: Scenario, r: Result, exp: exporter.Exporter, prom: str, am: daemons.Daemon,
               baseline: Traffic) -> None:
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
            pages = self.standins.incidents(s.name)
            if pages and paged_at is None:
                paged_at = now
            if s.expect_pages > 0:
                done = paged_at is not None and elapsed >= s.fault_s and now - paged_at >= s.hold_after_page_s
                if done or elapsed > s.page_timeout_s:
                    break
            else:
                if r.recovered_at is None and elapsed >= s.fault_s:
                    exp.set_traffic(baseline)
                    r.recovered_at = time.time()
                if elapsed > max(s.page_timeout_s, s.fault_s):
                    break
            time.sleep(POLL_S)
        if r.recovered_at is None:
            exp.set_traffic(baseline)
            r.recovered_at = time.time()
        if self.wait_resolve and s.resolve_timeout_s > 0 and self.standins.incidents(s.name):
            deadline = time.time() + s.resolve_timeout_s
            while time.time() < deadline and any(i.resolved_at is None for i in self.standins.incidents(s.name)):
                self._observe(r, prom, None if s.stop_alertmanager else am.url)
                time.sleep(POLL_S)

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
