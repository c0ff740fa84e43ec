"""Every URL the runbook automation writes (its notifications and audit entries) reaches something the stack or the
repository provides: a runbook page, a Grafana board of dashboards/grafana, or one of the stack's CloudWatch
dashboards. Run with each stack's planned RUNBOOK_SETTINGS, in dry run (the message is decided, nothing acts)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from runbook_automation import runbooks as rb
from runbook_automation.audit import Audit
from runbook_automation.settings import parse

from infra.core.paths import DASHBOARDS_DIR
from infra.offline.runbook_facts import runbook_settings, stack_facts
from infra.slo import stack_facts as sf
from infra.slo.runbooks import load_runbooks

STACKS = ("staging", "prod")


class Published:
    """Records what the automation publishes (the audit topic): the URLs are in there."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def publish(self, **kwargs: Any) -> None:
        self.messages.append(kwargs["Message"])


def _messages(settings: dict[str, Any], runbook: str) -> list[str]:
    """What a dry run of `runbook` publishes, its run ledger in the stack's state table (moto)."""
    s = parse(json.dumps({**settings, "dry_run": True, "scale_out_asg": None}))
    sns = Published()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")  # moto's fake credentials
        ddb.create_table(TableName=s.table_name, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        deps = rb.Deps(settings=s, audit=Audit(sns, s.audit_topic_arn, s.environment), autoscaling=None,
                       dynamodb=ddb, sns=sns)
        rb.run(deps, rb.Job(runbook=runbook, incident_id="PGR0VU2", title=f"t [runbook:{runbook}]",
                            webhook_id="w1", html_url=""))
    return sns.messages


def _edge_board(planned: Any, stack: str) -> sf.CloudWatchBoard:
    board = stack_facts(stack, planned[stack].plan).board("edge")
    assert board is not None, f"stack {stack} provides no CloudWatch edge dashboard"
    return board


@pytest.mark.parametrize("stack", STACKS)
def test_every_url_the_automation_writes_reaches_a_provided_dashboard_or_page(planned, stack: str) -> None:  # type: ignore[no-untyped-def]
    facts = stack_facts(stack, planned[stack].plan)
    settings = runbook_settings(planned[stack].plan)
    board = _edge_board(planned, stack)
    uids, ids = sf.grafana_uids(DASHBOARDS_DIR / "grafana"), set(load_runbooks())
    urls = [u for runbook in rb.RUNBOOKS for m in _messages(settings, runbook) for u in sf.urls_in(m)]
    assert urls and board.url in urls  # as planned: the edge board wired in
    assert [p for u in urls if (p := sf.link_problem(u, facts.link_targets(uids, ids)))] == []


def test_the_cold_start_message_links_the_edge_board_of_the_stack(planned) -> None:  # type: ignore[no-untyped-def]
    board = _edge_board(planned, "prod")
    settings = runbook_settings(planned["prod"].plan)  # as the stack plans them: the board wired in
    assert settings["edge_dashboard_url"] == board.url
    text = " ".join(_messages(settings, "lambda-edge-cold-start"))
    assert board.url in text and "/d/akidb-edge/" not in text
    # Unwired (no dashboards component), it names the page that links the board instead of guessing an address.
    unwired = {k: v for k, v in settings.items() if k != "edge_dashboard_url"}
    text = " ".join(_messages(unwired, "lambda-edge-cold-start"))
    assert "console.aws.amazon.com" not in text and "lambda-edge-cold-start" in text
