"""The generated Alertmanager config in a real Alertmanager 0.25 (Debian `prometheus-alertmanager`): a P0 of an
SLO inhibits that SLO's P1/P2 and nothing else; pages group by alertname, service and SLO; a maintenance window
mutes the service's pages, never the heartbeat."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from runbook_automation.timeline import START_MARK

from infra.core.paths import RULES_DIR

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers

BINARY = "prometheus-alertmanager"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("alertmanager")
    key = tmp / "routing-key"
    key.write_text("test-routing-key\n")
    text = (RULES_DIR / "alertmanager" / "alertmanager-paging.yml").read_text()
    config = tmp / "alertmanager.yml"
    slack = tmp / "slack-url"
    slack.write_text("https://hooks.slack.invalid/services/T0/B0/x\n")
    config.write_text(text.replace("/etc/alertmanager/secrets/alertmanager-pagerduty/routing-key", str(key))
                      .replace("/etc/alertmanager/secrets/alertmanager-slack/webhook-url", str(slack)))
    port = _free_port()
    proc = subprocess.Popen([BINARY, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1)
                break
            except OSError as e:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited") from e
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _post(url: str, alerts: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5)


def _alerts(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as r:
        return json.loads(r.read())


def _alert(severity: str, slo: str, tier: str) -> dict[str, Any]:
    return {"labels": {"alertname": "SLOErrorBudgetBurn", "service": "akidb-rest", "slo": slo,
                       "severity": severity, "tier": tier},
            "annotations": {"summary": f"{slo} {tier}"}}


def test_p0_inhibits_p1_and_p2_of_the_same_slo_only(alertmanager: str) -> None:
    _post(alertmanager, [_alert("P0", "availability", "page-quick"), _alert("P1", "availability", "page-slow"),
                         _alert("P2", "availability", "ticket-fast"), _alert("P1", "latency", "page-slow")])
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for _ in range(50):
        state = {(a["labels"]["slo"], a["labels"]["severity"]): a["status"] for a in _alerts(alertmanager)}
        if len(state) == 4 and state[("availability", "P1")]["inhibitedBy"]:
            break
        time.sleep(0.2)
    assert state[("availability", "P0")]["state"] == "active"
    assert state[("availability", "P1")]["state"] == "suppressed" and state[("availability", "P1")]["inhibitedBy"]
    assert state[("availability", "P2")]["state"] == "suppressed"
    assert state[("latency", "P1")]["state"] == "active"  # another SLO is not inhibited


def test_service_down_inhibits_the_alerts_it_explains(alertmanager: str) -> None:
    """A ServiceDown of akidb-rest silences its burn-rate, absent-metric and traffic-drop alerts, not another
    service's."""
    from infra.slo.spec import ABSENT_ALERT
    from infra.slo.symptoms import SERVICE_DOWN_ALERT, TRAFFIC_DROP_ALERT

    def alert(name: str, service: str, **labels: str) -> dict[str, Any]:
        return {"labels": {"alertname": name, "service": service, **labels}, "annotations": {"summary": name}}

    _post(alertmanager, [
        alert(SERVICE_DOWN_ALERT, "svc-down", severity="P0", job="svc-down"),
        alert("SLOErrorBudgetBurn", "svc-down", severity="P1", slo="availability", tier="page-slow"),
        alert(ABSENT_ALERT, "svc-down", severity="P1", slo="latency", tier="monitoring"),
        alert(TRAFFIC_DROP_ALERT, "svc-down", severity="P1"),
        alert(TRAFFIC_DROP_ALERT, "svc-up", severity="P1"),
    ])
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for _ in range(50):
        state = {(a["labels"]["alertname"], a["labels"]["service"]): a["status"] for a in _alerts(alertmanager)
                 if a["labels"]["service"] in ("svc-down", "svc-up")}
        if len(state) == 5 and state[("SLOErrorBudgetBurn", "svc-down")]["inhibitedBy"]:
            break
        time.sleep(0.2)
    assert state[(SERVICE_DOWN_ALERT, "svc-down")]["state"] == "active"
    for name in ("SLOErrorBudgetBurn", ABSENT_ALERT, TRAFFIC_DROP_ALERT):
        assert state[(name, "svc-down")]["state"] == "suppressed", name
    assert state[(TRAFFIC_DROP_ALERT, "svc-up")]["state"] == "active"


