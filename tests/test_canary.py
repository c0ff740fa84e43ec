"""Synthetic probes: the canary code against a local HTTP server (127.0.0.1 only), from its packaged zip too,
and the planned canaries, alarms and rule."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from canary import handler as canary_handler
from canary import probes
from zip_env import function_env, moto  # noqa: F401  (moto: a fixture)

from infra.artifacts.canary_package import ENTRY, HANDLER, build_canary
from infra.blocks.context import StackContext
from infra.components.synthetics import PROBE_NAMESPACE, SYNTHETICS_NAMESPACE, canary_name
from infra.config.synthetics import CANARY_RUNTIMES, schedule_minutes
from infra.tools import daemons
from infra.tools.drill import zip_runtime
from infra.validation.synthetics import canary_runtime_and_schedule

DIMS = 384


class FakeEdge(BaseHTTPRequestHandler):
    """POST /embed like the edge function (trace root kept), GET /health/*; `mode` injects failures."""

    mode = "ok"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        trace = self.headers.get(probes.TRACE_HEADER, "")
        root = re.search(r"Root=([^;]+)", trace)
        out_trace = f"Root={root.group(1) if root else '1-00000000-000000000000000000000000'};Parent=1;Sampled=1"
        n = {"short": DIMS - 1}.get(FakeEdge.mode, DIMS)
        vector: list[Any] = [0.01 * (i % 7) for i in range(n)]
        if FakeEdge.mode == "nan":
            vector[3] = "NaN"
        headers = {probes.TRACE_HEADER: out_trace}
        if FakeEdge.mode == "no-trace":
            headers = {}
        if FakeEdge.mode == "other-root":
            headers = {probes.TRACE_HEADER: "Root=1-11111111-222222222222222222222222;Parent=1;Sampled=1"}
        if FakeEdge.mode == "slow":
            time.sleep(0.5)
        status = 503 if FakeEdge.mode == "503" else 200
        assert body == {"text": "probe sentence"}
        self._send(status, {"embedding": vector, "dimensions": n}, headers)

    def do_GET(self) -> None:
        if self.path == "/health/ready" and FakeEdge.mode == "not-ready":
            self._send(503, {"status": "not ready"}, {})
        elif self.path in ("/health/live", "/health/ready"):
            self._send(200, {"status": "ok"}, {})
        else:
            self._send(404, {"error": "no"}, {})

    def _send(self, code: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeEdge)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(autouse=True)
def _mode() -> Iterator[None]:
    FakeEdge.mode = "ok"
    yield
    FakeEdge.mode = "ok"


def emf_problems(doc: dict[str, Any]) -> list[str]:
    """What would make CloudWatch drop the record's metrics (CloudWatch "Embedded metric
    format specification")."""
    out = []
    meta = doc.get("_aws") or {}
    if not isinstance(meta.get("Timestamp"), int):
        out.append("no integer _aws.Timestamp")
    for directive in meta.get("CloudWatchMetrics") or []:
        for dims in directive["Dimensions"]:
            out += [f"dimension {d} has no string value" for d in dims if not isinstance(doc.get(d), str)]
        for m in directive["Metrics"]:
            value = doc.get(m["Name"])
            if not isinstance(value, int | float) or isinstance(value, bool):
                out.append(f"metric {m['Name']} has no numeric value")
    return out


def settings(url: str, **kw: Any) -> probes.ProbeSettings:
    base = probes.ProbeSettings(canary="c", edge_url=url, rest_url=url, health_paths=("/health/live", "/health/ready"),
                                embed_text="probe sentence", embed_dimensions=DIMS, max_latency_ms=250,
                                request_timeout_s=5)
    return dataclasses.replace(base, **kw)


def test_all_checks_pass_and_emit_valid_emf_per_check(server: str) -> None:
    lines: list[str] = []
    checks = probes.run(settings(server), lines.append)
    assert [c.name for c in checks] == probes.check_names(settings(server)) == [
        "embed", "health-live", "health-ready"]
    records = [json.loads(line) for line in lines]
    assert len(records) == len(checks)
    for rec, check in zip(records, checks, strict=True):
        assert emf_problems(rec) == []
        directive = rec["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == PROBE_NAMESPACE == probes.NAMESPACE
        assert directive["Dimensions"] == [[probes.DIMENSION]]
        assert rec["Check"] == check.name and rec["Success"] == 1 and rec["Latency"] >= 0


@pytest.mark.parametrize(("mode", "check", "message"), [
    ("503", "embed", "status 503"),
    ("short", "embed", f"{DIMS - 1} values, expected {DIMS}"),
    ("nan", "embed", "not finite numbers"),
    ("no-trace", "embed", "no valid X-Amzn-Trace-Id"),
    ("other-root", "embed", "is not the one sent"),
    ("slow", "embed", "limit 250 ms"),
    ("not-ready", "health-ready", "status 503"),
])
def test_each_failure_fails_the_run_and_publishes_success_zero(server: str, mode: str, check: str,
                                                               message: str) -> None:
    FakeEdge.mode = mode
    lines: list[str] = []
    with pytest.raises(probes.CanaryFailure, match=re.escape(message)):
        probes.run(settings(server), lines.append)
    by_check = {json.loads(line)["Check"]: json.loads(line) for line in lines}
    assert by_check[check]["Success"] == 0
    assert all(r["Success"] == 1 for name, r in by_check.items() if name != check)


# Answers no well-behaved server gives, written byte for byte (each found by an independent fuzz pass to escape as an
# exception with no metrics at all, or to pass as healthy).
ODD_ANSWERS = {
    "bad status line": b"HTTP/1.1 OK-ish\r\n\r\n",
    "over 100 headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n{}",
    "broken chunked encoding": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json"
                                b"\r\n\r\nzz\r\n{}\r\n"),
    "1 MB of nested JSON": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
                            + b"[" * 1_000_000),
    "redirect to a 200 page": (b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n"),
}


@pytest.fixture
def odd_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A raw TCP server answering every request with `answer["now"]` (a /login page answers 200, to catch a probe
    that follows redirects)."""
    import socket
    answer = {"now": b""}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                request = conn.recv(65536)
                login = b"GET /login " in request
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" if login else answer["now"])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", answer
    stop.set()
    thread.join(timeout=5)
    sock.close()


@pytest.mark.parametrize("case", list(ODD_ANSWERS))
def test_an_odd_answer_is_a_failed_check_with_its_reason_and_every_check_still_emits(
        odd_server: tuple[str, dict[str, bytes]], case: str) -> None:
    url, answer = odd_server
    answer["now"] = ODD_ANSWERS[case]
    lines: list[str] = []
    s = settings(url, request_timeout_s=3, max_latency_ms=60_000)
    with pytest.raises(probes.CanaryFailure) as failure:
        probes.run(s, lines.append)
    records = [json.loads(line) for line in lines]
    assert [r["Check"] for r in records] == probes.check_names(s)
    # A health check reads only the status: a 200 with any body is healthy there.
    healthy = {r["Check"] for r in records if case == "1 MB of nested JSON" and r["Check"] != probes.EMBED_CHECK}
    for rec in records:
        assert emf_problems(rec) == [], (case, rec)
        assert rec["Success"] == (1 if rec["Check"] in healthy else 0), (case, rec)
        assert (f"{rec['Check']}: " in str(failure.value)) == (rec["Check"] not in healthy)
    if case.startswith("redirect"):
        assert "status 302" in records[0]["Problems"][0] and "redirected to /login" in records[0]["Problems"][0]


def test_unreachable_endpoint_is_a_failure_not_a_traceback() -> None:
    s = settings("http://127.0.0.1:9", rest_url=None, request_timeout_s=2)
    with pytest.raises(probes.CanaryFailure, match="embed: no response"):
        probes.run(s, lambda _line: None)


@pytest.mark.parametrize(("raw", "message"), [
    ("nope", "not JSON"),
    ("[]", "must be a JSON object"),
    (json.dumps({"canary": "c", "embed_text": "x", "embed_dimensions": 384, "max_latency_ms": 1,
                 "request_timeout_s": 1}), "nothing to probe"),
    (json.dumps({"canary": "c", "embed_text": "x", "embed_dimensions": "384", "max_latency_ms": 1,
                 "request_timeout_s": 1, "edge_url": "https://x"}), "embed_dimensions"),
    (json.dumps({"canary": "c", "embed_text": "x", "embed_dimensions": 384, "max_latency_ms": 1,
                 "request_timeout_s": 1, "edge_url": "ftp://x"}), "edge_url"),
])
def test_bad_settings_are_named(raw: str, message: str) -> None:
    with pytest.raises(probes.SettingsError, match=message):
        probes.ProbeSettings.from_json(raw)


def test_handler_reads_settings_from_the_environment(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARY_SETTINGS", raising=False)
    with pytest.raises(probes.SettingsError, match="CANARY_SETTINGS is not set"):
        canary_handler.handler()
    monkeypatch.setenv("CANARY_SETTINGS", json.dumps({
        "canary": "c", "edge_url": server, "rest_url": None, "health_paths": [], "embed_text": "probe sentence",
        "embed_dimensions": DIMS, "max_latency_ms": 2000, "request_timeout_s": 5}))
    assert list(canary_handler.handler()["checks"]) == ["embed"]


def _canary_settings(server: str, **kw: Any) -> str:
    return json.dumps({"canary": "c", "edge_url": server, "rest_url": server, "health_paths": ["/health/live"],
                       "embed_text": "probe sentence", "embed_dimensions": DIMS, "max_latency_ms": 2000,
                       "request_timeout_s": 5, **kw})


def test_packaged_zip_runs_from_the_synthetics_layout(server: str, tmp_path: Path) -> None:
    """The zip's python/ folder on the path (as the Synthetics Python runtime puts it), in the runtime's own
    interpreter with nothing else but boto3 (infra/tools/drill/zip_runtime.py)."""
    pkg = build_canary(out_dir=tmp_path / "out")
    names = zipfile.ZipFile(pkg.path).namelist()
    assert f"python/{ENTRY}.py" in names and "python/canary/probes.py" in names
    assert all(n.startswith("python/") for n in names)
    root = zip_runtime.extract(pkg.path, tmp_path / "unpacked") / "python"
    with zip_runtime.ZipProcess(root, HANDLER.rsplit(".", 1)[0], {"CANARY_SETTINGS": _canary_settings(server)},
                                tmp_path / "canary.log") as canary:
        run = canary.invoke({})
    assert run.error is None, (run, canary.tail())
    assert [r["Check"] for r in run.records() if "_aws" in r] == ["embed", "health-live"]
    # the same bytes again: deterministic package
    assert build_canary(out_dir=tmp_path / "again").sha256 == pkg.sha256


def test_packaged_canary_a_fault_between_its_checks_then_the_retry_each_check_reported_once_per_run(
        server: str, moto: str, tmp_path: Path) -> None:  # noqa: F811
    """The canary's steps are its checks; it calls no AWS API (its metrics are EMF lines on stdout, asserted: its
    AWS calls are counted against moto server). The fault comes between its steps: the edge answers, then the
    REST side fails (not ready, then unreachable). The run fails naming that check; Synthetics' retry runs
    clean. Each run reports every check exactly once (one EMF record each), the failed run the failed check as
    Success 0, and nothing of the failed run is reported again by the retry."""
    root = zip_runtime.extract(build_canary(out_dir=tmp_path / "out").path, tmp_path / "unpacked") / "python"
    closed = f"http://127.0.0.1:{daemons.free_port()}"
    faults = {"not-ready": ({"health_paths": ["/health/live", "/health/ready"]}, "not-ready"),
              "unreachable": ({"rest_url": closed}, "ok")}
    with zip_runtime.ZipProcess(root, HANDLER.rsplit(".", 1)[0], function_env(moto), tmp_path / "canary.log") as canary:
        for name, (change, mode) in faults.items():
            FakeEdge.mode = mode
            failed = canary.invoke({}, context={"aws_request_id": f"{name}-1"},
                                   env={"CANARY_SETTINGS": _canary_settings(server, **change)})
            FakeEdge.mode = "ok"
            retried = canary.invoke({}, context={"aws_request_id": f"{name}-2"},
                                    env={"CANARY_SETTINGS": _canary_settings(server, **{
                                        k: v for k, v in change.items() if k != "rest_url"})})
            assert failed.error_type == "CanaryFailure" and retried.error is None, (name, failed, retried)
            assert failed.calls == [] and retried.calls == []  # no AWS call: nothing of AWS to fault
            checks = probes.check_names(probes.ProbeSettings.from_json(_canary_settings(server, **change)))
            for run, request in ((failed, f"{name}-1"), (retried, f"{name}-2")):
                emf = [r for r in run.records() if "_aws" in r]
                assert sorted(r["Check"] for r in emf) == sorted(checks), (name, request, emf)
                assert {r["request_id"] for r in emf} == {request}
            assert {r["Check"]: r["Success"] for r in failed.records() if "_aws" in r} == {
                c: int(c == "embed" or (c == "health-live" and name == "not-ready")) for c in checks}
            assert all(r["Success"] == 1 for r in retried.records() if "_aws" in r)


# ------------------------------------------------------------------------------------------------ the plan
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_one_canary_per_probe_region_with_its_alarms(planned: dict[str, Any], stack: str) -> None:
    result = planned[stack]
    cfg = result.plan.config
    s = cfg.synthetics
    ctx = StackContext(cfg)
    canaries = {c.region: c for c in result.plan.of_type("aws:synthetics/canary:Canary")}
    assert sorted(canaries) == sorted(s.probe_regions)
    alarms = result.plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    for region, c in canaries.items():
        assert c.inputs["name"] == canary_name(ctx, region)
        assert c.inputs["runtimeVersion"] in CANARY_RUNTIMES
        assert c.get("schedule.expression") == s.schedule
        settings_json = json.loads(c.get("runConfig.environmentVariables.CANARY_SETTINGS"))
        assert probes.ProbeSettings.from_json(json.dumps(settings_json)).edge_url == s.edge_url
        here = [a for a in alarms if a.region == region]
        embed = [a for a in here if a.inputs.get("namespace") == PROBE_NAMESPACE
                 and a.inputs.get("dimensions") == {"Check": "embed"} and a.inputs["metricName"] == "Success"]
        assert len(embed) == 1 and embed[0].inputs["period"] == schedule_minutes(s.schedule) * 60
        assert embed[0].inputs["alarmActions"][0].endswith("alerts-p1")
        health = {a.inputs["dimensions"]["Check"] for a in here if a.inputs.get("namespace") == PROBE_NAMESPACE
                  and a.inputs["metricName"] == "Success"} - {"embed"}
        assert health == {probes.health_check_name(p) for p in s.health_paths}
        own = [a for a in here if a.inputs.get("namespace") == SYNTHETICS_NAMESPACE
               and a.inputs.get("dimensions") == {"CanaryName": c.inputs["name"]}]
        assert own and own[0].inputs["treatMissingData"] == "breaching"


def _mutated(result: Any, **changes: Any) -> Any:
    plan = result.plan
    canary = plan.of_type("aws:synthetics/canary:Canary")[0]
    inputs = {**canary.inputs, **changes}
    resources = [dataclasses.replace(r, inputs=inputs) if r is canary else r for r in plan.resources]
    return dataclasses.replace(plan, resources=resources)


@pytest.mark.parametrize(("change", "message"), [
    ({"runtimeVersion": "syn-python-selenium-1.0"}, "runtimeVersion"),
    ({"schedule": {"expression": "rate(2 hours)", "durationInSeconds": 0}}, "schedule"),
    ({"schedule": {"expression": "rate(5 minutes)", "durationInSeconds": 60}}, "durationInSeconds"),
    ({"zipFile": "/tmp/not-built.zip"}, "not built"),
    ({"artifactS3Location": "s3://someone-elses-bucket/"}, "not a bucket of this stack"),
    ({"artifactConfig": {}}, "unencrypted"),
])
def test_canary_rule_fails_on_bad_canaries(planned: dict[str, Any], change: dict[str, Any], message: str) -> None:
    assert list(canary_runtime_and_schedule(planned["staging"].plan)) == []
    found = list(canary_runtime_and_schedule(_mutated(planned["staging"], **change)))
    assert any(message in v.message for v in found), found


def test_config_problems_are_reported(run_stack: Any) -> None:
    result = run_stack("staging", overrides={"synthetics": {
        "schedule": "rate(7 hours)", "probeRegions": ["us-east-1", "us-east-1"]}})
    text = "\n".join(result.config_problems)
    assert "synthetics.schedule" in text
    result = run_stack("staging", overrides={"synthetics": {"probeRegions": ["us-east-1", "us-east-1"],
                                                             "schedule": "rate(10 minutes)", "timeoutS": 700}})
    text = "\n".join(result.config_problems)
    assert "probeRegions" in text and "distinct" in text
    assert "timeoutS = 700: must not exceed the schedule's 600 s" in text


def test_a_probe_region_gets_its_own_severity_topics(run_stack: Any) -> None:
    result = run_stack("staging", overrides={"synthetics": {"probeRegions": ["eu-central-1"]}})
    assert result.config_problems == [] and [str(v) for v in result.violations] == []
    assert "eu-central-1" in result.plan.config.alarm_regions
    topics = [t for t in result.plan.of_type("aws:sns/topic:Topic") if t.region == "eu-central-1"]
    assert len(topics) == 3
    alarms = [a for a in result.plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
              if a.region == "eu-central-1" and a.inputs.get("namespace") == PROBE_NAMESPACE]
    assert alarms and all(":eu-central-1:" in a.inputs["alarmActions"][0] for a in alarms)
