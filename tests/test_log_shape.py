"""Logs as a signal (issue 32): every function writes the one shape (lambdas/logshape) with its own service, the
invocation's request id, trace id and incident / episode id, and no secret or personal data reaches a line.

Each function runs through its Lambda entry point (handler(event, context)) the way its own tests run it (moto
for AWS, a local HTTP server for the canary's targets); the conftest hook also checks every line those tests
write. The property tests feed secrets and personal data through every log path: the shape itself, the stdlib
logging route (JSON messages, %-args, extra fields, exceptions), the edge's EMF line, the webhook's refusals.
"""

from __future__ import annotations

import io
import json
import logging
import string
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import logshape
import pytest
from anomaly_core.settings import SETTINGS_FILE, MetricSpec, Settings
from edge_inference import handler as edge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_shape import records, shape_problems
from logshape import stdlib
from logshape.stdlib import QUIET_LOGGERS
from moto import mock_aws
from runbook_automation import handler as runbook
from runbook_env import SECRET, Env, http_event, incident, sign
from test_canary import DIMS, server  # noqa: F401  (the canary's target, a fixture of its own tests)
from zip_env import client, function_env, moto, state_table  # noqa: F401  (moto: a fixture)

from infra.artifacts.canary_package import HANDLER, build_canary
from infra.artifacts.edge_probe import origin_request_event
from infra.artifacts.packaging import build_lambda
from infra.core.paths import LAMBDAS_DIR
from infra.tools.drill import zip_runtime

ROOT_ID = "1-5f84c7a1-0123456789abcdef01234567"
TRACE_ENV = f"Root={ROOT_ID};Parent=53995c3f42cd8ad8;Sampled=1"
FUNCTIONS = sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/handler.py"))


def ctx(request_id: str) -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=request_id)


def shaped(stdout: str, service: str) -> list[dict[str, Any]]:
    recs = records(stdout)
    assert recs, f"{service} wrote no log line"
    problems = [p for r in recs for p in shape_problems(json.dumps(r), frozenset({service}))]
    assert not problems, problems
    return recs


# ------------------------------------------------------------------------------------------------- packaging
@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_package_carries_the_log_module(function: str) -> None:
    """Each function's include.txt names logshape; the built zip holds it at its root (where it imports it)."""
    includes = (LAMBDAS_DIR / function / "include.txt").read_text().split()
    assert "logshape" in includes, f"lambdas/{function}/include.txt does not name logshape"
    source = (LAMBDAS_DIR / function / "handler.py").read_text() + "".join(
        p.read_text() for p in (LAMBDAS_DIR / function).glob("*.py"))
    assert "logshape" in source, f"lambdas/{function} does not log through logshape"


def test_runbook_zip_holds_the_log_module(tmp_path: Path) -> None:
    pkg = build_lambda("runbook_automation", out_dir=tmp_path)
    names = zipfile.ZipFile(pkg.path).namelist()
    assert "logshape/__init__.py" in names and "logshape/stdlib.py" in names


# ------------------------------------------------------------------------------------ each function's output
def test_edge_lines_carry_the_shape_request_and_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "us-east-1.akidb-staging-edge-inference")
    out = io.StringIO()
    app = edge.App(settings_path=tmp_path / "settings.json", out=out, tmp_dir=tmp_path)
    app.warm()  # no settings: the init error line
    resp = app.handle(origin_request_event({"text": "hello"}, headers={"X-Amzn-Trace-Id": TRACE_ENV}),
                      ctx("edge-req-1"))
    assert resp["status"] == "503"
    init, request = shaped(out.getvalue(), "edge-inference")
    assert init["level"] == "ERROR" and init["message"] == "init: model not loaded"
    assert request["function"] == "us-east-1.akidb-staging-edge-inference"
    assert request["request_id"] == "edge-req-1" and request["trace_id"] == ROOT_ID
    assert request["level"] == "ERROR" and request["Status"] == 503 and "_aws" in request
    assert next(iter(request)) == "_aws", "the EMF directive stays first"


@pytest.fixture
def runbook_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield Env(monkeypatch)
    runbook._reset()


COLD_START = "edge cold starts above target [runbook:lambda-edge-cold-start]"


