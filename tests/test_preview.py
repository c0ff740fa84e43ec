"""The offline preview: the program as a first `pulumi preview` sees it (no computed outputs)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from infra.config import PROJECT
from infra.core import iam
from infra.core.paths import ROOT
from infra.offline.preview import PreviewResult, computed_by_aws, report, run_preview
from infra.offline.stackfile import read_stack_file, with_overrides
from infra.plan.model import Plan, PlannedResource
from infra.validation.preview import UNKNOWN, known_at_preview, review_critical_unknowns

STACKS = ("staging", "prod")
STATEFUL = ("aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:dynamodb/table:Table")


@pytest.fixture(scope="module")
def previewed() -> dict[str, PreviewResult]:
    return {stack: run_preview(stack, offline_secrets=True) for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_policies_alarm_actions_dashboards_and_lambda_settings_are_known(
        previewed: dict[str, PreviewResult], stack: str) -> None:
    result = previewed[stack]
    assert not result.config_problems
    assert result.managed, "the preview recorded no resources"
    assert result.violations == []
    assert sum(result.critical_counts.values()) == 0, result.critical_counts
    assert result.exit_code == 0


@pytest.mark.parametrize("stack", STACKS)
def test_what_stays_unknown_is_computed_by_aws(previewed: dict[str, PreviewResult], stack: str) -> None:
    result = previewed[stack]
    # The preview does make computed outputs unknown (else this whole check would prove nothing).
    assert result.unknowns
    assert result.fixable_unknowns == {}
    text = report(result)
    assert "NOT computed by AWS" not in text and f"of {len(result.managed)}" in text


@pytest.mark.parametrize("stack", STACKS)
def test_stateful_resources_protected_exactly_where_the_stack_says(
        previewed: dict[str, PreviewResult], stack: str) -> None:
    result = previewed[stack]
    stateful = [r for r in result.managed if r.type in STATEFUL]
    assert stateful
    assert result.config is not None
    protect = result.config.protect_stateful
    for res in stateful:
        assert (res.urn in result.protected) is protect, res.label


def _resource(token: str, logical: str, **inputs: Any) -> PlannedResource:
    return PlannedResource(urn=f"urn:pulumi:s::p::{token}::{logical}", type=token, name=logical, parent=None,
                           region="us-east-1", inputs=inputs, custom=True)


def test_the_check_catches_each_kind_of_unknown(previewed: dict[str, PreviewResult]) -> None:
    bad = [
        _resource("aws:iam/rolePolicy:RolePolicy", "policy", role="r", policy=UNKNOWN),
        _resource("aws:sns/topicPolicy:TopicPolicy", "topic-policy", arn=UNKNOWN, policy="{}"),
        _resource("aws:cloudwatch/metricAlarm:MetricAlarm", "alarm", alarmActions=["arn:x", UNKNOWN]),
        _resource("aws:cloudwatch/dashboard:Dashboard", "board", dashboardBody=UNKNOWN),
        _resource("aws:lambda/function:Function", "fn", role="arn:r",
                  environment={"variables": {"SETTINGS": UNKNOWN}}),
    ]
    fine = [_resource("aws:sns/topic:Topic", "topic", kmsMasterKeyId=UNKNOWN, name="t")]
    config = previewed["staging"].config
    assert config is not None
    plan = Plan(resources=bad + fine, config=config)
    found = {v.resource: v.message for v in known_at_preview(plan)}
    assert set(found) == {r.label for r in bad}
    assert "alarmActions[1]" in found["aws:cloudwatch/metricAlarm:MetricAlarm alarm"]
    assert "environment.variables.SETTINGS" in found["aws:lambda/function:Function fn"]
    assert review_critical_unknowns(fine[0]) == {}
    assert computed_by_aws("aws:sns/topic:Topic", "kmsMasterKeyId") is not None


def test_an_arn_read_from_a_computed_output_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the fix (alarm actions and roles from the resources' computed `arn`): the preview must fail."""
    def computed(resource: pulumi.Resource, value: pulumi.Input[str]) -> pulumi.Output[str]:
        return resource.arn  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(iam, "known_after", computed)
    result = run_preview("staging", offline_secrets=True)
    kinds = {v.message.split(" unknown")[0] for v in result.violations}
    assert {"policy", "alarm action", "lambda setting"} <= kinds, kinds
    assert result.exit_code == 1


def test_known_at_preview_with_the_account_id_from_the_invoke() -> None:
    """Without a single allowed account the id comes from aws.get_caller_identity, which a preview runs too."""
    stack_file = read_stack_file("staging")
    aws_settings = json.loads(stack_file.values[f"{PROJECT}:aws"])
    aws_settings["allowedAccountIds"] = []
    result = run_preview("staging", stack_file=with_overrides(stack_file, {"aws": aws_settings}), offline_secrets=True)
    assert result.config is not None and result.config.aws.allowed_account_ids == []
    assert result.violations == [] and result.fixable_unknowns == {}


def test_the_docs_table_of_first_preview_unknowns_is_current(previewed: dict[str, PreviewResult]) -> None:
    """docs/plan.md shows what `python -m infra.offline.preview` prints per stack: recomputed, not copied."""
    table = {}
    for line in (ROOT / "docs" / "plan.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in STACKS:
            table[cells[0]] = (cells[1], cells[2])
    kinds = ("policy", "alarm action", "dashboard body", "lambda setting")
    for stack in STACKS:
        result = previewed[stack]
        figures = (f"{len(result.unknowns)} of {len(result.managed)}",
                   " / ".join(str(result.critical_counts.get(k, 0)) for k in kinds))
        assert table.get(stack) == figures, (
            f"docs/plan.md, first-preview table, {stack}: {table.get(stack)} but the preview gives {figures}")
