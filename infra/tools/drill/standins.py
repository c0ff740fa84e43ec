"""Local stand-ins for PagerDuty's Events API v2, Slack's incoming webhook and the ticket webhook: one loopback
HTTP server that records every request by scenario (the first path segment), and, as PagerDuty does, opens one
incident per `dedup_key` and sends signed V3 webhooks (incident.triggered, .acknowledged, .resolved) to a
subscriber.

PagerDuty's shapes: Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): a JSON
body with routing_key, event_action (trigger|acknowledge|resolve), dedup_key, payload.summary; answered 202 with
{"status": "success", "dedup_key": ...}. V3 webhooks (https://developer.pagerduty.com/docs/webhooks/v3-overview/):
{"event": {"id", "event_type", "resource_type": "incident", "occurred_at", "agent", "data": {...}}}, header
X-PagerDuty-Signature: v1=<HMAC-SHA256 hex of the raw body with the subscription secret>, X-Webhook-Id.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The simulated responder acknowledges this long after the incident opened.
ACK_AFTER_S = 1.0


@dataclass
class Received:
    at: float
    kind: str  # pagerduty | slack | tickets
    body: dict[str, Any]


@dataclass
class Incident:
    id: str
    scenario: str
    dedup_key: str
    title: str
    opened_at: float
    resolved_at: float | None = None
    triggers: int = 0
    routing_key: str = ""


@dataclass
class Webhook:
    """One V3 delivery and the answer of the project's webhook."""

    at: float
    scenario: str
    incident: str
    event_type: str
    status: int
    answer: dict[str, Any]


@dataclass
class Recorder:
    received: list[Received] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    webhooks: list[Webhook] = field(default_factory=list)

    def of(self, scenario: str, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind and r.body.get("_scenario") == scenario]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def v3_body(event_type: str, incident: Incident, at: float) -> bytes:
    """A V3 webhook delivery for `incident` (fields as PagerDuty documents them)."""
    event_id = "01" + hashlib.sha256(f"{incident.id}|{event_type}|{at}".encode()).hexdigest()[:24].upper()
    return json.dumps({"event": {
        "id": event_id, "event_type": event_type, "resource_type": "incident", "occurred_at": iso(at),
        "agent": {"id": "PDRILL1", "type": "user_reference", "summary": "drill responder"},
        "client": None,
        "data": {"id": incident.id, "type": "incident", "self": f"https://api.pagerduty.com/incidents/{incident.id}",
                 "html_url": f"https://drill.pagerduty.com/incidents/{incident.id}", "number": 1,
                 "status": event_type.rsplit(".", 1)[-1], "incident_key": incident.dedup_key,
                 "created_at": iso(incident.opened_at), "title": incident.title, "urgency": "high",
                 "service": {"id": "PSVC001", "type": "service_reference", "summary": "akidb-rest"}},
    }}).encode()


def signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# (scenario, body, headers) -> (status, answer)
Deliver = Callable[[str, bytes, dict[str, str]], tuple[int, dict[str, Any]]]


class StandIns:
    """The server; `url(scenario, kind)` is what the Alertmanager config of that scenario points at."""

    def __init__(self, deliver: Deliver, secrets: dict[str, str]) -> None:
        self.recorder = Recorder()
        self._deliver, self._secrets = deliver, secrets  # scenario -> the secret its webhooks are signed with
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._outbox: queue.Queue[tuple[str, str, Incident, float] | None] = queue.Queue()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = int(self._server.server_address[1])
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._send_webhooks, daemon=True)]

    def url(self, scenario: str, kind: str) -> str:
        path = {"pagerduty": "v2/enqueue", "slack": "slack", "tickets": "tickets"}[kind]
        return f"http://127.0.0.1:{self.port}/{scenario}/{path}"

    def __enter__(self) -> StandIns:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._outbox.put(None)
        self._server.shutdown()
        self._server.server_close()
        self._threads[1].join(timeout=30)

    def set_secret(self, scenario: str, secret: str) -> None:
        self._secrets[scenario] = secret

    def incidents(self, scenario: str) -> list[Incident]:
        with self._lock:
            return [i for i in self.recorder.incidents if i.scenario == scenario]

    def webhooks(self, scenario: str) -> list[Webhook]:
        with self._lock:
            return [w for w in self.recorder.webhooks if w.scenario == scenario]

    # -- the HTTP side
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standins = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                code, answer = standins._receive(self.path, raw)
                out = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _receive(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        now = time.time()
        parts = path.strip("/").split("/", 1)
        if len(parts) != 2:
            return 404, {"error": f"unknown path {path}"}
        scenario, rest = parts
        kind = {"v2/enqueue": "pagerduty", "slack": "slack", "tickets": "tickets"}.get(rest)
        if kind is None:
            return 404, {"error": f"unknown path {path}"}
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return 400, {"status": "invalid event", "message": "Event object is invalid"}
        with self._lock:
            self.recorder.received.append(Received(now, kind, {**body, "_scenario": scenario}))
        if kind != "pagerduty":
            return 200, {"ok": True}
        action, key = body.get("event_action"), body.get("dedup_key")
        if action not in ("trigger", "acknowledge", "resolve") or not key or not body.get("routing_key"):
            return 400, {"status": "invalid event", "message": "event_action, dedup_key and routing_key required"}
        with self._lock:
            # PagerDuty deduplicates within the service the routing key belongs to.
            routing_key = str(body["routing_key"])
            incident = next((i for i in self.recorder.incidents if i.dedup_key == key and i.resolved_at is None
                             and i.routing_key == routing_key), None)
            if action == "trigger":
                if incident is None:  # PagerDuty opens one incident per open dedup_key
                    summary = str((body.get("payload") or {}).get("summary", ""))
                    incident = Incident(f"PDRILL{next(self._ids):04d}", scenario, key, summary, now,
                                        routing_key=routing_key)
                    self.recorder.incidents.append(incident)
                    self._outbox.put(("incident.triggered", scenario, incident, now))
                    self._outbox.put(("incident.acknowledged", scenario, incident, now + ACK_AFTER_S))
                incident.triggers += 1
            elif action == "resolve" and incident is not None:
                incident.resolved_at = now
                self._outbox.put(("incident.resolved", scenario, incident, now))
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}

    # -- the webhook side: asynchronous, as PagerDuty's
    def _send_webhooks(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            event_type, scenario, incident, at = item
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            body = v3_body(event_type, incident, at)
            headers = {"Content-Type": "application/json", "X-PagerDuty-Signature":
                       signature(self._secrets[scenario], body),
                       "X-Webhook-Id": hashlib.sha256(body).hexdigest()[:20],
                       "User-Agent": "PagerDuty-Webhook/V3.0"}
            status, answer = self._deliver(scenario, body, headers)
            with self._lock:
                self.recorder.webhooks.append(Webhook(time.time(), scenario, incident.id, event_type, status,
                                                      answer))