def test_runbook_webhook_and_worker_lines_carry_request_trace_and_incident(moto: str, tmp_path: Path) -> None:  # noqa: F811
    """The webhook and the worker from their built zip (each its own container, as two functions of one zip)."""
    sm, sns, sqs = client(moto, "secretsmanager"), client(moto, "sns"), client(moto, "sqs")
    secret = sm.create_secret(Name="akidb-prod-pagerduty-webhook", SecretString=SECRET)["ARN"]
    audit, notify = (sns.create_topic(Name=n)["TopicArn"] for n in ("log-audit", "log-alerts-p2"))
    queue = sqs.create_queue(QueueName="log-jobs")["QueueUrl"]
    state_table(moto, "log-runbook-state")
    state_table(moto, "log-incident-timeline", sort_key=True)
    settings = json.dumps({
        "environment": "prod", "table_name": "log-runbook-state", "audit_topic_arn": audit, "queue_url": queue,
        "secret_id": secret, "notify_topic_arn": notify, "dry_run": False, "timeline_settle_s": 0,
        "timeline_table_name": "log-incident-timeline", "runbook_base_url": "https://runbooks.akidb.internal"})
    body = incident(COLD_START)
    with zip_runtime.packaged("runbook_automation", tmp_path / "hook", function_env(
            moto, RUNBOOK_SETTINGS=settings, AWS_LAMBDA_FUNCTION_NAME="akidb-prod-runbook-webhook")) as hook:
        refused = hook.invoke(http_event(b"{}", "v1=" + "0" * 64), context={"aws_request_id": "hook-0"},
                              env={"_X_AMZN_TRACE_ID": TRACE_ENV})
        accepted = hook.invoke(http_event(body, sign(body)), context={"aws_request_id": "hook-1"})
    assert refused.result["statusCode"] == 401 and accepted.result["statusCode"] == 202, (refused, accepted)
    lines = shaped("\n".join(refused.log + accepted.log), "runbook-automation")
    # The SDK's INFO chatter ("Found credentials in environment variables.") is not written (log volume).
    assert not [r for r in lines if str(r.get("logger", "")).split(".")[0] in QUIET_LOGGERS], lines
    # the receiver logs its refusals; its decision on a signed page is audited once by the worker (ledger.py)
    assert [r.get("decision") for r in lines] == ["unauthenticated"]
    assert lines[0]["request_id"] == "hook-0" and lines[0]["trace_id"] == ROOT_ID
    assert lines[0]["function"] == "akidb-prod-runbook-webhook"
    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    with zip_runtime.packaged("runbook_automation", tmp_path / "work", function_env(
            moto, RUNBOOK_SETTINGS=settings, AWS_LAMBDA_FUNCTION_NAME="akidb-prod-runbook-worker")) as work:
        done = work.invoke({"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in msgs]},
                           function="worker", context={"aws_request_id": "work-1"}, env={"_X_AMZN_TRACE_ID": TRACE_ENV})
    assert done.result == {"batchItemFailures": []}, done
    work_lines = shaped("\n".join(done.log), "runbook-automation")
    assert not [r for r in work_lines if str(r.get("logger", "")).split(".")[0] in QUIET_LOGGERS], work_lines
    for decision in ("accepted", "acted"):
        found = [r for r in work_lines if r.get("decision") == decision]
        assert found and found[0]["incident_id"] == "PGR0VU2" and found[0]["request_id"] == "work-1", decision
        assert found[0]["function"] == "akidb-prod-runbook-worker" and found[0]["trace_id"] == ROOT_ID


BUCKET = "anomaly-bucket"
CW_METRIC = MetricSpec(name="request_rate", source="cloudwatch", query="AkiDB/Test|Requests|Average|Service=api",
                       seasonality_mode="multiplicative")


def test_detector_and_trainer_lines_carry_the_metric_decision(moto: str, tmp_path: Path) -> None:  # noqa: F811
    """Each from its built zip with the settings baked as the stack bakes them (settings.json)."""
    cfg = Settings(metrics=(CW_METRIC,), prometheus_url=None, confidence_threshold=0.7, history_days=22,
                   forecast_max_age_s=192 * 3600)
    baked = {SETTINGS_FILE: json.dumps(cfg.to_json()).encode()}
    client(moto, "s3").create_bucket(Bucket=BUCKET)
    topic = client(moto, "sns").create_topic(Name="anomaly")["TopicArn"]
    env = function_env(moto, ANOMALY_BUCKET=BUCKET, ANOMALY_TOPIC_ARN=topic)
    with zip_runtime.packaged("anomaly_detector", tmp_path, env, baked=baked) as detector:
        run = detector.invoke({"source": "aws.events"}, context={"aws_request_id": "detect-1"},
                              env={"_X_AMZN_TRACE_ID": TRACE_ENV})
    assert run.error is None, (run, detector.tail())
    decided = [r for r in shaped("\n".join(run.log), "anomaly-detector") if r.get("metric") == "request_rate"]
    assert decided and decided[0]["decision"] == "skipped" and decided[0]["request_id"] == "detect-1"
    assert decided[0]["trace_id"] == ROOT_ID and "no forecast yet" in decided[0]["reason"]
    with zip_runtime.packaged("anomaly_trainer", tmp_path, env, baked=baked) as trainer:
        train = trainer.invoke({}, context={"aws_request_id": "train-1"}, env={"_X_AMZN_TRACE_ID": TRACE_ENV})
    assert train.error_type == "TrainerFailed", (train, trainer.tail())  # no history in CloudWatch
    failed = [r for r in shaped("\n".join(train.log), "anomaly-trainer") if r.get("decision") == "failed"]
    assert failed and failed[0]["metric"] == "request_rate" and failed[0]["request_id"] == "train-1"


def test_canary_lines_carry_the_shape(server: str, tmp_path: Path) -> None:  # noqa: F811
    """The canary from its Synthetics zip (python/ on the path, as the runtime puts it)."""
    pkg = build_canary(out_dir=tmp_path / "out")
    root = zip_runtime.extract(pkg.path, tmp_path / "canary-zip") / "python"
    env = {"CANARY_SETTINGS": json.dumps({
        "canary": "c", "edge_url": server, "rest_url": server, "health_paths": ["/health/live"],
        "embed_text": "probe sentence", "embed_dimensions": DIMS, "max_latency_ms": 2000, "request_timeout_s": 5})}
    with zip_runtime.ZipProcess(root, HANDLER.rsplit(".", 1)[0], env, tmp_path / "canary.log") as canary:
        run = canary.invoke({}, context={"aws_request_id": "canary-1"})
    assert run.error is None, (run, canary.tail())
    lines = shaped("\n".join(run.log), "canary")
    assert [r["Check"] for r in lines if "_aws" in r] == ["embed", "health-live"]
    assert {r["request_id"] for r in lines} == {"canary-1"}
    assert lines[-1]["message"] == "all 2 checks passed"


# ------------------------------------------------------------------------------------------------- redaction
_B64URL = string.ascii_letters + string.digits + "-_"
secrets_and_pii = st.one_of(
    st.emails(),
    st.text(_B64URL + ".~+/", min_size=8, max_size=40).map(lambda t: f"Bearer {t}"),
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda t: f"AKIA{t}"),
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda t: f"v1={t}"),
    st.tuples(*(st.text(_B64URL, min_size=6, max_size=30) for _ in range(3))).map(
        lambda p: f"eyJ{p[0]}.{p[1]}.{p[2]}"),
    st.text(_B64URL, min_size=8, max_size=30).map(lambda t: f"whsec_{t}"),
)
surrounding = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
separators = st.sampled_from([" ", ": ", "=", "\n", "\t", " (", ", ", "'"])
sensitive_names = st.sampled_from(sorted(logshape.DEFAULT_FIELDS)).flatmap(
    lambda n: st.sampled_from([n, n.upper(), n.replace("_", "-"), n.title()]))
