"""A synthetic akidb-rest: HTTP /metrics on loopback whose counters integrate the scenario's current traffic, and
the same counters' history as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.

The series are the contract the shipped rules read: akidb_requests_total{status}, the request-duration histogram
with every bucket of the SLO's `akidb.io/histogram-buckets` (le="0.03" included), akidb_requests_in_progress.
`job` and `instance` come from the scrape (job "akidb-rest"), as in the cluster. Stopping the exporter closes
its port: the scrape fails and `up` is 0, as when the pods are gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from infra.tools.drill.scenarios import Traffic

JOB = "akidb-rest"
INSTANCE = "akidb-rest-0:8080"  # every scenario's target carries this label (configs.prometheus_config)
# The buckets akidb-rest exports (rules/slos.yaml, akidb.io/histogram-buckets): the SLO threshold 0.03 among them.
BUCKETS = ("0.005", "0.01", "0.025", "0.03", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10")
FAST_S = 0.008  # a healthy request: inside the 30 ms objective
SLOW_S = 0.2  # a slow one: outside it
IN_PROGRESS = 3.0


@dataclass
class Counts:
    ok: float = 0.0
    errors: float = 0.0
    fast: float = 0.0
    slow: float = 0.0

    def advance(self, traffic: Traffic, dt: float) -> None:
        n = traffic.rps * dt
        self.errors += n * traffic.error_ratio
        self.ok += n * (1 - traffic.error_ratio)
        self.slow += n * traffic.slow_ratio
        self.fast += n * (1 - traffic.slow_ratio)

    def samples(self) -> Iterator[tuple[str, str, float]]:
        """(metric name, label text without job/instance, value) of every series."""
        yield "akidb_requests_total", 'status="200"', self.ok
        yield "akidb_requests_total", 'status="500"', self.errors
        for le in BUCKETS:
            v = (self.fast if float(le) >= FAST_S else 0.0) + (self.slow if float(le) >= SLOW_S else 0.0)
            yield "akidb_request_duration_seconds_bucket", f'le="{le}"', v
        yield "akidb_request_duration_seconds_bucket", 'le="+Inf"', self.fast + self.slow
        yield "akidb_request_duration_seconds_count", "", self.fast + self.slow
        yield "akidb_request_duration_seconds_sum", "", self.fast * FAST_S + self.slow * SLOW_S
        yield "akidb_requests_in_progress", "", IN_PROGRESS


def _fmt(value: float) -> str:
    return repr(round(value, 3))


class Exporter:
    """The service's /metrics, its traffic switchable while it runs; `stop()`/`start()` take it off and on."""

    def __init__(self, port: int, counts: Counts, traffic: Traffic) -> None:
        self.port, self.counts, self._traffic = port, counts, traffic
        self._at = time.time()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_traffic(self, traffic: Traffic) -> None:
        with self._lock:
            self._advance()
            self._traffic = traffic
        if traffic.up and self._server is None:
            self.start()
        elif not traffic.up and self._server is not None:
            self.stop()

    def _advance(self) -> None:
        now = time.time()
        if self._traffic.up:
            self.counts.advance(self._traffic, now - self._at)
        self._at = now

    def render(self) -> str:
        with self._lock:
            self._advance()
            lines = [f"{name}{{{labels}}} {_fmt(v)}" if labels else f"{name} {_fmt(v)}"
                     for name, labels, v in self.counts.samples()]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode() if self.path.startswith("/metrics") else b""
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def history(path: Path, instance: str, *, start: float, end: float, step_s: float, traffic: Traffic,
            baselines: tuple[tuple[float, float], ...] = ()) -> Counts:
    """Write the healthy history of every series from `start` to `end` (epoch s) as OpenMetrics, plus the
    recorded `akidb:requests:rate5m` over each (from, to) of `baselines` (the TrafficDrop rule's day- and
    week-ago baseline, written as the recording rule records it); return the counters' values at `end`."""
    counts = Counts()
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    t = start
    while t <= end:
        for name, labels, value in counts.samples():
            series.setdefault((name, labels), []).append((t, value))
        counts.advance(traffic, step_s)
        t += step_s
    lines: list[str] = []
    for (name, labels), points in series.items():
        label_text = f'job="{JOB}",instance="{instance}"' + (f",{labels}" if labels else "")
        lines += [f"{name}{{{label_text}}} {_fmt(v)} {ts:.3f}" for ts, v in points]
    for lo, hi in baselines:
        ts = lo
        while ts <= hi:
            lines.append(f'akidb:requests:rate5m{{service="{JOB}"}} {_fmt(traffic.rps)} {ts:.3f}')
            ts += step_s
    path.write_text("\n".join(lines) + "\n# EOF\n")
    # The live exporter continues where the history ends (less the last step: the loop advanced once more).
    return counts
