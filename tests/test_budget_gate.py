"""The error budget gate against a real Prometheus 2.42 (Debian package, loopback) holding backfilled history
(tests/budget_world.py). Three services carry the shipped SLOs (rules/slos.yaml, relabelled per service): `healthy`
spends a quarter of each budget in the window (and had a big incident just before it, which must not count),
`burning` most of it, `exhausted` more than all of it.

The gate CLI runs as the workflow runs it (`python -m infra.tools.budget_gate`). Expected shares come from the
scenario (a share of each SLO's budget, turned into counters through the SLO's objective and window).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from budget_world import World, budget_world, service_slos

from infra.config import ConfigError, parse_stack_config
from infra.core.paths import ROOT
from infra.offline.stackfile import StackFileError, read_stack_file, with_offline_secrets, with_overrides
from infra.slo.budget_policy import budget_remaining_query
from infra.slo.rules import BUDGET_FILE, rule_files
from infra.slo.spec import load_slos
from infra.tools import daemons
from infra.tools.budget_gate import configured_max_spent
from infra.tools.budget_source import BudgetReadError, read_budgets

# Share of each SLO's budget spent inside its window.
SHARES = {"healthy": 0.25, "burning": 0.7, "exhausted": 1.6}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with budget_world(tmp_path_factory.mktemp("budget-gate"), SHARES, old_incident=("healthy",)) as w:
        yield w


def gate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "infra.tools.budget_gate", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


def outcome(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_gate_reads_the_share_each_slo_spent_in_its_window(world: World) -> None:
    print(f"\nbudget world: 32 days x 3 services backfilled, rules backfilled, Prometheus up in {world.build_s:.1f} s")
    for svc, group in world.slos.items():
        readings = read_budgets(world.url, group)
        assert [r.slo for r in readings] == group
        for r in readings:
            # The healthy service's incident a day before the window must not count.
            assert r.spent == pytest.approx(SHARES[svc], rel=1e-6), (svc, r.slo.name)


def test_the_world_keeps_its_budgets_current_by_evaluating_the_rules_itself(world: World) -> None:
    """The backfilled recordings end when the world is built and an instant query looks back only 5 minutes: a
    reader minutes later (the deploy workflow's gate in tests/test_workflow_steps.py) read "unreadable" on a loaded
    machine. The world's Prometheus evaluates every budget recording itself, as the shipped one does."""
    with urllib.request.urlopen(f"{world.url}/api/v1/rules?type=record", timeout=10) as resp:
        groups = json.load(resp)["data"]["groups"]
    loaded = {(r["name"], json.dumps(r.get("labels") or {}, sort_keys=True)) for g in groups for r in g["rules"]}
    shipped = rule_files([s for group in world.slos.values() for s in group])[BUDGET_FILE]
    want = {(r["record"], json.dumps(r.get("labels") or {}, sort_keys=True))
            for g in shipped["groups"] for r in g["rules"]}
    assert want and want <= loaded, sorted(want - loaded)
    assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups


def test_the_exhausted_service_is_held_and_the_healthy_one_goes(world: World) -> None:
    healthy = gate("--stack", "prod", "--prometheus-url", world.url, "--slo-file", str(world.slo_file("healthy")))
    assert healthy.returncode == 0, healthy.stderr
    result = outcome(healthy)
    assert result["verdict"] == "go" and result["max_budget_spent"] == configured_max_spent("prod")
    assert {(s["service"], s["slo"]) for s in result["slos"]} == {(s.service, s.name) for s in world.slos["healthy"]}
    assert all(s["spent"] == pytest.approx(SHARES["healthy"], rel=1e-6) for s in result["slos"])
    assert all(f"{100 * SHARES['healthy']:.1f}% of the {s.window} error budget spent" in healthy.stdout
               for s in world.slos["healthy"])

    everything = gate("--stack", "prod", "--prometheus-url", world.url,
                      "--slo-file", str(world.slo_file(*SHARES)))
    assert everything.returncode == 1, everything.stderr
    allowed = configured_max_spent("prod")
    over = {f"{svc}/{s.name}" for svc, group in world.slos.items() for s in group if SHARES[svc] > allowed}
    assert over and {f"{s['service']}/{s['slo']}" for s in outcome(everything)["slos"] if s["over"]} == over
    assert all(name in everything.stderr for name in over) and "HELD" in everything.stderr


def test_the_configured_share_holds_a_burning_service(world: World, tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.prod.yaml"
    doc = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    doc["config"]["akidb-observability:sloAlerting"]["deployGate"] = {"maxBudgetSpent": 0.5}
    stack_file.write_text(yaml.safe_dump(doc))
    done = gate("--stack", "prod", "--stack-file", str(stack_file), "--prometheus-url", world.url,
                "--slo-file", str(world.slo_file("healthy", "burning")))
    assert done.returncode == 1
    assert {s["service"] for s in outcome(done)["slos"] if s["over"]} == {"burning"}


@pytest.mark.parametrize("value", [0, 1.5, -0.2, "all", True])
def test_a_bad_share_is_refused_with_the_projects_message(value: Any) -> None:
    stack, _ = with_offline_secrets(
        with_overrides(read_stack_file("prod"), {"sloAlerting": {"deployGate": {"maxBudgetSpent": value}}}))
    with pytest.raises(ConfigError, match=r"sloAlerting\.deployGate\.maxBudgetSpent = .*: must be a number in "
                                          r"\(0, 1\]"):
        parse_stack_config(stack.values, set(stack.secret_keys))


def test_an_invalid_stack_file_is_exit_2_with_its_error(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.prod.yaml"
    bad.write_text("config:\n  akidb-observability:environment: prod\n  akidb-observability:sloAlerting:\n"
                   "    deployGate: {maxBudgetSpent: 2}\n")
    done = gate("--stack", "prod", "--stack-file", str(bad), "--prometheus-url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "sloAlerting.deployGate.maxBudgetSpent = 2: must be a number in (0, 1]" in done.stderr
    with pytest.raises(StackFileError, match="no stack file"):
        configured_max_spent("no-such-stack")


def test_an_unreachable_prometheus_holds_with_exit_2() -> None:
    port = daemons.free_port()  # nothing listens there
    done = gate("--stack", "prod", "--prometheus-url", f"http://127.0.0.1:{port}")
    assert done.returncode == 2
    assert "unreachable" in done.stderr and f"127.0.0.1:{port}" in done.stderr
    assert outcome(done)["verdict"] == "unreadable"


def test_an_slo_without_a_series_holds_with_exit_2_naming_it(world: World) -> None:
    with pytest.raises(BudgetReadError, match="no series") as err:
        read_budgets(world.url, [*world.slos["healthy"], *service_slos("silent")])
    assert all(f"silent/{s.name}" in str(err.value) for s in service_slos("silent"))
    assert "healthy/" not in str(err.value)
    done = gate("--stack", "prod", "--prometheus-url", world.url)  # the shipped SLOs: akidb-rest has no data here
    assert done.returncode == 2 and "no series" in done.stderr
    assert all(f"akidb-rest/{s.name}" in done.stderr for s in load_slos())


def test_an_override_lets_a_held_deploy_go_and_is_recorded(world: World, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTOR": "oncall-jo", "GITHUB_RUN_ID": "4242"}
    args = ("--stack", "prod", "--prometheus-url", world.url, "--slo-file", str(world.slo_file("exhausted")))
    done = gate(*args, "--override-reason", "  rollout of the fix for the 5xx burst  ", env=env)
    assert done.returncode == 0, done.stderr
    record = outcome(done)
    assert record["verdict"] == "held" and record["exit"] == 0
    override = record["override"]
    assert override["reason"] == "rollout of the fix for the 5xx burst"
    assert (override["actor"], override["run_id"]) == ("oncall-jo", "4242")
    assert {h["slo"] for h in override["held_by"]} == {f"exhausted/{s.name}" for s in world.slos["exhausted"]}
    assert all(h["spent"] == pytest.approx(SHARES["exhausted"], rel=1e-6) for h in override["held_by"])
    assert "OVERRIDE recorded" in done.stdout
    text = summary.read_text()
    assert "Override recorded" in text and "rollout of the fix for the 5xx burst" in text
    assert "oncall-jo" in text and "4242" in text and f"{100 * SHARES['exhausted']:.1f}% spent" in text

    for blank in ("", "   \t "):
        refused = gate(*args, "--override-reason", blank, env=env)
        assert refused.returncode == 2 and "--override-reason is empty" in refused.stderr
    assert summary.read_text() == text  # a refused override records nothing


def test_an_override_covers_an_unreadable_budget_and_says_so(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    port = daemons.free_port()
    done = gate("--stack", "prod", "--prometheus-url", f"http://127.0.0.1:{port}", "--override-reason",
                "AMP outage; deploying the alerting fix", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 0
    override = outcome(done)["override"]
    assert override["held_by"] is None and "unreachable" in override["unreadable"]
    assert "budgets unreadable" in summary.read_text()


class _SigningRecorder(BaseHTTPRequestHandler):
    """Loopback proxy in front of the real Prometheus: records each request's headers, answers 403 on demand."""

    seen: list[tuple[str, dict[str, str]]] = []
    upstream = ""
    refuse = False

    def do_GET(self) -> None:
        type(self).seen.append((self.path, dict(self.headers.items())))
        if type(self).refuse:
            body = b'{"message":"User is not authorized to perform: aps:QueryMetrics"}'
            self.send_response(403)
        else:
            import urllib.request
            with urllib.request.urlopen(type(self).upstream + self.path, timeout=10) as r:
                body = r.read()
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(world: World) -> Iterator[str]:
    _SigningRecorder.seen, _SigningRecorder.upstream, _SigningRecorder.refuse = [], world.url, False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SigningRecorder)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# AWS's documented example credentials (Signature Version 4 test suite), not a key.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",  # pragma: allowlist secret
           "AWS_SESSION_TOKEN": "session-token-of-the-oidc-role", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


def test_sigv4_signs_each_query_for_aps_with_the_default_credentials(world: World, recorder: str) -> None:
    done = gate("--stack", "prod", "--prometheus-url", recorder, "--sigv4-region", "eu-west-1",
                "--slo-file", str(world.slo_file("healthy")), env=AWS_ENV)
    assert done.returncode == 0, done.stderr
    assert len(_SigningRecorder.seen) == len(world.slos["healthy"])
    for (path, headers), slo in zip(_SigningRecorder.seen, world.slos["healthy"], strict=True):
        assert urllib.parse.parse_qs(urllib.parse.urlparse(path).query)["query"] == [budget_remaining_query(slo)]
        auth = headers["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/aps/aws4_request" in auth
        assert headers["X-Amz-Security-Token"] == AWS_ENV["AWS_SESSION_TOKEN"]
        # The signature is what SigV4 gives for this request at its X-Amz-Date with those credentials.
        again = AWSRequest(method="GET", url=recorder + path)
        again.context["timestamp"] = headers["X-Amz-Date"]
        creds = Credentials(AWS_ENV["AWS_ACCESS_KEY_ID"], AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                            AWS_ENV["AWS_SESSION_TOKEN"])
        signer = SigV4Auth(creds, "aps", "eu-west-1")
        signer._modify_request_before_signing(again)  # date and token headers, as add_auth sets them
        expected = signer.signature(signer.string_to_sign(again, signer.canonical_request(again)), again)
        assert auth.endswith(f"Signature={expected}")


def test_sigv4_without_credentials_or_refused_is_exit_2_auth(world: World, recorder: str) -> None:
    no_creds = {k: v for k, v in AWS_ENV.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_SESSION"))}
    done = gate("--stack", "prod", "--prometheus-url", recorder, "--sigv4-region", "eu-west-1", env=no_creds)
    assert done.returncode == 2 and "auth: no AWS credentials" in done.stderr
    assert _SigningRecorder.seen == []  # nothing unsigned was sent
    _SigningRecorder.refuse = True
    done = gate("--stack", "prod", "--prometheus-url", recorder, "--sigv4-region", "eu-west-1",
                "--slo-file", str(world.slo_file("healthy")), env=AWS_ENV)
    assert done.returncode == 2 and "auth: Prometheus at" in done.stderr and "HTTP 403" in done.stderr
