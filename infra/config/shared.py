"""Settings every component shares: the AWS and Kubernetes providers."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import OIDC_PROVIDER_ARN_PATTERN, ROLE_ARN_PATTERN, setting


@dataclass(frozen=True)
class AwsSettings:
    region: str = setting("us-east-1", doc="home region of the stack (SNS, S3, Lambdas, X-Ray)",
                          format="aws_region")
    assume_role_arn: str | None = setting(None, doc="role the AWS provider assumes (cross-account stacks)",
                                          pattern=ROLE_ARN_PATTERN)
    allowed_account_ids: list[str] = setting(default_factory=list,
                                             doc="accounts the provider may touch (guards against a wrong profile)",
                                             pattern=r"^\d{12}$")


@dataclass(frozen=True)
class KubernetesSettings:
    enabled: bool = setting(True, doc="create Kubernetes objects (collector, rules, dashboards)")
    context: str | None = setting(None, doc="kubeconfig context of the target cluster", format="printable")
    namespace: str = setting("observability", doc="namespace of the observability objects", format="k8s_namespace")
    cluster_version: str = setting("1.30", doc="Kubernetes minor version objects are validated against",
                                   pattern=r"^1\.(2[5-9]|3[0-7])$")  # the schemas kubernetes-validate ships
    oidc_provider_arn: str | None = setting(None, doc="the cluster's IAM OIDC provider (IRSA trust)",
                                            pattern=OIDC_PROVIDER_ARN_PATTERN)
    prometheus_rule_labels: dict[str, str] = setting(
        default_factory=lambda: {"release": "kube-prometheus-stack"},
        doc="labels the Prometheus operator's ruleSelector matches", key_format="k8s_label_key",
        format="k8s_label_value")