def _shipped_alerts() -> list[dict[str, str]]:
    """Every alert of the generated Prometheus rules, as its static labels (alertname included)."""
    out = []
    for path in sorted((RULES_DIR / "prometheus").glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            out += [{"alertname": r["alert"], **{k: str(v) for k, v in r.get("labels", {}).items()}}
                    for r in group["rules"] if "alert" in r]
    return out


def test_service_down_inhibits_exactly_what_it_explains_among_the_shipped_alerts(alertmanager: str) -> None:
    """Every P1/P2 alert the rules ship, fired beside a ServiceDown of the same service: suppressed exactly when
    its name is one ServiceDown explains (infra/slo: burn-rate, absent metric, latency bucket, TargetDown,
    TrafficDrop); MemoryPressure, ProcessingBacklog and MemoryLeak still notify (a P0 without an SLO label
    silenced them through the P0 -> P1/P2 rule's `equal: [service, slo]`)."""
    from infra.slo.spec import ABSENT_ALERT, BUCKET_ALERT, BURN_ALERT
    from infra.slo.symptoms import EXPLAINED_BY_SERVICE_DOWN, SERVICE_DOWN_ALERT

    explained = {BURN_ALERT, ABSENT_ALERT, BUCKET_ALERT, *EXPLAINED_BY_SERVICE_DOWN}
    service = "svc-every-alert"
    shipped = [{**labels, "service": service} for labels in _shipped_alerts()
               if labels.get("severity") in ("P1", "P2")]
    names = {a["alertname"] for a in shipped}
    assert {"MemoryPressure", "ProcessingBacklog", "MemoryLeakSuspected"} <= names and names & explained
    down = {"alertname": SERVICE_DOWN_ALERT, "service": service, "severity": "P0", "job": service}
    _post(alertmanager, [{"labels": labels, "annotations": {"summary": labels["alertname"]}}
                         for labels in (down, *shipped)])
    key = lambda labels: tuple(sorted(labels.items()))  # noqa: E731
    state: dict[Any, dict[str, Any]] = {}
    wrong = [("(not every alert processed in 10 s)", "", "")]
    # Alertmanager marks an alert active before the inhibitor has seen the ServiceDown it arrived with (a CI run
    # read every explained alert "active" once, 2026-12-07): poll until the states settle as expected, 10 s at most.
    for _ in range(50):
        state = {key(a["labels"]): a["status"] for a in _alerts(alertmanager) if a["labels"]["service"] == service}
        if len(state) == len({key(a) for a in shipped}) + 1 and all(
                state[key(a)]["state"] != "unprocessed" for a in shipped):
            wrong = [(a["alertname"], a["severity"], state[key(a)]["state"]) for a in shipped
                     if (state[key(a)]["state"] == "suppressed") != (a["alertname"] in explained)]
            if not wrong:
                break
        time.sleep(0.2)
    assert state[key(down)]["state"] == "active"
    assert wrong == []


def test_a_maintenance_window_mutes_p0_and_p1_of_its_service_in_a_running_alertmanager(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped config with a window containing now (only endpoints, secret files and the window's times
    replaced): P0 and P1 of akidb-rest page nobody, the same severities of another service page, and the
    heartbeat still reaches SNS (moto). Alertmanager 0.25 does not inherit a parent route's mute
    (alertmanager#2833): with the mute on the branch only, both akidb-rest pages went out."""
    import boto3

    from infra.slo.spec import HEARTBEAT_ALERT
    from infra.tools import daemons
    from infra.tools.drill import configs
    from infra.tools.drill.standins import StandIns
    from infra.tools.drill.webhook import HEARTBEAT_TOPIC, aws_environment

    with daemons.moto_server(workdir=tmp_path / "moto") as moto, \
            StandIns(lambda scenario, body, headers: (202, {}), {"mw": "unused"}) as standins:
        for key, value in aws_environment(moto.url).items():
            monkeypatch.setenv(key, value)  # Alertmanager's SigV4 and this test's boto3: moto only
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name=HEARTBEAT_TOPIC)["TopicArn"]
        queue = sqs.create_queue(QueueName="heartbeat-copy")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        (tmp_path / "key").write_text("routing-key\n")
        (tmp_path / "slack").write_text(standins.url("mw", "slack") + "\n")
        endpoints = configs.Endpoints(pagerduty_url=standins.url("mw", "pagerduty"),
                                      slack_url_file=tmp_path / "slack", tickets_url=standins.url("mw", "tickets"),
                                      routing_key_file=tmp_path / "key", sns_url=moto.url)
        shipped = configs.load_shipped()
        doc = configs.drill_alertmanager(shipped, endpoints, now=datetime.now(UTC), maintenance=True)
        assert configs.unexpected_differences(shipped, doc) == []
        cfg = tmp_path / "alertmanager.yml"
        cfg.write_text(yaml.safe_dump(doc))
        with daemons.alertmanager(cfg, workdir=tmp_path / "am") as am:
            alerts = [{"labels": {"alertname": HEARTBEAT_ALERT, "severity": "heartbeat"}}]
            for service in ("akidb-rest", "other-service"):
                alerts += [_alert("P0", "availability", "page-quick"), _alert("P1", "latency", "page-slow")]
                for a in alerts[-2:]:
                    a["labels"]["service"] = service
                    a["annotations"]["summary"] = f"{service} {a['annotations']['summary']}"
            _post(am.url, alerts)
            deadline = time.time() + 90  # P1's group_wait is 30 s
            beats: list[dict[str, Any]] = []
            while time.time() < deadline:
                beats += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
                if len(standins.incidents("mw")) >= 2 and beats:
                    break
                time.sleep(0.5)
            time.sleep(2)  # anything of akidb-rest flushed with the same group_wait would be here by now
            titles = [i.title for i in standins.incidents("mw")]
    # Each page's title ends with its condition start (what the incident timeline reads as documented).
    assert all(START_MARK.search(t) for t in titles), titles
    pages = {START_MARK.sub("", t).strip() for t in titles}
    assert pages == {"other-service availability page-quick", "other-service latency page-slow"}, pages
    assert beats and am.url in beats[0]["Body"]
