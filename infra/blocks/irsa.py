"""IRSA: IAM roles trusted by exactly one service account of the cluster, no static keys. `irsa_trust_policy`
serves every such role (the collector tiers of xray too); `workload_role` makes one for workloads the stack does
not deploy but must give AWS access to (Grafana, Alertmanager of the kube-prometheus-stack release).

The service account belongs to the Helm release, so the stack does not annotate it; the role's name is fixed
(`akidb-<env>-<key>`), and docs/components/ (dashboards, alerting-path) says which Helm value carries the annotation
(`<component>.serviceAccount.annotations."eks.amazonaws.com/role-arn"`). Until then the workload has no
credentials and its calls fail, which the alarms on its path report (the heartbeat alarm for Alertmanager).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.blocks.context import StackContext
from infra.core import iam
from infra.core.iam import known_after
from infra.core.naming import MAX_IAM_ROLE_NAME


def oidc_issuer(provider_arn: str) -> str:
    """`arn:aws:iam::123:oidc-provider/oidc.eks.../id/X` -> `oidc.eks.../id/X` (the condition key prefix)."""
    return provider_arn.split(":oidc-provider/", 1)[1]


def irsa_trust_policy(provider_arn: str, namespace: str, service_account: str) -> str:
    """Only this one service account of this one cluster may assume the role."""
    issuer = oidc_issuer(provider_arn)
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ServiceAccount",
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": "sts.amazonaws.com",
            }},
        }],
    }, sort_keys=True)


@dataclass(frozen=True)
class WorkloadRole:
    name: str  # physical role name
    arn: pulumi.Output[str]  # built from the name (known at preview), after the role exists
    service_account: str  # namespace/name it trusts


def workload_role(logical: str, ctx: StackContext, *, key: str, service_account: str, setting: str,
                  statements: list[iam.Statement], description: str, parent: pulumi.Resource) -> WorkloadRole:
    """Role `akidb-<env>-<key>` trusted by `<kubernetes.namespace>/<service_account>` with one inline policy.
    `setting` names the config key that asked for it (in the error when the cluster has no OIDC provider)."""
    provider_arn = ctx.config.kubernetes.oidc_provider_arn
    if not provider_arn:
        raise ValueError(f"{setting} needs kubernetes.oidcProviderArn: the role of {service_account} is trusted "
                         "through the cluster's IAM OIDC provider (IRSA), never with static keys")
    namespace = ctx.config.kubernetes.namespace
    child = pulumi.ResourceOptions(parent=parent)
    role_name = ctx.naming.physical(key, max_len=MAX_IAM_ROLE_NAME)
    role = aws.iam.Role(f"{logical}-role", name=role_name, description=description,
                        assume_role_policy=irsa_trust_policy(provider_arn, namespace, service_account),
                        max_session_duration=3600, opts=child)
    aws.iam.RolePolicy(f"{logical}-policy", role=role.name, name=key, policy=iam.document(*statements), opts=child)
    return WorkloadRole(name=role_name, arn=known_after(role, ctx.arns.role(role_name)),
                        service_account=f"{namespace}/{service_account}")