private_values = st.text(string.ascii_letters + string.digits, min_size=8, max_size=24).map(lambda t: f"PII-{t}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def assert_absent(output: str, *secrets: str) -> None:
    for rec in records(output):
        for text in _strings(rec):
            for secret in secrets:
                assert secret not in text, f"{secret!r} reached a log line: {text[:200]!r}"


@settings(max_examples=150, deadline=None)
@given(secret=secrets_and_pii, before=surrounding, after=surrounding, sep=separators, name=sensitive_names,
       private=private_values)
def test_shape_never_writes_a_secret_or_a_listed_field(secret: str, before: str, after: str, sep: str, name: str,
                                                        private: str) -> None:
    shape = logshape.Shape("edge-inference", logshape.redactor_from({}))
    text = f"{before}{sep}{secret}{sep}{after}"
    line = shape.line("INFO", text, {"error": text, name: private, "nested": {"deep": [text, {name: private}]},
                                     "headers": {name: private}})
    assert_absent(line, secret, private)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secrets_and_pii, sep=separators, name=sensitive_names, private=private_values)
def test_stdlib_logging_paths_never_write_a_secret(secret: str, sep: str, name: str, private: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    shape = stdlib.configure("runbook-automation")
    shape.bind(ctx("prop"))
    log = logging.getLogger("runbook_automation")
    text = f"reason{sep}{secret}{sep}end"
    capsys.readouterr()
    log.info(json.dumps({"decision": "malformed", "reason": text, name: private}))
    log.warning("delivery refused: %s", text, extra={"fields": {name: private, "detail": [text]}})
    try:
        raise ValueError(text)
    except ValueError:
        log.exception("unexpected: %s", text)
    out = capsys.readouterr().out
    assert len(records(out)) == 3
    assert_absent(out, secret, private)


@settings(max_examples=60, deadline=None)
@given(secret=secrets_and_pii, sep=separators)
def test_edge_request_line_never_writes_the_request_text_or_a_secret(secret: str, sep: str) -> None:
    """The caller's text never reaches the log; a fault whose message quotes it is scrubbed, traceback too."""
    text = f"embed this{sep}{secret}"
    out = io.StringIO()
    app = edge.App(settings_path=Path("/nonexistent/settings.json"), out=out)

    def fail() -> Any:
        raise RuntimeError(f"tokenizer choked on{sep}{secret}")

    app._ensure_encoder = fail  # type: ignore[method-assign]
    assert app.handle(origin_request_event({"text": text}), ctx("e"))["status"] == "500"
    doc = records(out.getvalue())[-1]
    assert "Traceback" in doc and "Error" in doc
    assert_absent(out.getvalue(), secret, text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secrets_and_pii, sep=separators)
def test_webhook_refusals_never_write_a_secret(secret: str, sep: str, runbook_env: Env,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A forged signature and a signed but malformed delivery quoting personal data: refused, nothing leaks."""
    capsys.readouterr()
    body = json.dumps({"event": {"id": f"x{sep}{secret}", "event_type": secret}}).encode()
    assert runbook.handler(http_event(body, f"v1={'ab' * 32}"), ctx("w"))["statusCode"] == 401
    assert runbook.handler(http_event(body, sign(body)), ctx("w"))["statusCode"] == 400
    out = capsys.readouterr().out
    assert len(records(out)) == 2
    assert_absent(out, secret, sign(body), f"v1={'ab' * 32}")


def test_deployments_add_fields_and_patterns_but_bad_ones_are_named() -> None:
    env = {logshape.FIELDS_ENV: '["customer_id"]', logshape.PATTERNS_ENV: '["cust-[0-9]+"]'}
    shape = logshape.Shape("canary", logshape.redactor_from(env))
    rec = json.loads(shape.line("INFO", "for cust-42 (a@b.example)", {"Customer-Id": "c-1", "ok": "kept"}))
    assert rec["message"] == f"for {logshape.REDACTED} ({logshape.REDACTED})"
    assert rec["Customer-Id"] == logshape.REDACTED and rec["ok"] == "kept"
    with pytest.raises(logshape.RedactionConfigError, match=r"LOG_REDACT_PATTERNS.*not a regular expression"):
        logshape.redactor_from({logshape.PATTERNS_ENV: '["("]'})
    with pytest.raises(logshape.RedactionConfigError, match="LOG_REDACT_FIELDS must be a JSON list of strings"):
        logshape.redactor_from({logshape.FIELDS_ENV: "customer_id"})
