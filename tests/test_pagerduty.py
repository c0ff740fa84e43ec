"""PagerDuty as code (infra/components/pagerduty.py): the switch, the keys' path into Alertmanager, the severity
topics and Secrets Manager, the plan-time rules and the config's errors.

Expected values come from the definitions (surfaces, severities, alarm regions, the stack's config), never from
numbers written here."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from infra.components.pagerduty_surfaces import EVENTS_API_V2, PAGING_SEVERITIES, SURFACES, WEBHOOK_EVENTS
from infra.components.slo_alerting import PAGERDUTY_SNS_URL
from infra.config import PROJECT, ConfigError, parse_stack_config
from infra.offline.mocks import SECRET_SIG_KEY, SECRET_SIG_VALUE, Registration
from infra.offline.plan import PlanResult, run_program
from infra.offline.stackfile import read_stack_file, with_offline_secrets, with_overrides
from infra.plan.model import Plan, PlannedResource
from infra.slo.alertmanager import P1_ROUTING_KEY_FILE, RECEIVER_P0, RECEIVER_P1, ROUTING_KEY_FILE, ROUTING_KEY_SECRET
from infra.validation.pagerduty import (
    INTEGRATION,
    POLICY,
    SERVICE,
    WEBHOOK,
    pagerduty_escalation_policies,
    pagerduty_managed_paths,
    pagerduty_services,
)

# Staging pages nobody by default; switched on, it pages through a schedule of two users.
STAGING_ON = {
    "sloAlerting": {"pagingEnabled": True},
    "pagerduty": {"manage": True, "schedule": {"users": ["PSTAGE01", "PSTAGE02"]}},
}
PROD_OFF = {"pagerduty": {"manage": False}}


def _pagerduty_types(result: PlanResult) -> list[str]:
    return sorted(r.type for r in result.resources if r.type.startswith(("pagerduty:", "pulumi:providers:pagerduty")))


# ------------------------------------------------------------------------------------------------ the switch
def test_checked_in_stacks_staging_off_prod_on(planned: dict[str, PlanResult]) -> None:
    for stack, result in planned.items():
        assert result.config_problems == [] and result.violations == [], stack
        assert result.plan is not None
        manage = result.plan.config.pagerduty.manage
        assert manage is (stack == "prod"), stack
        assert bool(_pagerduty_types(result)) is manage
        # Services hold the incident history: protected exactly where the stack protects stateful resources.
        for service in (r for r in result.resources if r.type == SERVICE):
            assert bool(result.options.get(service.urn, {}).get("protect")) is result.plan.config.protect_stateful


@pytest.mark.parametrize(("stack", "overrides"), [("staging", STAGING_ON), ("prod", PROD_OFF)])
def test_both_stacks_plan_with_the_switch_flipped(run_stack: Any, stack: str, overrides: dict[str, Any]) -> None:
    result = run_stack(stack, overrides=overrides)
    assert result.config_problems == [] and result.violations == [], (result.config_problems, result.violations)
    assert result.plan is not None
    manage = result.plan.config.pagerduty.manage
    types = _pagerduty_types(result)
    if not manage:
        assert types == []
        # Today's path: the keys come from the stack's secrets (stood in offline).
        assert {f"{PROJECT}:pagerdutyRoutingKey", f"{PROJECT}:pagerdutyCloudwatchKey"} <= set(
            read_stack_file_with_stand_ins(stack, overrides).secret_keys)
        return
    services = [r for r in result.resources if r.type == SERVICE]
    assert len(services) == len(SURFACES) * len(PAGING_SEVERITIES)
    assert types.count(INTEGRATION) == len(SURFACES) * len(PAGING_SEVERITIES)
    assert types.count(WEBHOOK) == 1 and types.count(POLICY) == 1
    assert types.count("pulumi:providers:pagerduty") == 1
    # Services hold the incident history: protected exactly where the stack protects its stateful resources.
    protected = {urn for urn, options in result.options.items() if options.get("protect")}
    assert {s.urn in protected for s in services} == {result.plan.config.protect_stateful}
    # Every PagerDuty resource names the stack's provider (the stacks disable default providers).
    assert all(r.provider and not r.provider.startswith("default") for r in result.resources
               if r.custom and r.type.startswith("pagerduty:"))


def read_stack_file_with_stand_ins(stack: str, overrides: dict[str, Any]) -> Any:
    stack_file, _ = with_offline_secrets(with_overrides(read_stack_file(stack), overrides))
    return stack_file


# ------------------------------------------------------------------------------------------- the keys' path
def _unwrap(value: Any) -> tuple[Any, bool]:
    """(plain value, whether it travelled as a Pulumi secret)."""
    if isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE:
        return value.get("value"), True
    return value, False


@pytest.fixture(scope="module")
def prod_run() -> tuple[list[Registration], dict[str, Any]]:
    stack_file, _ = with_offline_secrets(read_stack_file("prod"))
    run = run_program(stack_file)
    return run.monitor.recorded, run.outputs


def _one(recorded: list[Registration], type_: str, name: str) -> Registration:
    found = [r for r in recorded if r.type == type_ and r.name == name]
    assert len(found) == 1, (type_, name, [r.name for r in recorded if r.type == type_])
    return found[0]


def test_events_api_keys_reach_the_alertmanager_secret_as_secrets(
        prod_run: tuple[list[Registration], dict[str, Any]]) -> None:
    recorded, _ = prod_run
    keys = {sev: _one(recorded, INTEGRATION, f"pagerduty-rest-{sev.lower()}-events").outputs["integrationKey"]
            for sev in PAGING_SEVERITIES}
    assert all(keys.values()) and len(set(keys.values())) == len(keys)
    for sev in PAGING_SEVERITIES:
        integration = _one(recorded, INTEGRATION, f"pagerduty-rest-{sev.lower()}-events")
        assert integration.inputs["type"] == EVENTS_API_V2
        # The provider does not mark the key secret: the stack asks the engine to store it encrypted.
        assert integration.options.get("additionalSecretOutputs") == ["integrationKey"]
    secret = _one(recorded, "kubernetes:core/v1:Secret", "slo-alerting-pagerduty-routing-key")
    assert secret.inputs["metadata"]["name"] == ROUTING_KEY_SECRET
    data, is_secret = _unwrap(secret.inputs["stringData"])
    assert is_secret
    assert {k: _unwrap(v)[0] for k, v in data.items()} == {"routing-key": keys["P0"], "routing-key-p1": keys["P1"]}
    # ... and the Alertmanager reads P0's key for P0 pages and P1's for P1 pages.
    config_secret = _one(recorded, "kubernetes:core/v1:Secret", "slo-alerting-alertmanager-config")
    text, _ = _unwrap(config_secret.inputs["stringData"])
    am = yaml.safe_load(_unwrap(text["alertmanager.yaml"])[0])
    files = {r["name"]: r["pagerduty_configs"][0]["routing_key_file"] for r in am["receivers"]
             if r.get("pagerduty_configs")}
    assert files == {RECEIVER_P0: ROUTING_KEY_FILE, RECEIVER_P1: P1_ROUTING_KEY_FILE}
    assert {f.rsplit("/", 1)[1] for f in files.values()} == set(data)


def test_cloudwatch_keys_reach_the_severity_topic_subscriptions_as_secrets(
        prod_run: tuple[list[Registration], dict[str, Any]], planned: dict[str, PlanResult]) -> None:
    recorded, _ = prod_run
    keys = {sev: _one(recorded, INTEGRATION, f"pagerduty-cloudwatch-{sev.lower()}-cloudwatch").outputs["integrationKey"]
            for sev in PAGING_SEVERITIES}
    config = planned["prod"].plan.config  # type: ignore[union-attr]
    for region in config.alarm_regions:
        for sev in PAGING_SEVERITIES:
            # The subscription keeps its name (and so its URN): only the endpoint's source changed.
            sub = _one(recorded, "aws:sns/topicSubscription:TopicSubscription",
                       f"slo-alerting-{region}-{sev.lower()}-pagerduty")
            endpoint, is_secret = _unwrap(sub.inputs["endpoint"])
            assert is_secret, sub.name
            assert endpoint == PAGERDUTY_SNS_URL.format(key=keys[sev])
            assert sub.inputs["protocol"] == "https"


def test_the_webhook_subscription_points_at_the_runbook_api_and_its_secret_reaches_secrets_manager(
        prod_run: tuple[list[Registration], dict[str, Any]]) -> None:
    recorded, outputs = prod_run
    hook = _one(recorded, WEBHOOK, "pagerduty-runbook-webhook")
    assert hook.inputs["deliveryMethods"][0]["url"] == outputs["runbookWebhookUrl"]
    assert set(hook.inputs["events"]) == set(WEBHOOK_EVENTS)
    assert hook.options.get("additionalSecretOutputs") == ["deliveryMethods"]
    issued = hook.outputs["deliveryMethods"][0]["secret"]
    version = _one(recorded, "aws:secretsmanager/secretVersion:SecretVersion",
                   "slo-alerting-runbooks-webhook-secret-value")
    value, is_secret = _unwrap(version.inputs["secretString"])
    assert is_secret and value == issued
    # The secret's path (its name, read by the receiver) is the one a hand-made subscription used.
    secret = _one(recorded, "aws:secretsmanager/secret:Secret", "slo-alerting-runbooks-webhook-secret")
    assert secret.inputs["name"].endswith("pagerduty-webhook-secret")


def test_the_webhook_events_are_the_ones_the_receiver_reads() -> None:
    from runbook_automation.timeline import LIFECYCLE  # lambdas/ is on sys.path (conftest)

    assert tuple(LIFECYCLE) == WEBHOOK_EVENTS


def test_p1_urgency_follows_support_hours_and_p0_is_always_high(planned: dict[str, PlanResult]) -> None:
    result = planned["prod"]
    hours = result.plan.config.pagerduty.support_hours  # type: ignore[union-attr]
    assert hours is not None
    for svc in (r for r in result.resources if r.type == SERVICE):
        rule = svc.inputs["incidentUrgencyRule"]
        if svc.name.endswith("-p0"):
            assert rule == {"type": "constant", "urgency": "high"} and "supportHours" not in svc.inputs
        else:
            assert rule["type"] == "use_support_hours"
            assert rule["duringSupportHours"]["urgency"] == "high"
            assert rule["outsideSupportHours"]["urgency"] == "low"
            assert svc.inputs["supportHours"]["daysOfWeeks"] == hours.days
            assert svc.inputs["supportHours"]["timeZone"] == hours.time_zone
            assert svc.inputs["scheduledActions"] == [{"type": "urgency_change", "toUrgency": "high", "ats": [
                {"type": "named_time", "name": "support_hours_start"}]}]


# ------------------------------------------------------------------------------------------ plan-time rules
def _edited(plan: Plan, type_: str, edit: dict[str, Any]) -> Plan:
    resources = [dataclasses.replace(r, inputs={**r.inputs, **edit}) if r.type == type_ else r
                 for r in plan.resources]
    return dataclasses.replace(plan, resources=resources)


def test_rules_refuse_a_zero_delay_a_service_without_policy_and_bad_support_hours(
        planned: dict[str, PlanResult]) -> None:
    plan = planned["prod"].plan
    assert plan is not None
    assert not list(pagerduty_escalation_policies(plan)) and not list(pagerduty_services(plan))
    policy = plan.of_type(POLICY)[0]
    rules = [{**policy.inputs["rules"][0], "escalationDelayInMinutes": 0}]
    found = list(pagerduty_escalation_policies(_edited(plan, POLICY, {"rules": rules})))
    assert any("at least 1 minute" in v.message for v in found)
    found = list(pagerduty_services(_edited(plan, SERVICE, {"escalationPolicy": ""})))
    assert len(found) == len(plan.of_type(SERVICE)) and "reach nobody" in found[0].message
    found = list(pagerduty_services(_edited(plan, SERVICE, {"escalationPolicy": "PSOMEONEELSE"})))
    assert len(found) == len(plan.of_type(SERVICE)) and "not one this stack creates" in found[0].message
    # Unknown at a first preview (the policy pack's engine plan reads None): not a violation.
    assert not list(pagerduty_services(_edited(plan, SERVICE, {"escalationPolicy": None})))
    bad_hours = {"supportHours": {"type": "fixed_time_per_day", "timeZone": "Mars/Olympus", "daysOfWeeks": [0, 1],
                                  "startTime": "18:00:00", "endTime": "09:00:00"},
                 "incidentUrgencyRule": {"type": "use_support_hours", "duringSupportHours": {"urgency": "high"},
                                         "outsideSupportHours": {"urgency": "low"}}}
    messages = " ".join(v.message for v in pagerduty_services(_edited(plan, SERVICE, bad_hours)))
    assert "time zone" in messages and "daysOfWeeks" in messages and "end after the start" in messages


def test_rules_refuse_keys_missing_from_the_alertmanager_secret_and_pagerduty_when_switched_off(
        planned: dict[str, PlanResult]) -> None:
    plan = planned["prod"].plan
    assert plan is not None and not list(pagerduty_managed_paths(plan))
    found = list(pagerduty_managed_paths(_edited(plan, "kubernetes:core/v1:Secret",
                                                 {"stringData": {"routing-key": "[secret]"}})))
    assert any("routing-key-p1" in v.message for v in found)
    no_secret = dataclasses.replace(plan, resources=[r for r in plan.resources if not (
        r.type == "kubernetes:core/v1:Secret" and r.get("metadata.name") == ROUTING_KEY_SECRET)])
    assert any("never reach the Alertmanager" in v.message for v in pagerduty_managed_paths(no_secret))
    off = dataclasses.replace(plan, config=dataclasses.replace(
        plan.config, pagerduty=dataclasses.replace(plan.config.pagerduty, manage=False)))
    assert len(list(pagerduty_managed_paths(off))) == len([r for r in plan.resources
                                                           if r.custom and r.type.startswith("pagerduty:")])


def test_a_plain_text_webhook_secret_is_refused(planned: dict[str, PlanResult]) -> None:
    plan = planned["prod"].plan
    assert plan is not None
    leaked = _edited(plan, "aws:secretsmanager/secretVersion:SecretVersion", {"secretString": "whsec-plain"})
    assert any("Pulumi secret" in v.message for v in pagerduty_managed_paths(leaked))


# ------------------------------------------------------------------------------------------- config errors
def _problems(stack: str, overrides: dict[str, Any], *, stand_ins: bool = True,
              secrets: dict[str, str] | None = None) -> str:
    stack_file = with_overrides(read_stack_file(stack), overrides, secrets)
    if stand_ins:
        stack_file, _ = with_offline_secrets(stack_file)
    with pytest.raises(ConfigError) as err:
        parse_stack_config(stack_file.values, set(stack_file.secret_keys), stack=stack)
    return str(err.value)


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"pagerduty": {"escalation": [{"delayMinutes": 0, "targets": ["schedule"]}]}},
     f"{PROJECT}:pagerduty.escalation[0].delayMinutes = 0: must be an integer in [1, 10080]"),
    ({"pagerduty": {"schedule": {"users": ["alice@example.com"]}}},
     "pagerduty.schedule.users[0] = \"alice@example.com\": must be a PagerDuty object id"),
    ({"pagerduty": {"team": "platform"}}, "pagerduty.team = \"platform\": must be a PagerDuty object id"),
    ({"pagerduty": {"schedule": {"timeZone": "Mars/Olympus"}}}, "must be an IANA time zone name"),
    ({"pagerduty": {"schedule": {"start": "2026-01-05 09:00"}}}, "must be a date and time with seconds"),
    ({"pagerduty": {"supportHours": {"start": "18:00", "end": "09:00"}}}, "must be after start (18:00)"),
    ({"pagerduty": {"supportHours": {"days": [0, 8]}}}, "pagerduty.supportHours.days[0] = 0"),
    ({"pagerduty": {"escalation": [{"delayMinutes": 5, "targets": ["bob"]}]}}, "pagerduty.escalation[0].targets[0]"),
    ({"pagerduty": {"manage": "yes"}}, "pagerduty.manage = \"yes\": must be true or false"),
])
def test_bad_pagerduty_values_get_clear_errors(overrides: dict[str, Any], expected: str) -> None:
    assert expected in _problems("prod", overrides)


def test_managing_pagerduty_needs_paging_a_schedule_for_schedule_targets_and_the_token() -> None:
    text = _problems("staging", {"pagerduty": {"manage": True}})
    assert "pagerduty.manage = true: needs sloAlerting.pagingEnabled" in text
    assert 'pagerduty.schedule = null: required: an escalation rule targets "schedule"' in text
    text = _problems("prod", {}, stand_ins=False)
    assert f"{PROJECT}:pagerdutyToken = <missing>" in text
    assert "pulumi config set --secret pagerdutyToken -s prod" in text
    # Managed, the keys PagerDuty generates are not asked for.
    assert "pagerdutyRoutingKey" not in text and "pagerdutyWebhookSecret" not in text


def test_the_token_is_never_plain_config() -> None:
    stack_file = with_overrides(read_stack_file("prod"), {"pagerdutyToken": "u+plain-token"})
    stack_file, _ = with_offline_secrets(stack_file)
    secret_keys = set(stack_file.secret_keys) - {f"{PROJECT}:pagerdutyToken"}
    with pytest.raises(ConfigError) as err:
        parse_stack_config(stack_file.values, secret_keys, stack="prod")
    assert "pagerdutyToken = \"<plain text>\": must be a secret" in str(err.value)
    provider_ns = with_overrides(read_stack_file("prod"), {"pagerduty:token": "u+plain-token"})
    with pytest.raises(ConfigError) as err:
        parse_stack_config(provider_ns.values, set(provider_ns.secret_keys), stack="prod")
    assert "pagerduty:token" in str(err.value) and "must be a secret" in str(err.value)


def test_planned_resource_helper_matches_the_plan(planned: dict[str, PlanResult]) -> None:
    """The rules read the wire names the plan records (camelCase): a renamed input would silently pass them."""
    plan = planned["prod"].plan
    assert plan is not None
    svc: PlannedResource = plan.of_type(SERVICE)[0]
    assert {"escalationPolicy", "incidentUrgencyRule", "name"} <= set(svc.inputs)
    policy = plan.of_type(POLICY)[0]
    assert {"escalationDelayInMinutes", "targets"} <= set(policy.inputs["rules"][0])


def test_only_a_secret_endpoint_may_be_unknown_at_a_first_preview(planned: dict[str, PlanResult]) -> None:
    """The CloudWatch key is PagerDuty's pick, so the P0/P1 subscriptions' endpoint is unknown at a first preview;
    a preview shows a secret as [secret] whether known or not. A plain unknown endpoint, or an unknown topic,
    still fails the preview rule."""
    from infra.validation.preview import UNKNOWN, UNKNOWN_SECRET, known_at_preview

    plan = planned["prod"].plan
    assert plan is not None
    subs = [r for r in plan.resources if r.type == "aws:sns/topicSubscription:TopicSubscription"
            and r.name.endswith("-pagerduty")]
    assert subs

    def with_inputs(**edit: Any) -> Plan:
        return dataclasses.replace(plan, resources=[dataclasses.replace(r, inputs={**r.inputs, **edit})
                                                    for r in subs])

    assert not list(known_at_preview(with_inputs(endpoint=UNKNOWN_SECRET)))
    assert len(list(known_at_preview(with_inputs(endpoint=UNKNOWN)))) == len(subs)
    assert len(list(known_at_preview(with_inputs(endpoint=UNKNOWN_SECRET, topic=UNKNOWN_SECRET)))) == len(subs)


def test_a_first_preview_classifies_every_pagerduty_unknown() -> None:
    from infra.offline.preview import run_preview

    result = run_preview("prod", offline_secrets=True)
    assert result.violations == [] and result.fixable_unknowns == {}
    # The PagerDuty side runs in the preview too, its ids (PagerDuty's pick) unknown there and classified as such.
    assert any(r.type == WEBHOOK for r in result.managed)
    assert {label.split(" ")[0] for label in result.unknowns if label.startswith("pagerduty:")} == {
        SERVICE, INTEGRATION, WEBHOOK, POLICY}


def test_amtool_accepts_the_managed_alertmanager_config(planned: dict[str, PlanResult], tmp_path: Any) -> None:
    """The config a managed stack deploys (P1 reading its own key file) is one Alertmanager 0.25 loads."""
    import shutil
    import subprocess

    from infra.blocks.context import StackContext
    from infra.components.slo_alerting import stack_alertmanager_config
    from infra.slo.render import dump

    plan = planned["prod"].plan
    assert plan is not None and plan.config.pagerduty_managed
    amtool = shutil.which("amtool")
    assert amtool, "amtool (Debian prometheus-alertmanager) is needed: make tools"
    account = plan.config.aws.allowed_account_ids[0]
    path = tmp_path / "alertmanager.yml"
    path.write_text(dump(stack_alertmanager_config(StackContext(plan.config), account)))
    proc = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert P1_ROUTING_KEY_FILE in path.read_text()


def test_a_pagerduty_resource_on_a_default_provider_is_refused(planned: dict[str, PlanResult]) -> None:
    from infra.validation.foundation import explicit_providers

    plan = planned["prod"].plan
    assert plan is not None and not list(explicit_providers(plan))
    stray = dataclasses.replace(plan.of_type(SERVICE)[0], provider="default_4_37_0")
    found = list(explicit_providers(dataclasses.replace(plan, resources=[*plan.resources, stray])))
    assert [v.resource for v in found] == [stray.label]


def test_an_imported_subscription_without_a_secret_stops_the_deploy_with_the_fix() -> None:
    from infra.components.pagerduty import _signing_secret

    assert _signing_secret([{"type": "http_delivery_method", "secret": "s3cr3t"}]) == "s3cr3t"
    for methods in ([{"type": "http_delivery_method", "secret": ""}], [], None):
        with pytest.raises(ValueError, match=r"no signing secret.*pulumi up --replace"):
            _signing_secret(methods)
