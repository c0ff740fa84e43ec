"""Local stand-ins for PagerDuty's Events API v2, Slack's incoming webhook and the ticket webhook: one loopback
HTTP server that records every request by scenario (the first path segment), and, as PagerDuty does, opens one
incident per `dedup_key` and sends signed V3 webhooks (incident.triggered, .acknowledged, .resolved) to a
subscriber.

PagerDuty's shapes: Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): a JSON
body with routing_key, event_action (trigger|acknowledge|resolve), dedup_key, payload.summary; answered 202 with
{"status": "success", "dedup_key": ...}. V3 webhooks (https://developer.pagerduty.com/docs/webhooks/v3-overview/):
{"event": {"id", "event_type", "resource_type": "incident", "occurred_at", "agent", "data": {...}}}, header
X-PagerDuty-Signature: v1=<HMAC-SHA256 hex of the raw body with the subscription secret>, X-Webhook-Id.

Delivery as PagerDuty's "Webhook Behavior" page documents it (https://developer.pagerduty.com/docs/webhooks/
webhook-behavior/): a 2xx is expected within 5 seconds; no response / a timeout, a 5xx, a 429 or a connection
failure is retried (periodically, for up to 48 hours: the drill retries after 1, 2, 4, 8... s, MAX_ATTEMPTS in
all), with the SAME body and X-Webhook-Id ("repeated for each delivery attempt"), and later webhooks of that
subscription and incident wait behind it (ordering); any other 4xx is dropped without a retry. A scenario may
make the first answer to each incident's trigger arrive after the 5 s timeout (a cold start): PagerDuty then
retries what the webhook already processed, which exercises exactly-once end to end.
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
# PagerDuty expects a 2xx within 5 s (Webhook Behavior, "Timeouts"); retries, drill-sized (PagerDuty: up to 48 h).
TIMEOUT_S = 5.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
TIMED_OUT = 0  # the status recorded for an attempt whose answer came too late (PagerDuty saw none)


def retried(status: int) -> bool:
    """Whether PagerDuty retries an attempt answered `status` (TIMED_OUT: no answer in time)."""
    return status == TIMED_OUT or status == 429 or status >= 500


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
    triggered_at: list[float] = field(default_factory=list)  # every trigger event's arrival (dedup'd into it)


@dataclass
class Webhook:
    """One V3 delivery and the answer of the project's webhook."""

    at: float
    scenario: str
    incident: str
    event_type: str
    status: int  # TIMED_OUT when the answer came after PagerDuty's timeout
    answer: dict[str, Any]
    webhook_id: str = ""
    attempt: int = 1
    took_s: float = 0.0


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
        self._late_first_answer: set[str] = set()  # scenarios whose first answer to a trigger comes too late
        self._busy = threading.Event()  # the sender holds webhooks not yet delivered
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

    def late_first_answer(self, scenario: str) -> None:
        """The webhook's first answer to each of the scenario's `incident.triggered` arrives after TIMEOUT_S."""
        self._late_first_answer.add(scenario)

    def idle(self) -> bool:
        """Nothing left to send: every webhook owed was delivered, dropped or given up on."""
        return self._outbox.empty() and not self._busy.is_set()

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
                incident.triggered_at.append(now)
            elif action == "resolve" and incident is not None:
                incident.resolved_at = now
                self._outbox.put(("incident.resolved", scenario, incident, now))
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}

    # -- the webhook side: asynchronous, as PagerDuty's
    def _send_webhooks(self) -> None:
        """One sender, FIFO per incident: a delivery being retried holds back that incident's later ones."""
        pending: dict[str, list[_Outgoing]] = {}  # incident id -> its undelivered webhooks, oldest first
        stopping = False
        while not (stopping and not any(pending.values())):
            heads = [q[0].due for q in pending.values() if q]
            wait = max(0.0, min(heads) - time.time()) if heads else None
            try:
                item = self._outbox.get(timeout=wait) if wait is None or wait > 0 else self._outbox.get_nowait()
                if item is None:
                    stopping = True
                else:
                    self._busy.set()
                    event_type, scenario, incident, at = item
                    body = v3_body(event_type, incident, at)
                    pending.setdefault(incident.id, []).append(
                        _Outgoing(scenario, incident, event_type, body, hashlib.sha256(body).hexdigest()[:20], at))
            except queue.Empty:
                pass
            now = time.time()
            for q in pending.values():
                if q and q[0].due <= now and self._attempt(q[0]):
                    q.pop(0)
            if any(pending.values()):
                self._busy.set()
            else:
                self._busy.clear()

    def _attempt(self, out: _Outgoing) -> bool:
        """One delivery attempt; True when it is done with (delivered, dropped, or out of attempts)."""
        out.attempt += 1
        headers = {"Content-Type": "application/json", "X-PagerDuty-Signature":
                   signature(self._secrets[out.scenario], out.body),
                   "X-Webhook-Id": out.webhook_id, "User-Agent": "PagerDuty-Webhook/V3.0"}
        started = time.time()
        try:
            status, answer = self._deliver(out.scenario, out.body, headers)
        except Exception as e:  # the receiver failed without an answer: a connection error to PagerDuty
            status, answer = TIMED_OUT, {"error": f"{type(e).__name__}: {e}"}
        took = time.time() - started
        if took > TIMEOUT_S or (out.attempt == 1 and out.event_type == "incident.triggered"
                                and out.scenario in self._late_first_answer):
            status, answer = TIMED_OUT, {"late": f"answered {status} after {max(took, TIMEOUT_S):.1f} s", **answer}
        with self._lock:
            self.recorder.webhooks.append(Webhook(time.time(), out.scenario, out.incident.id, out.event_type,
                                                  status, answer, out.webhook_id, out.attempt, took))
        if retried(status) and out.attempt < MAX_ATTEMPTS:
            out.due = time.time() + RETRY_DELAYS_S[out.attempt - 1]
            return False
        return True


@dataclass
class _Outgoing:
    """A webhook PagerDuty owes the subscriber: the same body and X-Webhook-Id on every attempt."""

    scenario: str
    incident: Incident
    event_type: str
    body: bytes
    webhook_id: str
    due: float
    attempt: int = 0
