"""IAM policy documents and ARNs as Python data: no invoke, so the offline plan and validation see the exact JSON.

ARNs are built from what is known before anything exists (physical names, partition, region, account id), never
read back from a resource's computed `arn`: a first `pulumi preview` has no computed outputs, and a policy built
from one would show as `output<string>` exactly where a reviewer must read who may do what.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

Statement = dict[str, Any]


def statement(actions: list[str], resources: Sequence[Any] | pulumi.Input[str], *, sid: str | None = None,
              effect: str = "Allow", conditions: dict[str, Any] | None = None,
              principals: dict[str, Any] | None = None) -> Statement:
    stmt: Statement = {"Effect": effect, "Action": sorted(actions)}
    if sid:
        stmt["Sid"] = sid
    if principals is not None:
        stmt["Principal"] = principals
    # One ARN (plain, Output or awaitable) stays as it is; a sequence of ARNs becomes a list.
    if isinstance(resources, Sequence) and not isinstance(resources, str):
        stmt["Resource"] = list(resources)
    else:
        stmt["Resource"] = resources
    if conditions:
        stmt["Condition"] = conditions
    return stmt


def _holds_output(value: Any) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, dict):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_output(v) for v in value)
    return False


def _dump(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)


def json_text(value: Any, *, sort_keys: bool = True) -> pulumi.Input[str]:
    """`value` as JSON text: a plain string when it holds no Output, else an Output that resolves as soon as the
    Outputs it holds do (values built from names: at preview too, unlike a computed ARN)."""
    def dump(v: Any) -> str:
        return json.dumps(v, sort_keys=sort_keys)

    if not _holds_output(value):
        return dump(value)
    return pulumi.Output.from_input(value).apply(dump)


def document(*statements: Statement) -> pulumi.Input[str]:
    """A policy document as JSON text (see `json_text`)."""
    return json_text({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role_policy(*services: str, conditions: dict[str, Any] | None = None) -> pulumi.Input[str]:
    """Trust policy letting AWS services assume a role; `conditions` narrow it against the confused deputy
    (IAM user guide, "The confused deputy problem": aws:SourceAccount, aws:SourceArn, sts:ExternalId)."""
    trust: Statement = {"Effect": "Allow", "Principal": {"Service": sorted(services)}, "Action": "sts:AssumeRole"}
    if conditions:
        trust["Condition"] = conditions
    return json_text({"Version": "2012-10-17", "Statement": [trust]})


def partition_of(region: str) -> str:
    """The ARN partition of a region (aws, aws-cn, aws-us-gov)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def join(*parts: pulumi.Input[str]) -> pulumi.Input[str]:
    """Concatenate: a plain string when every part is one, else an Output."""
    if all(isinstance(p, str) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return pulumi.Output.concat(*parts)


@dataclass(frozen=True)
class Arns:
    """ARNs of resources this program names, built from the names (formats from each service's ARN reference)."""

    account: pulumi.Input[str]
    home_region: str

    def _arn(self, service: str, region: str, resource: str, *, account: bool = True) -> pulumi.Input[str]:
        prefix = f"arn:{partition_of(region or self.home_region)}:{service}:{region}:"
        return join(prefix, self.account, f":{resource}") if account else f"{prefix}:{resource}"

    def root(self) -> pulumi.Input[str]:
        return self._arn("iam", "", "root")

    def role(self, name: str) -> pulumi.Input[str]:
        return self._arn("iam", "", f"role/{name}")

    def bucket(self, name: str) -> str:
        return str(self._arn("s3", "", name, account=False))

    def topic(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("sns", region, name)

    def queue(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("sqs", region, name)

    def queue_url(self, region: str, name: str) -> pulumi.Input[str]:
        return join(f"https://sqs.{region}.amazonaws.com/", self.account, f"/{name}")

    def function(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("lambda", region, f"function:{name}")

    def function_invoke(self, region: str, name: str) -> pulumi.Input[str]:
        """What API Gateway integrations call (`invoke_arn`)."""
        return join(f"arn:{partition_of(region)}:apigateway:{region}:lambda:path/2015-03-31/functions/",
                    self.function(region, name), "/invocations")

    def log_group(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("logs", region, f"log-group:{name}")

    def delivery_stream(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("firehose", region, f"deliverystream/{name}")

    def event_rule(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("events", region, f"rule/{name}")

    def table(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("dynamodb", region, f"table/{name}")

    def secret(self, region: str, name: str) -> pulumi.Input[str]:
        """Every version of a secret: AWS appends a random six-character suffix to its ARN, hence `-??????`."""
        return self._arn("secretsmanager", region, f"secret:{name}-??????")

    def any_key(self, region: str) -> pulumi.Input[str]:
        """Keys of this account in `region`; narrow with `key_alias_condition` (a key ARN holds a random id)."""
        return self._arn("kms", region, "key/*")

    def amp_workspace(self, region: str, workspace_id: str) -> pulumi.Input[str]:
        return self._arn("aps", region, f"workspace/{workspace_id}")

    def autoscaling_group(self, region: str, name: str) -> pulumi.Input[str]:
        return self._arn("autoscaling", region, f"autoScalingGroup:*:autoScalingGroupName/{name}")


def key_alias_condition(*aliases: str) -> dict[str, Any]:
    """Use of a KMS key only when it carries one of these aliases (a key's ARN is computed by AWS)."""
    return {"ForAnyValue:StringEquals": {"kms:ResourceAliases": sorted(aliases)}}


def lambda_logs_statement(arns: Arns, log_group_names: Sequence[tuple[str, str]], *,
                          sid: str = "OwnLogGroup") -> Statement:
    """Logs permissions scoped to the function's log groups, `(region, name)` pairs."""
    return statement(["logs:CreateLogStream", "logs:PutLogEvents"],
                     [join(arns.log_group(region, name), ":*") for region, name in log_group_names], sid=sid)


def known_after(resource: pulumi.Resource, value: pulumi.Input[str]) -> pulumi.Output[str]:
    """`value` (built from names, so known at preview) carrying a dependency on `resource`: a URN is known at
    preview, so this resolves there, and whatever takes it is created after `resource`, as with `resource.arn`."""
    return pulumi.Output.all(resource.urn, value).apply(lambda v: str(v[1]))
