"""What every component receives: the validated config, names, providers and the account id.

Providers are explicit (never the ambient default) so staging and prod can live in different accounts and
clusters. Each component gets its own AWS provider whose default tags carry the component's name, so every AWS
resource is tagged service/environment/component/owner for cost allocation without repeating tags by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.config import StackConfig
from infra.core.iam import Arns
from infra.core.naming import Naming

REQUIRED_TAGS = ("service", "environment", "component", "owner")


@dataclass(frozen=True)
class LogGroupRef:
    """A log group the program created: the logs component archives every one (infra/components/logs.py)."""

    region: str
    name: str
    resource: pulumi.Resource
    owner: str  # the function (physical name) or the service that writes it


@dataclass
class StackContext:
    config: StackConfig
    _aws: dict[str, aws.Provider] = field(default_factory=dict)
    _k8s: k8s.Provider | None = None
    _account_id: pulumi.Input[str] | None = None
    # The stack's KMS key per region (SeverityTopics makes one per alarm region): topics and log groups use it.
    _regional_keys: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    log_groups: list[LogGroupRef] = field(default_factory=list)

    def register_log_group(self, region: str, name: str, resource: pulumi.Resource, owner: str) -> None:
        self.log_groups.append(LogGroupRef(region, name, resource, owner))

    def register_regional_key(self, region: str, key_arn: pulumi.Input[str]) -> None:
        self._regional_keys[region] = key_arn

    def regional_key(self, region: str) -> pulumi.Input[str]:
        """The KMS key log groups of `region` are encrypted with."""
        if region not in self._regional_keys:
            raise ValueError(f"no stack KMS key in region {region!r} (keys exist in "
                             f"{sorted(self._regional_keys) or 'no region'}: one per alarm region, made by "
                             "SeverityTopics, which the program creates before every other component)")
        return self._regional_keys[region]

    @property
    def naming(self) -> Naming:
        return Naming(self.config.service, self.config.environment)

    @property
    def region(self) -> str:
        return self.config.aws.region

    def tags(self, component: str) -> dict[str, str]:
        return {
            "service": self.config.service,
            "environment": self.config.environment,
            "component": component,
            "owner": self.config.owner,
            "managed-by": "pulumi",
        }

    def aws_provider(self, component: str) -> aws.Provider:
        """The AWS provider of one component (home region; resources pass `region=` for other regions)."""
        if component not in self._aws:
            settings = self.config.aws
            assume = ([aws.ProviderAssumeRoleArgs(role_arn=settings.assume_role_arn,
                                                  session_name=f"{self.naming.prefix}-{component}")]
                      if settings.assume_role_arn else None)
            self._aws[component] = aws.Provider(
                f"aws-{component}",
                region=settings.region,
                assume_roles=assume,
                allowed_account_ids=settings.allowed_account_ids or None,
                default_tags=aws.ProviderDefaultTagsArgs(tags=self.tags(component)),
            )
        return self._aws[component]

    def k8s_provider(self) -> k8s.Provider:
        if self._k8s is None:
            settings = self.config.kubernetes
            self._k8s = k8s.Provider(
                "kubernetes",
                kubeconfig=self.config.secrets.kubeconfig,
                context=settings.context,
                # Objects always name their namespace; never fall back to "default".
                namespace=settings.namespace,
                enable_server_side_apply=True,
            )
        return self._k8s

    @property
    def account_id(self) -> pulumi.Input[str]:
        """The account id as a plain string when the stack allows exactly one account (a deploy into any other
        fails anyway), else read by `aws.get_caller_identity`: an invoke, which a real preview runs too."""
        if self._account_id is None:
            allowed = self.config.aws.allowed_account_ids
            if len(allowed) == 1:
                self._account_id = str(allowed[0])
            else:
                ident = aws.get_caller_identity_output(
                    opts=pulumi.InvokeOutputOptions(provider=self.aws_provider("foundation")))
                self._account_id = ident.account_id
        return self._account_id

    @property
    def arns(self) -> Arns:
        """ARNs built from physical names (known at preview), for policies, alarm actions and settings."""
        return Arns(account=self.account_id, home_region=self.region)

    def component_opts(self, component: str,
                       opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
        """Options for a component: its providers, inherited by every child created with `parent=self`."""
        providers: list[pulumi.ProviderResource] = [self.aws_provider(component)]
        if self.config.kubernetes.enabled:
            providers.append(self.k8s_provider())
        return pulumi.ResourceOptions.merge(pulumi.ResourceOptions(providers=providers), opts)

    def protect(self) -> bool:
        """Whether stateful resources (buckets, keys) are protected from deletion in this stack."""
        return self.config.protect_stateful
