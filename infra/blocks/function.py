"""PythonFunction: a Lambda function from one built package, with its role, policy, log groups and alarms.

The runtime and the architecture come from the package (`LambdaPackage.runtime` / `.architecture`: the Python
and CPU its wheels were fetched for), so a function can never run on arm64 with x86_64 wheels. The role trusts
the given services; its inline policy is the function's own statements plus write access to its own log groups
only. Log groups are created by the program (retention, optional KMS), before the function, so Lambda never
creates one without retention. ARNs are built from names, so the role, the policy and every setting are known at
preview; the function still depends on its role, policy and log groups.

Not a ComponentResource: the resources are children of the calling component, so their URNs are the ones the
component always had (a URN change is a delete and a create in a real deploy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.artifacts.packaging import LambdaPackage
from infra.blocks.alarms import threshold_alarm
from infra.blocks.context import StackContext
from infra.core import iam
from infra.core.naming import MAX_ALARM_NAME

LAMBDA_SERVICE = "lambda.amazonaws.com"


def redaction_environment(ctx: StackContext) -> dict[str, pulumi.Input[str]]:
    """What the stack adds to lambdas/logshape's redaction (its LOG_REDACT_* variables), when it adds anything:
    a function with an environment reads it there (Lambda@Edge has none: emf-edge bakes it)."""
    logs = ctx.config.logs
    out: dict[str, pulumi.Input[str]] = {}
    if logs.redact_fields:
        out["LOG_REDACT_FIELDS"] = json.dumps(logs.redact_fields)
    if logs.redact_patterns:
        out["LOG_REDACT_PATTERNS"] = json.dumps(logs.redact_patterns)
    return out


@dataclass(frozen=True)
class LogicalNames:
    """Pulumi names of the children. `logs` may hold `{region}` (one log group per region)."""

    function: str
    role: str
    policy: str
    logs: str

    @classmethod
    def of(cls, stem: str) -> LogicalNames:
        return cls(function=stem, role=f"{stem}-role", policy=f"{stem}-policy", logs=f"{stem}-logs")


@dataclass(frozen=True)
class HealthAlarms:
    """AWS/Lambda Errors and Throttles alarms (> 0 in one period) to one topic."""

    topic_arn: pulumi.Input[str]
    name_parts: tuple[str, ...]  # physical alarm name: naming.physical(*name_parts, "errors" | "throttles")
    description: str  # may hold `{what}` ("errors" or "throttles")
    period_s: int
    runbook: str  # the id in rules/runbooks.yaml the alarms name


@dataclass(frozen=True)
class S3Code:
    """Code uploaded to S3 (packages above the 50 MB direct-upload limit)."""

    bucket: pulumi.Input[str]
    key: pulumi.Input[str]


@dataclass
class FunctionSpec:
    """What a function is; everything else is derived by the block."""

    name: str  # physical function name
    role_name: str
    package: LambdaPackage
    memory_mb: int
    timeout_s: int
    log_retention_days: int
    statements: Sequence[iam.Statement] = ()  # the function's own permissions (logs are added)
    statements_before_logs: Sequence[iam.Statement] = ()  # kept first in the document (existing policies)
    region: str | None = None  # None: the component provider's region
    handler: str | None = None  # default: the package's handler
    description: str | None = None
    role_description: str | None = None
    trusted_services: tuple[str, ...] = (LAMBDA_SERVICE,)
    environment: dict[str, pulumi.Input[str]] | None = None
    tracing: bool = False
    ephemeral_storage_mb: int | None = None
    reserved_concurrency: int | None = None
    publish: bool = False
    retain: bool = False  # role, policy and function survive a destroy (Lambda@Edge replicas outlive them)
    s3_code: S3Code | None = None
    # Where the function's logs go: (region, log group name); default its own group in its own region.
    log_groups: Sequence[tuple[str | None, str]] | None = None
    log_statement_sid: str = "OwnLogGroup"
    log_kms_key_arn: pulumi.Input[str] | None = None
    alarms: HealthAlarms | None = None
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


class PythonFunction:
    function: aws.lambda_.Function
    role: aws.iam.Role
    name: str
    arn: pulumi.Output[str]  # known at preview (built from the name), depends on the function
    invoke_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    log_group_names: list[str]
    alarm_names: list[str]

    def __init__(self, logical: LogicalNames | str, spec: FunctionSpec, *, parent: pulumi.Resource,
                 ctx: StackContext) -> None:
        names = LogicalNames.of(logical) if isinstance(logical, str) else logical
        pkg = spec.package
        home = spec.region or ctx.region
        arns = ctx.arns
        child = pulumi.ResourceOptions(parent=parent)
        kept = pulumi.ResourceOptions(parent=parent, retain_on_delete=True) if spec.retain else child
        self.name = spec.name

        targets = list(spec.log_groups) if spec.log_groups is not None else [(spec.region,
                                                                              f"/aws/lambda/{spec.name}")]
        log_groups = []
        for region, group_name in targets:
            log_groups.append(aws.cloudwatch.LogGroup(
                names.logs.format(region=region or home), region=region, name=group_name,
                retention_in_days=spec.log_retention_days,
                kms_key_id=(spec.log_kms_key_arn if spec.log_kms_key_arn is not None
                            else ctx.regional_key(region or home)),
                opts=child))
            ctx.register_log_group(region or home, group_name, log_groups[-1], spec.name)
        self.log_group_names = sorted({group_name for _, group_name in targets})

        self.role = aws.iam.Role(
            names.role, name=spec.role_name, assume_role_policy=iam.assume_role_policy(*spec.trusted_services),
            description=spec.role_description, opts=kept)
        logs = iam.lambda_logs_statement(arns, [(region or home, group) for region, group in targets],
                                         sid=spec.log_statement_sid)
        policy = aws.iam.RolePolicy(
            names.policy, role=self.role.name,
            policy=iam.document(*spec.statements_before_logs, logs, *spec.statements), opts=kept)
        self.role_arn = iam.known_after(self.role, arns.role(spec.role_name))

        code: dict[str, pulumi.Input[str] | pulumi.Archive] = (
            {"s3_bucket": spec.s3_code.bucket, "s3_key": spec.s3_code.key} if spec.s3_code is not None
            else {"code": pulumi.FileArchive(str(pkg.path))})
        self.function = aws.lambda_.Function(
            names.function,
            region=spec.region,
            name=spec.name,
            description=spec.description,
            role=self.role_arn,
            runtime=pkg.runtime,
            architectures=[pkg.architecture],
            handler=spec.handler or pkg.handler,
            source_code_hash=pkg.source_code_hash,
            memory_size=spec.memory_mb,
            timeout=spec.timeout_s,
            environment=(aws.lambda_.FunctionEnvironmentArgs(variables={**spec.environment,
                                                                        **redaction_environment(ctx)})
                         if spec.environment is not None else None),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active") if spec.tracing else None,
            ephemeral_storage=(aws.lambda_.FunctionEphemeralStorageArgs(size=spec.ephemeral_storage_mb)
                               if spec.ephemeral_storage_mb is not None else None),
            reserved_concurrent_executions=spec.reserved_concurrency,
            publish=True if spec.publish else None,
            # A retained function must also survive the provider's delete call (Lambda@Edge replicas).
            skip_destroy=True if spec.retain else None,
            opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=spec.retain or None,
                                        depends_on=[policy, *log_groups, *spec.depends_on]),
            **code,
        )
        self.arn = iam.known_after(self.function, arns.function(home, spec.name))
        self.invoke_arn = iam.known_after(self.function, arns.function_invoke(home, spec.name))

        self.alarm_names = []
        if spec.alarms is not None:
            a = spec.alarms
            for metric_name, what in (("Errors", "errors"), ("Throttles", "throttles")):
                alarm_name = ctx.naming.physical(*a.name_parts, what, max_len=MAX_ALARM_NAME)
                threshold_alarm(
                    f"{names.function}-{what}", parent=parent, name=alarm_name,
                    description=a.description.format(what=what), runbook=a.runbook, topic_arn=a.topic_arn,
                    namespace="AWS/Lambda", metric_name=metric_name, dimensions={"FunctionName": spec.name},
                    period_s=a.period_s, statistic="Sum", threshold=0, treat_missing="notBreaching")
                self.alarm_names.append(alarm_name)
