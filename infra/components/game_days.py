"""Game days: the plan's chaos tests as AWS FIS experiment templates (staging), started weekly by
.github/workflows/game-day.yml and judged by `python -m infra.tools.game_day_report` (docs/game-days.md).

Each template: a bounded target selection (COUNT(n) or PERCENT(p), never ALL), a duration, stop conditions on the
stack's own user-facing alarms (the edge-outage composite and the synthetic availability probes of the home
Region: when users see an outage the experiment stops, and an experiment cannot start while one is already in
ALARM), its own experiment role allowed only on its targets (tag or ARN scoped), and logs to a KMS-encrypted log
group with retention. Tags on the template say what the pager should see (`expect`, `expected-runbook`); the
weekly report checks them.

Experiments (only those the config enables and the stack can target):
- rest-spot-interruption: `aws:ec2:send-spot-instance-interruptions` on COUNT(n) running spot instances of the
  REST tier's Auto Scaling group (tag aws:autoscaling:groupName).
- anomaly-detector-errors / anomaly-detector-delay: `aws:lambda:invocation-error` / `-add-delay` on the anomaly
  detector (by ARN). They act through the FIS Lambda extension: the function needs the extension layer, its two
  environment variables and read access to the config bucket made here (AWS FIS user guide, "Use the AWS FIS
  aws:lambda:function actions"); docs/game-days.md says what. Without them the experiment injects nothing.
- rest-pod-latency: `aws:eks:pod-network-latency` on PERCENT(p) of the REST pods, through a namespace-scoped
  service account and Role (AWS FIS user guide, "Use the AWS FIS aws:eks:pod actions") and an EKS access entry
  mapping the experiment role to the Role's group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.blocks.bucket import PrivateBucket
from infra.blocks.context import StackContext
from infra.core import iam
from infra.core.iam import known_after, partition_of
from infra.core.naming import MAX_BUCKET_NAME, MAX_IAM_ROLE_NAME

COMPONENT = "game-days"
TOKEN = "akidb:game-days:GameDays"
TEMPLATE_TYPE = "aws:fis/experimentTemplate:ExperimentTemplate"
EXPERIMENT_TAG = "game-day"  # the workflow finds a template by this tag's value (the experiment key)
EXPECT_TAG, RUNBOOK_TAG = "expect", "expected-runbook"
FAULT_DELAY_TAG = "fault-delay-s"  # seconds from the experiment's start to the fault itself (a spot notice)
# Every experiment a stack can have (the workflow's choices): those its config enables are created.
EXPERIMENT_KEYS = ("rest-spot-interruption", "anomaly-detector-errors", "anomaly-detector-delay", "rest-pod-latency")
ASG_TAG = "aws:autoscaling:groupName"
FIS_CONFIG_PREFIX = "FisConfigs"  # where FIS writes the Lambda extension's fault configs
FIS_GROUP = "akidb-fis-experiments"  # Kubernetes group the experiment role is mapped to (EKS access entry)
FIS_SERVICE_ACCOUNT = "akidb-fis"
# FIS log delivery to CloudWatch Logs: these actions have no resource-level permissions (AWS FIS user guide,
# "Experiment logging permissions").
LOG_DELIVERY_ACTIONS = ["logs:CreateLogDelivery", "logs:DescribeLogGroups", "logs:DescribeResourcePolicies",
                        "logs:PutResourcePolicy"]


@dataclass(frozen=True)
class GameDaysArgs:
    """Explicit inputs: the alarms experiments stop on and the function the Lambda faults target."""

    context: StackContext
    stop_alarm_names: Sequence[str]  # home-Region alarms (edge-outage composite, availability probes)
    detector_function_name: str | None = None  # Anomaly.detector_name; None without anomaly
    depends_on: Sequence[pulumi.Resource] = ()  # the components owning those alarms and functions


@dataclass(frozen=True)
class Experiment:
    key: str
    description: str
    statements: list[iam.Statement]
    actions: list[aws.fis.ExperimentTemplateActionArgs]
    targets: list[aws.fis.ExperimentTemplateTargetArgs]
    expect: str
    expected_runbook: str | None
    fault_delay_s: int = 0


def _params(values: Mapping[str, object]) -> list[aws.fis.ExperimentTemplateActionParameterArgs]:
    return [aws.fis.ExperimentTemplateActionParameterArgs(key=k, value=str(v)) for k, v in values.items()]


class GameDays(pulumi.ComponentResource):
    template_keys: list[str]  # experiment keys, in creation order
    skipped: dict[str, str]  # experiment key -> why it is not created (its target's component is off)
    log_group_name: str
    config_bucket: str | None  # the FIS Lambda extension's config bucket (None without Lambda faults)
    role_names: dict[str, str]  # experiment key -> its role's physical name

    def __init__(self, name: str, args: GameDaysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        ctx = args.context
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        cfg = ctx.config.game_days
        region, arns, n = ctx.region, ctx.arns, ctx.naming
        child = pulumi.ResourceOptions(parent=self)
        if not args.stop_alarm_names:
            raise ValueError("game days need at least one stop-condition alarm (edge-outage composite or an "
                             "availability probe in the home Region)")
        self._partition = partition_of(region)
        self.log_group_name = f"/aws/fis/{n.prefix}-game-days"
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", region=region, name=self.log_group_name, retention_in_days=cfg.log_retention_days,
            kms_key_id=ctx.regional_key(region), opts=child)
        ctx.register_log_group(region, self.log_group_name, log_group, "fis")
        log_arn = known_after(log_group, iam.join(arns.log_group(region, self.log_group_name), ":*"))
        stop = [aws.fis.ExperimentTemplateStopConditionArgs(source="aws:cloudwatch:alarm",
                                                            value=self._alarm_arn(ctx, a))
                for a in args.stop_alarm_names]

        experiments: list[Experiment] = []
        self.skipped = {}
        if cfg.spot_interruption.enabled and cfg.spot_interruption.asg_name:
            experiments.append(self._spot(ctx))
        self.config_bucket = None
        if cfg.lambda_faults.enabled and not args.detector_function_name:
            self.skipped.update(dict.fromkeys(("anomaly-detector-errors", "anomaly-detector-delay"),
                                              "anomaly is disabled: no detector to target"))
        if cfg.lambda_faults.enabled and args.detector_function_name:
            bucket = PrivateBucket(f"{name}-lambda-config", parent=self, ctx=ctx, region=region,
                                   name=n.physical("fis-lambda-config", max_len=MAX_BUCKET_NAME),
                                   expiration_days=1)
            self.config_bucket = bucket.name
            experiments += self._lambda(ctx, bucket.arn, args.detector_function_name)
        if cfg.pod_faults.enabled and not ctx.config.kubernetes.enabled:
            self.skipped["rest-pod-latency"] = "kubernetes is disabled: no service account or RBAC for FIS"
        elif cfg.pod_faults.enabled and cfg.pod_faults.cluster_name:
            experiments.append(self._pods(ctx))

        self.template_keys, self.role_names = [], {}
        k8s_access: list[pulumi.Resource] = []
        for exp in experiments:
            role_name = n.physical("fis", exp.key, max_len=MAX_IAM_ROLE_NAME)
            role = aws.iam.Role(
                f"{name}-{exp.key}-role", name=role_name, description=f"FIS experiment role: {exp.description}",
                # Confused deputy: only experiments of this account assume it (AWS FIS user guide).
                assume_role_policy=iam.assume_role_policy(
                    "fis.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": ctx.account_id}}),
                max_session_duration=3600, opts=child)
            policy = aws.iam.RolePolicy(
                f"{name}-{exp.key}-policy", role=role.name, name=f"fis-{exp.key}",
                policy=iam.document(*exp.statements,
                                    iam.statement(LOG_DELIVERY_ACTIONS, "*", sid="ExperimentLogDelivery")),
                opts=child)
            role_arn = known_after(role, arns.role(role_name))
            depends: list[pulumi.Resource] = [policy, log_group, *args.depends_on]
            if exp.key == "rest-pod-latency":
                k8s_access = self._pod_access(name, ctx, role_arn)
                depends += k8s_access
            tags = {EXPERIMENT_TAG: exp.key, EXPECT_TAG: exp.expect, "Name": f"{n.prefix}-{exp.key}"}
            if exp.expected_runbook:
                tags[RUNBOOK_TAG] = exp.expected_runbook
            if exp.fault_delay_s:
                tags[FAULT_DELAY_TAG] = str(exp.fault_delay_s)
            aws.fis.ExperimentTemplate(
                f"{name}-{exp.key}", region=region, description=exp.description, role_arn=role_arn,
                stop_conditions=stop, actions=exp.actions, targets=exp.targets, tags=tags,
                log_configuration=aws.fis.ExperimentTemplateLogConfigurationArgs(
                    log_schema_version=2,
                    cloudwatch_logs_configuration=aws.fis.ExperimentTemplateLogConfigurationCloudwatchLogsConfigurationArgs(
                        log_group_arn=log_arn)),
                # A target that resolves to nothing fails the experiment instead of "completing" without a fault.
                experiment_options=aws.fis.ExperimentTemplateExperimentOptionsArgs(
                    account_targeting="single-account", empty_target_resolution_mode="fail"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends))
            self.template_keys.append(exp.key)
            self.role_names[exp.key] = role_name
        self.register_outputs({"experiments": self.template_keys, "skipped": self.skipped,
                               "logGroup": self.log_group_name,
                               "lambdaConfigBucket": self.config_bucket, "roles": self.role_names})

    def _alarm_arn(self, ctx: StackContext, alarm_name: str) -> pulumi.Input[str]:
        return iam.join(f"arn:{self._partition}:cloudwatch:{ctx.region}:", ctx.account_id, f":alarm:{alarm_name}")

    # ------------------------------------------------------------------------------------------------ spot
    def _spot(self, ctx: StackContext) -> Experiment:
        s = ctx.config.game_days.spot_interruption
        assert s.asg_name is not None
        instances = iam.join(f"arn:{self._partition}:ec2:{ctx.region}:", ctx.account_id, ":instance/*")
        return Experiment(
            key="rest-spot-interruption",
            description=f"Spot interruption of {s.instance_count} REST instance(s) of {s.asg_name}",
            statements=[
                iam.statement(["ec2:SendSpotInstanceInterruptions"], [instances], sid="InterruptRestSpot",
                              conditions={"StringEquals": {f"aws:ResourceTag/{ASG_TAG}": s.asg_name}}),
                # Target resolution (DescribeInstances has no resource-level permissions).
                iam.statement(["ec2:DescribeInstances"], "*", sid="ResolveTargets"),
            ],
            actions=[aws.fis.ExperimentTemplateActionArgs(
                name="interrupt", action_id="aws:ec2:send-spot-instance-interruptions",
                description="two-minute-style notice, then the interruption",
                parameters=_params({"durationBeforeInterruption": f"PT{s.notice_minutes}M"}),
                target=aws.fis.ExperimentTemplateActionTargetArgs(key="SpotInstances", value="rest-spot"))],
            targets=[aws.fis.ExperimentTemplateTargetArgs(
                name="rest-spot", resource_type="aws:ec2:spot-instance", selection_mode=f"COUNT({s.instance_count})",
                resource_tags=[aws.fis.ExperimentTemplateTargetResourceTagArgs(key=ASG_TAG, value=s.asg_name)],
                filters=[aws.fis.ExperimentTemplateTargetFilterArgs(path="State.Name", values=["running"])])],
            expect=s.expect, expected_runbook=s.expected_runbook, fault_delay_s=60 * s.notice_minutes)

    # ---------------------------------------------------------------------------------------------- lambda
    def _lambda(self, ctx: StackContext, bucket_arn: str, function_name: str) -> list[Experiment]:
        s = ctx.config.game_days.lambda_faults
        fn_arn = ctx.arns.function(ctx.region, function_name)
        statements = [
            iam.statement(["s3:DeleteObject", "s3:PutObject"], [f"{bucket_arn}/{FIS_CONFIG_PREFIX}/*"],
                          sid="WriteFaultConfig"),
            iam.statement(["lambda:GetFunction"], [fn_arn], sid="ReadTargetFunction"),
            # Target resolution (tag:GetResources has no resource-level permissions).
            iam.statement(["tag:GetResources"], "*", sid="ResolveTargets"),
        ]

        def fault(key: str, what: str, action_id: str, minutes: int, extra: dict[str, object]) -> Experiment:
            # One function, named: COUNT(1) of exactly this ARN.
            return Experiment(
                key=key, description=f"{s.invocation_percentage}% of {function_name} invocations {what} for "
                                     f"{minutes} min",
                statements=statements, expect=s.expect, expected_runbook=None,
                targets=[aws.fis.ExperimentTemplateTargetArgs(
                    name="detector", resource_type="aws:lambda:function", selection_mode="COUNT(1)",
                    resource_arns=[fn_arn])],
                actions=[aws.fis.ExperimentTemplateActionArgs(
                    name=key.rsplit("-", 1)[1], action_id=action_id,
                    target=aws.fis.ExperimentTemplateActionTargetArgs(key="Functions", value="detector"),
                    parameters=_params({"duration": f"PT{minutes}M",
                                        "invocationPercentage": s.invocation_percentage, **extra}))])

        return [
            fault("anomaly-detector-errors", "fail", "aws:lambda:invocation-error", s.error_duration_minutes,
                  {"preventExecution": "true"}),
            fault("anomaly-detector-delay", f"start {s.delay_ms} ms late", "aws:lambda:invocation-add-delay",
                  s.delay_duration_minutes, {"startupDelayMilliseconds": s.delay_ms}),
        ]

    # ------------------------------------------------------------------------------------------------ pods
    def _pods(self, ctx: StackContext) -> Experiment:
        s = ctx.config.game_days.pod_faults
        assert s.cluster_name is not None
        cluster_arn = iam.join(f"arn:{self._partition}:eks:{ctx.region}:", ctx.account_id,
                               f":cluster/{s.cluster_name}")
        return Experiment(
            key="rest-pod-latency",
            description=f"{s.delay_ms} ms (+-{s.jitter_ms}) network latency on {s.target_percent}% of the REST "
                        f"pods for {s.duration_minutes} min",
            statements=[
                iam.statement(["eks:DescribeCluster"], [cluster_arn], sid="ReachCluster"),
                # Pod network actions read the pods' subnets (no resource-level permissions).
                iam.statement(["ec2:DescribeSubnets"], "*", sid="ResolveTargets"),
            ],
            actions=[aws.fis.ExperimentTemplateActionArgs(
                name="latency", action_id="aws:eks:pod-network-latency",
                target=aws.fis.ExperimentTemplateActionTargetArgs(key="Pods", value="rest-pods"),
                parameters=_params({"duration": f"PT{s.duration_minutes}M", "delayMilliseconds": s.delay_ms,
                                    "jitterMilliseconds": s.jitter_ms, "sources": "0.0.0.0/0",
                                    "kubernetesServiceAccount": FIS_SERVICE_ACCOUNT}))],
            targets=[aws.fis.ExperimentTemplateTargetArgs(
                name="rest-pods", resource_type="aws:eks:pod", selection_mode=f"PERCENT({s.target_percent})",
                parameters={"clusterIdentifier": cluster_arn, "namespace": s.namespace,
                            "selectorType": "labelSelector", "selectorValue": s.label_selector})],
            expect=s.expect, expected_runbook=s.expected_runbook)

    def _pod_access(self, name: str, ctx: StackContext, role_arn: pulumi.Input[str]) -> list[pulumi.Resource]:
        """The experiment role's way into the cluster, confined to the REST namespace: an EKS access entry
        mapping it to FIS_GROUP (no cluster-wide access policy), and a namespaced Role bound to that group and to
        the service account FIS runs its pod under (AWS FIS user guide, "Use the AWS FIS aws:eks:pod actions")."""
        s = ctx.config.game_days.pod_faults
        assert s.cluster_name is not None
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/part-of": "akidb-observability", "app.kubernetes.io/component": COMPONENT}
        entry = aws.eks.AccessEntry(f"{name}-eks-access", region=ctx.region, cluster_name=s.cluster_name,
                                    principal_arn=role_arn, kubernetes_groups=[FIS_GROUP], type="STANDARD",
                                    opts=child)
        meta = {"namespace": s.namespace, "labels": labels}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account", metadata=k8s.meta.v1.ObjectMetaArgs(name=FIS_SERVICE_ACCOUNT, **meta),
            automount_service_account_token=False, opts=child)
        rules = [
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["configmaps"],
                                       verbs=["get", "create", "patch", "delete"]),
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"],
                                       verbs=["create", "list", "get", "delete", "deletecollection"]),
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods/ephemeralcontainers"], verbs=["update"]),
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods/exec"], verbs=["create"]),
            k8s.rbac.v1.PolicyRuleArgs(api_groups=["apps"], resources=["deployments"], verbs=["get"]),
        ]
        role = k8s.rbac.v1.Role(f"{name}-rbac-role",
                                metadata=k8s.meta.v1.ObjectMetaArgs(name=FIS_SERVICE_ACCOUNT, **meta),
                                rules=rules, opts=child)
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-rbac-binding", metadata=k8s.meta.v1.ObjectMetaArgs(name=FIS_SERVICE_ACCOUNT, **meta),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                             name=FIS_SERVICE_ACCOUNT),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=FIS_SERVICE_ACCOUNT,
                                              namespace=s.namespace),
                      k8s.rbac.v1.SubjectArgs(kind="Group", name=FIS_GROUP,
                                              api_group="rbac.authorization.k8s.io")],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role, account]))
        return [entry, account, role, binding]


def stop_alarm_names(region: str, edge_composites: Mapping[str, Mapping[str, str]] | None,
                     probe_alarms: Mapping[str, Sequence[str]] | None) -> list[str]:
    """The home Region's user-facing alarms: the edge-outage composite and the availability probes."""
    names: list[str] = []
    if edge_composites and region in edge_composites:
        names.append(edge_composites[region]["composite"])
    names += [a for a in (probe_alarms or {}).get(region, []) if a.endswith("-availability")]
    return names
