"""IAM policy documents as Python data: no invoke, so the offline plan and validation see the exact JSON."""

from __future__ import annotations

import json
from typing import Any

import pulumi


def statement(actions: list[str], resources: list[Any] | str, *, sid: str | None = None,
              effect: str = "Allow", conditions: dict[str, Any] | None = None,
              principals: dict[str, Any] | None = None) -> dict[str, Any]:
    stmt: dict[str, Any] = {"Effect": effect, "Action": sorted(actions)}
    if sid:
        stmt["Sid"] = sid
    if principals is not None:
        stmt["Principal"] = principals
    stmt["Resource"] = resources
    if conditions:
        stmt["Condition"] = conditions
    return stmt


def document(*statements: dict[str, Any]) -> pulumi.Output[str]:
    """A policy document whose statements may hold Outputs (ARNs); resolves to JSON text."""
    return pulumi.Output.from_input({"Version": "2012-10-17", "Statement": list(statements)}).apply(
        lambda doc: json.dumps(doc, sort_keys=True))


def assume_role_policy(*services: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": sorted(services)},
            "Action": "sts:AssumeRole",
        }],
    }, sort_keys=True)


def lambda_logs_statement(region: str | pulumi.Output[str], account_id: pulumi.Input[str],
                          function_name: str) -> dict[str, Any]:
    """Logs permissions scoped to one function's log group."""
    arn = pulumi.Output.concat("arn:aws:logs:", region, ":", account_id, ":log-group:/aws/lambda/", function_name)
    return statement(["logs:CreateLogStream", "logs:PutLogEvents"], [pulumi.Output.concat(arn, ":*")],
                     sid="OwnLogGroup")
