"""The offline preview (`python -m infra.offline.preview --stack S`): the program as a first `pulumi preview`
of a new stack sees it, with no computed outputs.

Mocks answer every resource with its inputs only (`RecordingMocks(preview=True)` under `set_mocks(preview=True)`):
no id, no ARN, nothing AWS computes, so every input built from a computed output arrives unknown, as
`output<T>` in a real preview. Invokes still answer (a real preview runs them). Prints, per resource, the inputs
that are unknown, and fails (exit 1) when one is in a policy document, an alarm action, a dashboard body or a
Lambda function's settings (rule `known_at_preview`, infra/validation/preview.py). Exit 2: invalid stack config.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from infra.config import PROJECT, ConfigError, StackConfig
from infra.offline.plan import collect, prepare_stack_file, run_program
from infra.offline.stackfile import StackFile
from infra.plan.model import Plan, PlannedResource, Violation
from infra.validation.preview import known_at_preview, review_critical_unknowns, unknown_paths

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\..*)?")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_kubernetes(\..*)?")


_KEY_ARN = "the KMS key's ARN, which holds the key id AWS picks"
_API_ID = "the API id AWS picks"
# What may stay unknown at a first preview: values AWS computes when it creates a resource. (type, input path
# without list indexes) -> why. Anything else unknown is named in the report as fixable.
COMPUTED_BY_AWS: dict[tuple[str, str], str] = {
    ("aws:kms/alias:Alias", "targetKeyId"): "the key id AWS picks",
    ("aws:sns/topic:Topic", "kmsMasterKeyId"): _KEY_ARN,
    ("aws:sqs/queue:Queue", "kmsMasterKeyId"): _KEY_ARN,
    ("aws:secretsmanager/secret:Secret", "kmsKeyId"): _KEY_ARN,
    # CloudWatch Logs takes the key's ARN only (no alias ARN: AssociateKmsKey / CreateLogGroup kmsKeyId).
    ("aws:cloudwatch/logGroup:LogGroup", "kmsKeyId"): _KEY_ARN,
    ("aws:dynamodb/table:Table", "serverSideEncryption.kmsKeyArn"): _KEY_ARN,
    # Firehose's server-side encryption takes a key ARN only (DeliveryStreamEncryptionConfigurationInput.KeyARN);
    # its S3 writes and the archive bucket's default name the same key, not an alias that could be re-pointed.
    ("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream", "serverSideEncryption.keyArn"): _KEY_ARN,
    ("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream", "extendedS3Configuration.kmsKeyArn"): _KEY_ARN,
    ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
     "rules.applyServerSideEncryptionByDefault.kmsMasterKeyId"): _KEY_ARN,
    ("aws:secretsmanager/secretVersion:SecretVersion", "secretId"): "the secret's ARN (AWS appends a random suffix)",
    ("aws:apigatewayv2/integration:Integration", "apiId"): _API_ID,
    ("aws:apigatewayv2/route:Route", "apiId"): _API_ID,
    ("aws:apigatewayv2/stage:Stage", "apiId"): _API_ID,
    ("aws:apigatewayv2/route:Route", "target"): "the integration id AWS picks",
    ("aws:lambda/permission:Permission", "sourceArn"): "the API's execution ARN, which holds the API id",
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "dimensions.ApiId"): _API_ID,
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "metricQueries.metric.dimensions.ApiId"): _API_ID,
    ("aws:costexplorer/anomalySubscription:AnomalySubscription", "monitorArnLists"):
        "the cost monitor's ARN, which holds an id AWS picks",
    ("aws:cloudfront/distribution:Distribution", "orderedCacheBehaviors.lambdaFunctionAssociations.lambdaArn"):
        "the function version number Lambda assigns on publish",
}


_PAGERDUTY_ID = "the object id PagerDuty picks"
_KEY = "integration key PagerDuty generates (a secret: a preview shows [secret] either way)"
# The same for what PagerDuty computes (infra/components/pagerduty.py), and what is built from it.
COMPUTED_BY_PAGERDUTY: dict[tuple[str, str], str] = {
    ("pagerduty:index/escalationPolicy:EscalationPolicy", "rules.targets.id"): _PAGERDUTY_ID + " (the schedule)",
    ("pagerduty:index/service:Service", "escalationPolicy"): _PAGERDUTY_ID + " (the escalation policy)",
    ("pagerduty:index/serviceIntegration:ServiceIntegration", "service"): _PAGERDUTY_ID + " (the service)",
    ("pagerduty:index/webhookSubscription:WebhookSubscription", "deliveryMethods.url"):
        "the runbook API's URL, which holds the API id AWS picks",
    ("aws:sns/topicSubscription:TopicSubscription", "endpoint"): "the CloudWatch " + _KEY,
    ("kubernetes:core/v1:Secret", "stringData"): "the Events API v2 " + _KEY,
    ("aws:secretsmanager/secretVersion:SecretVersion", "secretString"):
        "the webhook signing secret PagerDuty issues when it creates the subscription",
}


def computed_by_aws(resource_type: str, path: str) -> str | None:
    """Why `path` of a `resource_type` is truly computed by AWS (or PagerDuty), or None when it could be built
    from names."""
    key = (resource_type, re.sub(r"\[\d+\]", "", path))
    return COMPUTED_BY_AWS.get(key) or COMPUTED_BY_PAGERDUTY.get(key)


@dataclass
class PreviewResult:
    stack: str
    resources: list[PlannedResource] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    config_problems: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)  # URNs registered with protect=True
    config: StackConfig | None = None

    @property
    def managed(self) -> list[PlannedResource]:
        """Resources a provider creates (not components, not providers): what the counts are about."""
        return [r for r in self.resources if r.custom and not r.type.startswith("pulumi:providers:")]

    @property
    def unknowns(self) -> dict[str, list[str]]:
        """Resource label -> its input paths unknown at preview (resources with none are left out)."""
        out = {}
        for res in self.managed:
            paths = unknown_paths(res.inputs)
            if paths:
                out[res.label] = paths
        return out

    @property
    def fixable_unknowns(self) -> dict[str, list[str]]:
        """Unknown inputs that AWS does not compute: each could be built from names (see COMPUTED_BY_AWS)."""
        out = {}
        for res in self.managed:
            paths = [p for p in unknown_paths(res.inputs) if computed_by_aws(res.type, p) is None]
            if paths:
                out[res.label] = paths
        return out

    @property
    def critical_counts(self) -> Counter[str]:
        """Kind (policy, alarm action, dashboard body, lambda setting) -> unknown inputs of that kind."""
        counts: Counter[str] = Counter()
        for res in self.managed:
            for kind, paths in review_critical_unknowns(res).items():
                counts[kind] += len(paths)
        return counts

    @property
    def exit_code(self) -> int:
        if self.config_problems:
            return 2
        return 1 if self.violations else 0


def run_preview(stack: str = "staging", *, config_path: Path | None = None,
                stack_file: StackFile | None = None, offline_secrets: bool = False) -> PreviewResult:
    """Run the program for `stack` as a first preview sees it and check what must be known there.

    `offline_secrets`: stand-ins for the secrets the config needs (as `plan --offline-secrets`)."""
    result = PreviewResult(stack=stack)
    stack_file, _, result.config_problems = prepare_stack_file(stack, config_path, stack_file,
                                                                offline_secrets=offline_secrets)
    if stack_file is None:
        return result
    try:
        run = run_program(stack_file, preview=True)
    except ConfigError as err:
        result.config_problems = [str(p) for p in err.problems]
        return result
    monitor = run.monitor
    result.config = run.config
    result.resources = collect(monitor, stack)
    result.protected = sorted(reg.urn for reg in monitor.recorded if reg.protect)
    result.violations = list(known_at_preview(Plan(resources=result.resources, config=result.config)))
    return result


def report(result: PreviewResult) -> str:
    managed, unknowns = result.managed, result.unknowns
    critical = result.critical_counts
    kinds = ("policy", "alarm action", "dashboard body", "lambda setting")
    lines = [f"Offline preview of stack '{result.stack}' ({PROJECT}): a first `pulumi preview`, no computed outputs",
             "",
             f"Resources with unknown inputs: {len(unknowns)} of {len(managed)}",
             "Unknown review-critical inputs: " + ", ".join(f"{k} {critical.get(k, 0)}" for k in kinds),
             ""]
    types = {r.label: r.type for r in managed}

    def why(label: str, path: str) -> str:
        return computed_by_aws(types[label], path) or "NOT computed by AWS: build it from names"

    if unknowns:
        lines.append("Unknown inputs (shown as output<T> by a first preview), and why:")
        lines += [f"  {label}: {path} ({why(label, path)})"
                  for label, paths in sorted(unknowns.items()) for path in paths]
    if result.violations:
        lines += ["", f"{len(result.violations)} violation(s):", *[f"  {v}" for v in result.violations]]
    else:
        lines += ["", "Policies, alarm actions, dashboard bodies and Lambda settings: all known at preview."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Offline first-preview run: which inputs are unknown.")
    parser.add_argument("--stack", default="staging", help="stack name (Pulumi.<stack>.yaml), default staging")
    parser.add_argument("--config", type=Path, help="use this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--offline-secrets", action="store_true",
                        help="stand in for the secrets the config needs (offline only)")
    args = parser.parse_args(argv)
    result = run_preview(args.stack, config_path=args.config, offline_secrets=args.offline_secrets)
    if result.config_problems:
        print(f"Invalid stack config for '{args.stack}' ({len(result.config_problems)} problem(s)):",
              file=sys.stderr)
        for line in result.config_problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    print(report(result))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
