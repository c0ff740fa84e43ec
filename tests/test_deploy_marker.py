"""infra.tools.deploy_marker against a real moto server (its own process, over HTTP): the maintenance suppressor in
every edge Region, the deploy event written once per (stack, run id, phase) with an AWS failure injected between
its steps, the marker data point, and the CLI's errors. Names and Regions come from the stack files."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.components.edge_composite import MAINTENANCE_DIMENSION, MAINTENANCE_METRIC, MAINTENANCE_NAMESPACE
from infra.core.paths import ROOT
from infra.tools import daemons
from infra.tools import deploy_marker as dm

STACK = "prod"  # four edge Regions and the timeline (runbooks enabled)
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with daemons.moto_server() as server:
        yield server.url


class Clients:
    """boto3 clients of the moto server, one per (service, Region), with optional injected failures."""

    def __init__(self, url: str):
        self.url = url
        self.cache: dict[tuple[str, str], Any] = {}

    def __call__(self, service: str, region: str) -> Any:
        if (service, region) not in self.cache:
            self.cache[(service, region)] = boto3.client(
                service, region_name=region, endpoint_url=self.url, aws_access_key_id="testing",
                aws_secret_access_key="testing", config=dm.BOTO)
        return self.cache[(service, region)]

    def fail_once(self, service: str, region: str, operation: str) -> list[int]:
        """The next `operation` call raises as AWS would (throttled); returns a counter of injected failures."""
        fired: list[int] = []

        def hook(**_: Any) -> None:
            if not fired:
                fired.append(1)
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "injected"}}, operation)

        self(service, region).meta.events.register(f"before-call.{service}.{operation}", hook)
        return fired


@pytest.fixture
def clients(moto: str) -> Clients:
    return Clients(moto)


@pytest.fixture(scope="module")
def targets(moto: str) -> dm.Targets:
    t = dm.load_targets(STACK)
    assert t.edge_function and t.timeline_table and len(t.edge_regions) > 1
    ddb = Clients(moto)("dynamodb", t.home_region)
    # The table as infra/components/incident_timeline.py declares it (keys pk/sk).
    ddb.create_table(TableName=t.timeline_table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])
    return t


def _stats(c: Clients, region: str, namespace: str, metric: str, dims: dict[str, str]) -> dict[str, float]:
    now = datetime.now(tz=UTC)
    points = c("cloudwatch", region).get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5), Period=3600,
        Statistics=["Maximum", "Minimum", "SampleCount"])["Datapoints"]
    if not points:
        return {}
    return {"Maximum": max(p["Maximum"] for p in points), "Minimum": min(p["Minimum"] for p in points),
            "SampleCount": sum(p["SampleCount"] for p in points)}


def _events(c: Clients, t: dm.Targets, run_id: str) -> list[dict[str, Any]]:
    assert t.timeline_table
    items = c("dynamodb", t.home_region).query(
        TableName=t.timeline_table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"deploy#{t.stack}"}})["Items"]
    return [i for i in items if i["sk"]["S"].startswith(f"run#{run_id}#")]


def _record(clients: Clients, run_id: str, phase: str, *extra: str) -> int:
    argv = ["record", "--stack", STACK, "--run-id", run_id, "--phase", phase, "--commit", SHA, "--actor", "octocat",
            *extra]
    return dm.main(argv, clients=clients)


def test_suppressor_is_raised_and_lowered_in_every_edge_region(clients: Clients, targets: dm.Targets) -> None:
    dims = {MAINTENANCE_DIMENSION: str(targets.edge_function)}
    assert dm.main(["suppressor", "raise", "--stack", STACK], clients=clients) == 0
    for region in targets.edge_regions:
        assert _stats(clients, region, MAINTENANCE_NAMESPACE, MAINTENANCE_METRIC, dims)["Maximum"] == 1
    # Lowering reaches every Region it can even when one fails, and says which failed.
    fired = clients.fail_once("cloudwatch", targets.edge_regions[0], "PutMetricData")
    assert dm.main(["suppressor", "lower", "--stack", STACK], clients=clients) == 1 and fired
    for region in targets.edge_regions[1:]:
        assert _stats(clients, region, MAINTENANCE_NAMESPACE, MAINTENANCE_METRIC, dims)["Minimum"] == 0
    assert dm.main(["suppressor", "lower", "--stack", STACK], clients=clients) == 0
    assert _stats(clients, targets.edge_regions[0], MAINTENANCE_NAMESPACE, MAINTENANCE_METRIC, dims)["Minimum"] == 0


@pytest.mark.parametrize("failing", [("dynamodb", "PutItem"), ("cloudwatch", "PutMetricData"),
                                     ("dynamodb", "UpdateItem")])
def test_one_event_per_run_and_phase_despite_a_failure_between_steps(
        clients: Clients, targets: dm.Targets, failing: tuple[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    run_id = f"{int(time.time() * 1000)}-{failing[1]}"
    dims = {"Stack": STACK, "Phase": "start"}
    before = _stats(clients, targets.home_region, dm.DEPLOY_NAMESPACE, dm.DEPLOY_METRIC, dims).get("SampleCount", 0)
    fired = clients.fail_once(failing[0], targets.home_region, failing[1])
    assert _record(clients, run_id, "start") == 1 and fired
    assert "ThrottlingException" in capsys.readouterr().err
    stored = _events(clients, targets, run_id)
    assert len(stored) == (0 if failing[1] == "PutItem" else 1)
    # The retry completes it; a third attempt changes nothing.
    assert _record(clients, run_id, "start") == 0
    assert _record(clients, run_id, "start") == 0
    assert "already recorded" in capsys.readouterr().out
    stored = _events(clients, targets, run_id)
    assert len(stored) == 1 and stored[0]["marker_published"] == {"BOOL": True}
    after = _stats(clients, targets.home_region, dm.DEPLOY_NAMESPACE, dm.DEPLOY_METRIC, dims)
    # Only a failure after the data point went in repeats it (same timestamp: one marker under Maximum).
    assert after["SampleCount"] - before == (2 if failing[1] == "UpdateItem" else 1)
    assert after["Maximum"] == 1


def test_end_carries_start_outcome_and_who(clients: Clients, targets: dm.Targets) -> None:
    run_id = f"{int(time.time() * 1000)}-1"
    assert _record(clients, run_id, "start", "--kind", "rollback") == 0
    assert _record(clients, run_id, "end", "--outcome", "failure", "--kind", "rollback") == 0
    by_phase = {i["phase"]["S"]: i for i in _events(clients, targets, run_id)}
    assert set(by_phase) == {"start", "end"}
    end = by_phase["end"]
    assert end["started_at"] == by_phase["start"]["at"] and end["outcome"] == {"S": "failure"}
    assert (end["commit"], end["actor"], end["kind"]) == ({"S": SHA}, {"S": "octocat"}, {"S": "rollback"})


def test_cli_process_records_and_lists_beside_incidents(moto: str, targets: dm.Targets) -> None:
    env = daemons.aws_env(moto, targets.home_region)
    run_id = f"{int(time.time() * 1000)}-cli"
    py: Callable[..., subprocess.CompletedProcess[str]] = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "infra.tools.deploy_marker", *a], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=60)
    rec = py("record", "--stack", STACK, "--run-id", run_id, "--phase", "start", "--commit", SHA, "--actor", "a")
    assert rec.returncode == 0, rec.stderr
    listed = py("list", "--stack", STACK, "--days", "1")
    assert listed.returncode == 0 and f"sk=run#{run_id}#start" in listed.stdout and f"commit={SHA}" in listed.stdout


def test_bad_input_and_missing_table_are_named(clients: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    assert dm.main(["suppressor", "raise", "--stack", "qa"], clients=clients) == 2
    assert "known stacks: prod, staging" in capsys.readouterr().err
    assert _record(clients, "1-1", "end") == 2
    assert "--outcome None: the end of a deploy needs one of success" in capsys.readouterr().err
    assert dm.main(["record", "--stack", "staging", "--run-id", "r", "--phase", "start", "--commit", "HEAD",
                    "--actor", "a"], clients=clients) == 2
    assert "a hex commit id" in capsys.readouterr().err
    # staging's table was never created on this moto server: the error says what is missing.
    assert dm.main(["record", "--stack", "staging", "--run-id", "r-1", "--phase", "start", "--commit", SHA,
                    "--actor", "a"], clients=clients) == 1
    err = capsys.readouterr().err
    assert "ResourceNotFoundException" in err and "is the stack deployed" in err


def test_the_outcomes_board_draws_the_markers_the_tool_puts(clients: Clients, targets: dm.Targets) -> None:
    """The deploy widget names exactly the series the tool writes (namespace, metric, every dimension set): a
    renamed dimension would leave the markers undrawn."""
    from infra.config import parse_stack_config
    from infra.dashboard_defs.outcomes import DEPLOY_PHASES, outcomes_dashboard
    from infra.offline.stackfile import read_stack_file, with_offline_secrets

    stack_file, _ = with_offline_secrets(read_stack_file(STACK))
    board = outcomes_dashboard(parse_stack_config(stack_file.values, set(stack_file.secret_keys), stack=STACK))
    drawn = {(line[0], line[1], tuple(line[2:-1]), line[-1]["region"])
             for w in board.widgets if getattr(w, "title", "").startswith("Deploys")
             for line in (m.to_json() for m in w.lines)}
    run_id = f"{int(time.time() * 1000)}-board"
    for phase in DEPLOY_PHASES:
        _record(clients, run_id, phase, *(["--outcome", "success"] if phase == "end" else []))
    cw = clients("cloudwatch", targets.home_region)
    put = {(dm.DEPLOY_NAMESPACE, m["MetricName"], tuple(x for d in m["Dimensions"] for x in (d["Name"], d["Value"])),
            targets.home_region)
           for m in cw.list_metrics(Namespace=dm.DEPLOY_NAMESPACE)["Metrics"]
           if {"Name": "Stack", "Value": STACK} in m["Dimensions"]}
    assert drawn and drawn == put
