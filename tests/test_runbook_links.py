"""Every URL the runbook automation writes (its notifications and audit entries) reaches something the stack or the
repository provides: a runbook page, a Grafana board of dashboards/grafana, or one of the stack's CloudWatch
dashboards. The worker runs from its built zip in the runtime's interpreter (infra/tools/drill/zip_runtime.py)
against a moto server, with each stack's planned RUNBOOK_SETTINGS in dry run (the message is decided, nothing
acts); what it publishes is read back from the audit and notice topics through SQS copies."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from runbook_automation import runbooks as rb
from zip_env import client, copy_of, drain, function_env, moto, state_table  # noqa: F401  (moto: a fixture)

from infra.core.paths import DASHBOARDS_DIR
from infra.offline.runbook_facts import runbook_settings, stack_facts
from infra.slo import stack_facts as sf
from infra.slo.runbooks import load_runbooks
from infra.tools.drill import zip_runtime

STACKS = ("staging", "prod")
FUNCTION = "runbook_automation"


def _messages(url: str, settings: dict[str, Any], out_dir: Path) -> dict[str, list[str]]:
    """Per runbook of the zip, what a dry run of it publishes (audit and notice topics), its run ledger in the
    stack's state table; the topics are the moto ones of the planned names."""
    sns = client(url, "sns")
    topics = {key: sns.create_topic(Name=str(settings[key]).rsplit(":", 1)[-1])["TopicArn"]
              for key in ("audit_topic_arn", "notify_topic_arn") if settings.get(key)}
    state_table(url, settings["table_name"])
    copies = [copy_of(url, t) for t in topics.values()]
    env = function_env(url, AWS_LAMBDA_FUNCTION_NAME="akidb-runbook-worker", RUNBOOK_SETTINGS=json.dumps(
        {**settings, **topics, "dry_run": True, "scale_out_asg": None}))
    out: dict[str, list[str]] = {}
    with zip_runtime.packaged(FUNCTION, out_dir, env) as worker:
        for runbook in rb.RUNBOOKS:  # the names only: each runs in the zip
            run = uuid.uuid4().hex[:8].upper()  # a run of its own: the ledger of an earlier call holds its ids
            job = {"runbook": runbook, "incident_id": f"P{run}", "title": f"t [runbook:{runbook}]",
                   "webhook_id": f"w-{run}", "html_url": ""}
            got = worker.invoke({"Records": [{"messageId": f"m-{runbook}", "body": json.dumps(job)}]},
                                function="worker", context={"aws_request_id": f"r-{runbook}"})
            assert got.error is None and got.result == {"batchItemFailures": []}, (runbook, got, worker.tail())
            out[runbook] = [m for q in copies for m in drain(url, q)]
    return out


def _edge_board(planned: Any, stack: str) -> sf.CloudWatchBoard:
    board = stack_facts(stack, planned[stack].plan).board("edge")
    assert board is not None, f"stack {stack} provides no CloudWatch edge dashboard"
    return board


@pytest.mark.parametrize("stack", STACKS)
def test_every_url_the_automation_writes_reaches_a_provided_dashboard_or_page(  # type: ignore[no-untyped-def]
        planned, moto: str, stack: str, tmp_path: Path) -> None:  # noqa: F811
    facts = stack_facts(stack, planned[stack].plan)
    settings = runbook_settings(planned[stack].plan)
    board = _edge_board(planned, stack)
    uids, ids = sf.grafana_uids(DASHBOARDS_DIR / "grafana"), set(load_runbooks())
    published = _messages(moto, settings, tmp_path)
    assert all(published.values()), [rb for rb, m in published.items() if not m]  # each run published something
    urls = [u for messages in published.values() for m in messages for u in sf.urls_in(m)]
    assert urls and board.url in urls  # as planned: the edge board wired in
    assert [p for u in urls if (p := sf.link_problem(u, facts.link_targets(uids, ids)))] == []


def test_the_cold_start_message_links_the_edge_board_of_the_stack(  # type: ignore[no-untyped-def]
        planned, moto: str, tmp_path: Path) -> None:  # noqa: F811
    board = _edge_board(planned, "prod")
    settings = runbook_settings(planned["prod"].plan)  # as the stack plans them: the board wired in
    assert settings["edge_dashboard_url"] == board.url
    text = " ".join(_messages(moto, settings, tmp_path / "wired")["lambda-edge-cold-start"])
    assert board.url in text and "/d/akidb-edge/" not in text
    # Unwired (no dashboards component), it names the page that links the board instead of guessing an address.
    unwired = {k: v for k, v in settings.items() if k != "edge_dashboard_url"}
    text = " ".join(_messages(moto, unwired, tmp_path / "unwired")["lambda-edge-cold-start"])
    assert "console.aws.amazon.com" not in text and "lambda-edge-cold-start" in text
