"""Stack config: defaults, ranges, cross-field rules, unknown keys, secrets; checked before any resource."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from infra.config import PROJECT, SECRET_KEYS, ConfigError, StackConfig, camel, parse_stack_config
from infra.config.coverage import PRICE_CLASS_REGIONS
from infra.config.formats import AWS_REGIONS, interval_s, parse_schedule
from infra.config.reference import reference_rows
from infra.config.rules import DETECTOR_ALARM_PERIOD_S, required_secrets
from infra.core.paths import ROOT
from infra.offline.plan import main as plan_main
from infra.offline.plan import run_plan, summary
from infra.offline.stackfile import (
    STAND_IN_PREFIX,
    StackFileError,
    read_stack_file,
    with_offline_secrets,
    with_overrides,
)

STACKS = ("staging", "prod")


def parse(stack: str = "staging", overrides=None, secrets=None, remove=(), offline_secrets: bool = True):
    """Parse a checked-in stack (edited); the secrets it needs are stood in explicitly, as the plan's switch does."""
    sf = with_overrides(read_stack_file(stack), overrides or {}, secrets)
    if offline_secrets:
        sf, _ = with_offline_secrets(sf)
    sf = with_overrides(sf, {}, remove=remove)
    return parse_stack_config(sf.values, set(sf.secret_keys), stack=stack)


def problems(**kw) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(**kw)
    return [str(p) for p in err.value.problems]


def edited_file(tmp_path: Path, stack: str, edit) -> Path:
    """The checked-in stack file's text, edited, written where read_stack_file can read it."""
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(edit((ROOT / f"Pulumi.{stack}.yaml").read_text()), encoding="utf-8")
    return path


def file_problems(path: Path, stack: str = "prod") -> list[str]:
    sf, _ = with_offline_secrets(read_stack_file(stack, path))
    with pytest.raises(ConfigError) as err:
        parse_stack_config(sf.values, set(sf.secret_keys), stack=stack)
    return [str(p) for p in err.value.problems]


def nested(path: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} from "a.b"."""
    head, *rest = path.split(".")
    return {head: nested(".".join(rest), value) if rest else value}


@pytest.mark.parametrize("stack", STACKS)
def test_checked_in_stacks_are_valid(stack):
    cfg = parse(stack)
    assert cfg.environment == stack


def test_staging_and_prod_differ_where_sres_expect():
    staging, prod = parse("staging"), parse("prod")
    assert staging.xray.sampling_fraction > prod.xray.sampling_fraction
    assert not staging.slo_alerting.paging_enabled and prod.slo_alerting.paging_enabled
    assert staging.slo_alerting.runbooks.dry_run and not prod.slo_alerting.runbooks.dry_run
    assert staging.emf_edge.log_retention_days < prod.emf_edge.log_retention_days
    assert not staging.protect_stateful and prod.protect_stateful
    assert staging.aws.assume_role_arn != prod.aws.assume_role_arn


def test_unknown_top_level_key_is_named_with_a_suggestion():
    msgs = problems(overrides={"xrya": {"enabled": True}})
    assert any(m.startswith(f"{PROJECT}:xrya ") and "did you mean 'xray'" in m for m in msgs), msgs


def test_unknown_nested_key_is_named():
    msgs = problems(overrides={"xray": {"samplingFracton": 0.2}})
    assert any(f"{PROJECT}:xray.samplingFracton" in m and "did you mean 'samplingFraction'" in m for m in msgs)


@pytest.mark.parametrize(("old", "new"), [(("dashboards", "synthetics"), "synthetics"),
                                        (("dashboards", "alertingPath"), "alertingPath"),
                                        (("dashboards", "cost"), "costWatch"),
                                        (("costWatch", "budgetEnabled"), "costWatch.enabled")])
def test_a_moved_key_is_an_error_naming_its_new_place(old: tuple[str, str], new: str) -> None:
    section, key = old
    msgs = problems(overrides={section: {key: {"enabled": True} if section == "dashboards" else False}})
    assert any(m.startswith(f"{PROJECT}:{section}.{key} ") and f"moved: set it as {PROJECT}:{new}" in m
               for m in msgs), msgs


def test_out_of_range_value_names_key_value_and_range():
    msgs = problems(overrides={"xray": {"samplingFraction": 1.5}})
    assert msgs == [f'{PROJECT}:xray.samplingFraction = 1.5: must be a number in (0.0, 1.0]']


def test_every_problem_is_reported_at_once():
    msgs = problems(overrides={"xray": {"samplingFraction": 0, "gatewayReplicas": 1},
                               "emfEdge": {"memoryMb": 64, "logRetentionDays": 8}})
    keys = {m.split(" = ")[0] for m in msgs}
    assert keys == {f"{PROJECT}:xray.samplingFraction", f"{PROJECT}:xray.gatewayReplicas",
                    f"{PROJECT}:emfEdge.memoryMb", f"{PROJECT}:emfEdge.logRetentionDays"}


def test_wrong_types_are_rejected_not_coerced():
    msgs = problems(overrides={"xray": {"gatewayReplicas": "3", "enabled": "yes"}})
    assert len(msgs) == 2 and all("must be" in m for m in msgs)


def test_alarm_window_at_most_one_day():
    msgs = problems(overrides={"emfEdge": {"alarms": {"periodS": 60, "evaluationPeriods": 1441,
                                                      "datapointsToAlarm": 2}}})
    assert any("evaluationPeriods" in m for m in msgs)


def test_at_least_one_edge_region():
    msgs = problems(overrides={"emfEdge": {"edgeRegions": []}})
    assert any("emfEdge.edgeRegions" in m and "at least 1" in m for m in msgs)


@pytest.mark.parametrize("image", ["public.ecr.aws/aws-observability/aws-otel-collector:latest",
                                   "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"])
def test_image_must_be_pinned_by_digest(image):
    msgs = problems(overrides={"xray": {"collectorImage": image}})
    assert any("xray.collectorImage" in m for m in msgs)


def test_prod_must_protect_stateful_resources():
    msgs = problems(stack="prod", overrides={"protectStateful": False})
    assert any("protectStateful" in m for m in msgs)


def test_reference_rows_cover_every_section():
    keys = [row[0] for row in reference_rows()]
    for prefix in ("xray.", "emfEdge.", "anomaly.", "sloAlerting.", "dashboards.", "aws.", "kubernetes."):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert "pagerdutyRoutingKey" in keys


def test_the_config_reference_page_is_current_and_lists_every_key():
    from infra.config.reference import PAGE, reference_rows, render_page

    text = (ROOT / PAGE).read_text()
    assert render_page() == text, f"{PAGE} is stale: run `make generate`"
    assert all(f"| `{key}` |" in text for key, *_ in reference_rows())


# ------------------------------------------------------------------ namespaces: a typo never drops a section
@pytest.mark.parametrize("section", ["sloAlerting", "emfEdge", "xray"])
@pytest.mark.parametrize("namespace", ["akidb-observabilty", "akidb"])
def test_a_typo_in_the_project_prefix_is_an_error_naming_key_and_closest(tmp_path, section, namespace):
    path = edited_file(tmp_path, "prod", lambda t: t.replace(f"  {PROJECT}:{section}:", f"  {namespace}:{section}:"))
    msgs = file_problems(path)
    assert any(m.startswith(f"{namespace}:{section} ") and f"did you mean '{PROJECT}:{section}'" in m
               for m in msgs), msgs


def test_provider_and_engine_namespaces_are_not_the_programs():
    sf = read_stack_file("prod")
    assert json.loads(sf.values["pulumi:disable-default-providers"]) == ["*"]
    assert sf.values["aws:region"]
    parse("prod")  # accepted


@pytest.mark.parametrize("stack", STACKS)
def test_both_stacks_disable_default_providers(stack):
    assert json.loads(read_stack_file(stack).values["pulumi:disable-default-providers"]) == ["*"]


def test_disable_default_providers_must_be_a_list_of_names():
    sf, _ = with_offline_secrets(read_stack_file("staging"))
    values = {**sf.values, "pulumi:disable-default-providers": "*"}
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values, set(sf.secret_keys))
    assert [p.key for p in err.value.problems] == ["pulumi:disable-default-providers"]


def test_duplicate_yaml_key_is_rejected_with_key_and_line(tmp_path):
    owner = f"  {PROJECT}:owner: sre-platform\n"
    path = edited_file(tmp_path, "prod", lambda t: t.replace(owner, owner + f"  {PROJECT}:owner: someone-else\n"))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "someone-else" in text)
    with pytest.raises(StackFileError, match=rf"duplicate key '{PROJECT}:owner'.*line {line}") as err:
        read_stack_file("prod", path)
    assert "first on line" in str(err.value)


def test_duplicate_nested_key_is_rejected(tmp_path):
    path = edited_file(tmp_path, "staging", lambda t: t.replace("    gatewayReplicas: 2\n",
                                                               "    gatewayReplicas: 2\n    gatewayReplicas: 5\n"))
    with pytest.raises(StackFileError, match="duplicate key 'gatewayReplicas'"):
        read_stack_file("staging", path)


# ------------------------------------------------------------------ NaN / Inf: rejected everywhere, by key
def _numeric_fields(cls: Any, prefix: str = "") -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp, key = hints[f.name], f"{prefix}{camel(f.name)}"
        if dataclasses.is_dataclass(tp):
            out += _numeric_fields(tp, key + ".")
        elif tp in (int, float):
            out.append((key, tp))
    return out


NUMERIC_FIELDS = _numeric_fields(StackConfig)


def test_every_numeric_field_is_covered():
    assert {"xray.gatewayReplicas", "xray.samplingFraction", "emfEdge.alarms.errorCount",
            "emfEdge.alarms.cacheHitRateMin", "anomaly.confidenceThreshold"} <= {k for k, _ in NUMERIC_FIELDS}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinity_are_rejected_in_every_numeric_field_naming_it(bad):
    for key, _ in NUMERIC_FIELDS:
        msgs = problems(stack="prod", overrides=nested(key, bad))
        assert any(m.startswith(f"{PROJECT}:{key} = ") for m in msgs), (key, msgs)


@pytest.mark.parametrize("section,key", [("xray.samplingRules", "fixedRate"), ("anomaly.metrics", "mapeLimit")])
def test_nan_is_rejected_in_list_items(section, key):
    cfg = dataclasses.asdict(parse("staging"))
    head, name = section.split(".")
    items = [{camel(k): v for k, v in item.items()} for item in cfg[{"xray": "xray", "anomaly": "anomaly"}[head]][
        {"samplingRules": "sampling_rules", "metrics": "metrics"}[name]]]
    items[0][key] = math.nan
    msgs = problems(overrides={head: {name: items}})
    assert any(m.startswith(f"{PROJECT}:{section}[0].{key} = ") for m in msgs), msgs


def test_nan_in_an_integer_field_of_the_yaml_file_is_named_not_a_crash(tmp_path):
    path = edited_file(tmp_path, "prod", lambda t: t.replace("gatewayReplicas: 3", "gatewayReplicas: .nan"))
    msgs = file_problems(path)
    assert [m.split(" = ")[0] for m in msgs] == [f"{PROJECT}:xray.gatewayReplicas"]


# ------------------------------------------------------------------ patterns: whole string, ASCII
@pytest.mark.parametrize("override,key", [
    ({"owner": "sre\n"}, "owner"),
    ({"service": "akidb\n"}, "service"),
    ({"aws": {"assumeRoleArn": "arn:aws:iam::111111111111:role/deployer\n"}}, "aws.assumeRoleArn"),
    ({"kubernetes": {"oidcProviderArn": "arn:aws:iam::111111111111:oidc-provider/oidc.eks.x/id/AB\n"}},
     "kubernetes.oidcProviderArn"),
    ({"xray": {"collectorImage": "public.ecr.aws/aws-observability/aws-otel-collector@sha256:" + "0" * 64 + "\n"}},
     "xray.collectorImage"),
    ({"emfEdge": {"functionName": "edge-inference\n"}}, "emfEdge.functionName"),
    ({"aws": {"allowedAccountIds": ["\u0661" * 12]}}, "aws.allowedAccountIds[0]"),
    ({"aws": {"region": "us-west-3"}}, "aws.region"),
    ({"emfEdge": {"edgeRegions": ["us-east-1", "eu-west-9"]}}, "emfEdge.edgeRegions[1]"),
])
def test_patterns_match_the_whole_ascii_string(override, key):
    msgs = problems(overrides=override)
    assert any(m.startswith(f"{PROJECT}:{key} = ") for m in msgs), msgs


def test_regions_are_the_commercial_partitions_real_list():
    botocore = pytest.importorskip("botocore")  # a dev dependency (boto3); not optional in practice
    data = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    aws = next(p for p in data["partitions"] if p["partition"] == "aws")
    assert set(AWS_REGIONS) == set(aws["regions"])


@pytest.mark.parametrize("owner", ['"123"', '"true"', "'007'"])
def test_quoted_owner_is_a_string(tmp_path, owner):
    path = edited_file(tmp_path, "staging", lambda t: t.replace("owner: sre-platform", f"owner: {owner}"))
    sf, _ = with_offline_secrets(read_stack_file("staging", path))
    cfg = parse_stack_config(sf.values, set(sf.secret_keys))
    assert cfg.owner == owner.strip("\"'")


# ------------------------------------------------------------------ what the Lambdas and services reject
ANOMALY_METRIC = {"name": "request_rate", "source": "prometheus", "query": "sum(rate(x[5m]))"}


@pytest.mark.parametrize("override,key", [
    ({"anomaly": {"metrics": [{**ANOMALY_METRIC, "query": ""}]}}, "anomaly.metrics[0].query"),
    ({"anomaly": {"metrics": [{**ANOMALY_METRIC, "query": "   "}]}}, "anomaly.metrics[0].query"),
    ({"anomaly": {"prometheusUrl": "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1\n"}},
     "anomaly.prometheusUrl"),
    ({"anomaly": {"prometheusUrl": "https://aps workspaces.amazonaws.com/"}}, "anomaly.prometheusUrl"),
    ({"anomaly": {"prometheusUrl": "https://host:99999/"}}, "anomaly.prometheusUrl"),
    ({"sloAlerting": {"ticketWebhookUrl": "http://tickets.akidb.internal/x"}}, "sloAlerting.ticketWebhookUrl"),
    ({"xray": {"samplingRules": [{"serviceName": "", "fixedRate": 1.0}]}}, "xray.samplingRules[0].serviceName"),
    ({"xray": {"samplingRules": [{"serviceName": "s" * 65, "fixedRate": 1.0}]}}, "xray.samplingRules[0].serviceName"),
    ({"kubernetes": {"namespace": "n" * 64}}, "kubernetes.namespace"),
    ({"kubernetes": {"namespace": "Observability"}}, "kubernetes.namespace"),
    ({"kubernetes": {"prometheusRuleLabels": {"bad key!": "x"}}}, "kubernetes.prometheusRuleLabels.bad key!"),
    ({"kubernetes": {"prometheusRuleLabels": {"release": "-bad-"}}}, "kubernetes.prometheusRuleLabels.release"),
    ({"kubernetes": {"prometheusRuleLabels": {"release": "v" * 64}}}, "kubernetes.prometheusRuleLabels.release"),
    ({"dashboards": {"grafanaDashboardLabel": "x" * 64}}, "dashboards.grafanaDashboardLabel"),
    ({"sloAlerting": {"alertmanagerSecretName": "Alertmanager_AkiDB"}}, "sloAlerting.alertmanagerSecretName"),
    ({"emfEdge": {"modelName": ""}}, "emfEdge.modelName"),
    ({"emfEdge": {"modelName": "m" * 1025}}, "emfEdge.modelName"),
    ({"emfEdge": {"modelName": "modèle"}}, "emfEdge.modelName"),
    ({"emfEdge": {"originDomain": "not a domain!"}}, "emfEdge.originDomain"),
    ({"emfEdge": {"originDomain": "localhost"}}, "emfEdge.originDomain"),
    ({"kubernetes": {"context": "akidb-staging\n"}}, "kubernetes.context"),
])
def test_values_the_services_or_lambdas_reject_are_rejected_at_plan_time(override, key):
    msgs = problems(overrides=override)
    assert any(m.startswith(f"{PROJECT}:{key} = ") for m in msgs), msgs


@pytest.mark.parametrize("override", [
    {"xray": {"samplingRules": [{"serviceName": "s" * 64, "fixedRate": 1.0}]}},
    {"kubernetes": {"namespace": "n" * 63}},
    {"kubernetes": {"prometheusRuleLabels": {"app.kubernetes.io/part-of": "kube-prometheus-stack", "x": ""}}},
    {"emfEdge": {"modelName": "m" * 1024}},
    {"emfEdge": {"originDomain": "api.akidb.example.com", "createDistribution": True,
                 "edgeRegions": list(PRICE_CLASS_REGIONS["PriceClass_All"])}},
    {"anomaly": {"prometheusUrl": "http://10.0.0.5:9090/"}},
])
def test_values_at_the_limits_are_accepted(override):
    parse(overrides=override)


@pytest.mark.parametrize("period", [10, 20, 30, 45, 90])
def test_sub_minute_periods_need_high_resolution_metrics_the_edge_does_not_emit(period):
    from lambdas.edge_inference import emf

    doc = emf.document("AkiDB/Edge", 0, emf.dimension_values("us-east-1", "m"), {})
    assert all("StorageResolution" not in m for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"])
    msgs = problems(overrides={"emfEdge": {"alarms": {"periodS": period}}})
    assert any("emfEdge.alarms.periodS" in m for m in msgs), msgs


# ------------------------------------------------------------------ schedules, parsed for real
@pytest.mark.parametrize("expr", [
    "cron(99 99 99 99 99 99)", "rate(0 minutes)", "rate(5 minute)", "rate(1 minutes)", "rate(1 days)",
    "cron(0 3 * * SUN *)", "cron(0 3 ? * ? *)", "cron(0 3 ? * SUN)", "cron(0  3 ? * SUN *)", "cron(60 3 ? * SUN *)",
    "cron(0 24 ? * SUN *)", "cron(0 3 32 * ? *)", "cron(0 3 ? 13 * *)", "cron(0 3 ? * 8 *)", "cron(0 3 ? * SUN 1969)",
    "cron(0 3 ? * 3#1,6#3 *)", "cron(0 3 ? * SUN/2 *)", "cron(5-1 3 ? * SUN *)", "cron(0/0 3 ? * SUN *)",
    "rate(5 minutes)\n", "cron(0 3 ? * SUN *) ",
])
def test_invalid_schedules_are_rejected(expr):
    msgs = problems(overrides={"anomaly": {"trainSchedule": expr}})
    assert any(m.startswith(f"{PROJECT}:anomaly.trainSchedule = ") for m in msgs), msgs


@pytest.mark.parametrize("expr", [
    "cron(0 3 ? * SUN *)", "rate(1 day)", "rate(7 days)", "rate(1 hour)", "cron(0/15 * * * ? *)",
    "cron(0 18 ? * MON-FRI *)", "cron(0 8 1 * ? *)", "cron(0 10 ? * 3#2 *)", "cron(15 10 ? * 6L 2022-2030)",
    "cron(0 12 L * ? *)", "cron(0 12 15W * ? *)", "cron(0 3 ? JAN,JUL SUN *)",
])
def test_valid_schedules_are_accepted(expr):
    """EventBridge takes each; a monthly or rarer trainer is refused only for outliving its forecasts."""
    try:
        parse(overrides={"anomaly": {"trainSchedule": expr}})
    except ConfigError as err:
        assert all("forecastMaxAgeHours" in str(p) for p in err.problems), err


@pytest.mark.parametrize("expr", ["rate(1 hour)", "rate(10 minutes)", "cron(0/10 * * * ? *)", "cron(0 3 ? * SUN *)",
                                  "cron(0/5 8-17 ? * MON-FRI *)", "rate(1 minute)", "cron(0,5,10 * * * ? *)"])
def test_detect_schedule_must_fit_the_detector_errors_alarm(expr):
    msgs = problems(overrides={"anomaly": {"detectSchedule": expr}})
    assert any(m.startswith(f"{PROJECT}:anomaly.detectSchedule = ") and "5 minutes" in m for m in msgs), msgs


@pytest.mark.parametrize("expr", ["rate(5 minutes)", "cron(0/5 * * * ? *)", "cron(*/5 * * * ? *)",
                                  "cron(2/5 * ? * * *)"])
def test_detect_schedules_with_one_run_per_alarm_period_are_accepted(expr):
    assert interval_s(parse_schedule(expr)) == DETECTOR_ALARM_PERIOD_S
    parse(overrides={"anomaly": {"detectSchedule": expr}})


def test_detector_alarm_period_is_what_the_component_builds(planned):
    from lambdas.anomaly_core import metrics

    alarms = [r for r in planned["staging"].plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
              if r.inputs.get("metricName") == metrics.DETECTOR_ERRORS]
    assert alarms and {a.inputs["period"] for a in alarms} == {DETECTOR_ALARM_PERIOD_S}
    assert {a.inputs["treatMissingData"] for a in alarms} == {"breaching"}


# ------------------------------------------------------------------ secrets: none in the files, named when missing
@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_hold_no_secure_placeholder(stack):
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert not re.search(r"^\s*secure:", text, re.M)
    assert read_stack_file(stack).secret_keys == []


@pytest.mark.parametrize("stack", STACKS)
def test_a_missing_secret_names_the_command_to_run(stack):
    cfg = parse(stack)
    needed = required_secrets(cfg)
    assert needed, "both stacks need at least the webhook secret"
    msgs = problems(stack=stack, offline_secrets=False)
    for key in needed:
        assert any(m.startswith(f"{PROJECT}:{key} = <missing>")
                   and m.endswith(f"pulumi config set --secret {key} -s {stack}") for m in msgs), msgs
    assert len(msgs) == len(needed)


# Prod manages its PagerDuty side (the keys come from PagerDuty); these are the stacks that do not.
UNMANAGED = {"pagerduty": {"manage": False}}


def test_paging_requires_the_routing_key():
    msgs = problems(stack="prod", overrides=UNMANAGED, remove=("pagerdutyRoutingKey",))
    assert any("pagerdutyRoutingKey = <missing>" in m for m in msgs)


def test_secret_given_in_plain_text_is_refused():
    sf, _ = with_offline_secrets(with_overrides(read_stack_file("prod"), UNMANAGED))
    keys = [k for k in sf.secret_keys if not k.endswith("pagerdutyRoutingKey")]
    with pytest.raises(ConfigError) as err:
        parse_stack_config(sf.values, set(keys), stack="prod")
    assert any("pagerdutyRoutingKey" in str(p) and "pulumi config set --secret pagerdutyRoutingKey -s prod" in str(p)
               for p in err.value.problems)


def test_a_secure_value_that_is_not_ciphertext_is_refused_like_the_cli(tmp_path):
    path = edited_file(tmp_path, "prod", lambda t: t + f"  {PROJECT}:pagerdutyRoutingKey:\n    secure: v1:REPLACE-ME\n")
    with pytest.raises(StackFileError, match=r"pagerdutyRoutingKey.*not ciphertext.*pulumi config set --secret "
                                             r"pagerdutyRoutingKey -s prod"):
        read_stack_file("prod", path)


def test_ciphertext_is_only_stood_in_through_the_switch(tmp_path):
    cipher = "v1:c2FsdHNhbHQ=:ZW5jcnlwdGVkZW5jcnlwdGVk"
    path = edited_file(tmp_path, "staging",
                       lambda t: t + f"  {PROJECT}:pagerdutyWebhookSecret:\n    secure: {cipher}\n")
    sf = read_stack_file("staging", path)
    assert sf.encrypted == [f"{PROJECT}:pagerdutyWebhookSecret"]
    result = run_plan("staging", stack_file=sf, quiet=True, write=False)
    assert result.plan is None and any("--offline-secrets" in p for p in result.config_problems)
    stood, keys = with_offline_secrets(sf)
    assert keys == [f"{PROJECT}:pagerdutyWebhookSecret"]
    assert stood.placeholders == [STAND_IN_PREFIX + "pagerdutyWebhookSecret"]


def test_the_harness_stands_in_exactly_the_required_secrets(planned):
    for result in planned.values():
        expected = sorted(f"{PROJECT}:{k}" for k in required_secrets(result.plan.config))
        assert result.stood_in == expected
        assert set(expected) <= {f"{PROJECT}:{k}" for k in SECRET_KEYS}
        assert "Stand-in secrets (--offline-secrets" in summary(result) and all(k in summary(result) for k in expected)


def test_plan_without_the_switch_stops_with_the_command(capsys):
    assert plan_main(["--stack", "prod"]) == 2
    err = capsys.readouterr().err
    assert "pulumi config set --secret pagerdutyToken -s prod" in err


def test_make_plan_passes_the_offline_switch():
    makefile = (ROOT / "Makefile").read_text()
    plan_recipe = makefile.split("\nplan: ", 1)[1].split("\n\n", 1)[0]
    assert "-m infra.offline.job --stack $(STACK) --offline-secrets" in plan_recipe


# ------------------------------------------------------------------ the command line: exit 2 naming the key
@pytest.mark.parametrize("edit,key", [
    (lambda t: t.replace("samplingFraction: 0.25", "samplingFraction: 2"), "samplingFraction"),
    (lambda t: t.replace(f"{PROJECT}:sloAlerting:", "akidb-observabilty:sloAlerting:"), "akidb-observabilty"),
    (lambda t: t.replace("gatewayReplicas: 2", "gatewayReplicas: .nan"), "gatewayReplicas"),
    (lambda t: t.replace("gatewayReplicas: 2", "gatewayReplicas: 2\n    gatewayReplicas: 3"), "gatewayReplicas"),
    (lambda t: t.replace("gatewayReplicas: 2", "gatewayReplicas: " + "9" * 5000), "gatewayReplicas"),
    (lambda t: t.replace("owner: sre-platform", "owner: " + "x" * 100_000), "owner"),
])
def test_plan_command_exits_2_naming_the_key_without_traceback(tmp_path, edit, key):
    path = edited_file(tmp_path, "staging", edit)
    proc = subprocess.run([sys.executable, "-m", "infra.offline.plan", "--stack", "staging", "--config", str(path),
                           "--offline-secrets"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert key in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr) < 2000, "a huge value must not become a huge message"


@pytest.mark.parametrize("value,expected", [("yes", "yes"), ("on", "on"), ("1:30", "1:30"),
                                            ("2020-01-01", "2020-01-01"), ("0x1F", 31), ("1_000", "1_000")])
def test_yaml_scalars_follow_the_clis_yaml_1_2_reading(tmp_path, value, expected):
    path = tmp_path / "Pulumi.s.yaml"
    path.write_text(f"config:\n  {PROJECT}:xray:\n    enabled: {value}\n", encoding="utf-8")
    assert json.loads(read_stack_file("s", path).values[f"{PROJECT}:xray"])["enabled"] == expected


@pytest.mark.parametrize("text", [
    b"config:\n  akidb-observability:xray: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"config:\n  akidb-observability:xray: {gatewayReplicas: " + b"9" * 5000 + b"}\n",
    b"config:\n  akidb-observability:owner: !!binary aGVsbG8=\n",
    b"config:\n  123: x\n",
    b"config:\n  akidb-observability:owner: \xff\xfe\n",
    b"config: [1, 2]\n",
])
def test_malformed_stack_files_are_clean_errors(tmp_path, text):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_bytes(text)
    with pytest.raises(StackFileError):
        read_stack_file("x", path)
