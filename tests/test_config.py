"""Stack config: defaults, ranges, cross-field rules, unknown keys, secrets; checked before any resource."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.config import PROJECT, ConfigError, parse_stack_config
from infra.config.reference import reference_rows
from infra.core.paths import ROOT
from infra.offline.stackfile import read_stack_file, with_overrides


def parse(stack: str = "staging", overrides=None, secrets=None, remove=()):
    sf = with_overrides(read_stack_file(stack), overrides or {}, secrets, remove)
    return parse_stack_config(sf.values, set(sf.secret_keys))


def problems(**kw) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(**kw)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize("stack", ["staging", "prod"])
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


def test_alarm_period_must_be_one_cloudwatch_accepts():
    msgs = problems(overrides={"emfEdge": {"alarms": {"periodS": 45}}})
    assert any("emfEdge.alarms.periodS = 45" in m and "multiple of 60" in m for m in msgs)


def test_alarm_window_at_most_one_day():
    msgs = problems(overrides={"emfEdge": {"alarms": {"periodS": 60, "evaluationPeriods": 1441,
                                                      "datapointsToAlarm": 2}}})
    assert any("evaluationPeriods" in m for m in msgs)


def test_at_least_one_edge_region():
    msgs = problems(overrides={"emfEdge": {"edgeRegions": []}})
    assert any("emfEdge.edgeRegions" in m and "at least 1" in m for m in msgs)


def test_image_must_be_pinned():
    image = "public.ecr.aws/aws-observability/aws-otel-collector:latest"
    msgs = problems(overrides={"xray": {"collectorImage": image}})
    assert any("xray.collectorImage" in m for m in msgs)


def test_secret_given_in_plain_text_is_refused():
    sf = read_stack_file("prod")
    values = dict(sf.values)
    keys = [k for k in sf.secret_keys if not k.endswith("pagerdutyRoutingKey")]
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values, set(keys))
    assert any("pagerdutyRoutingKey" in str(p) and "--secret" in str(p) for p in err.value.problems)


def test_paging_requires_the_routing_key():
    msgs = problems(stack="prod", remove=("pagerdutyRoutingKey",))
    assert any("pagerdutyRoutingKey = <missing>" in m for m in msgs)


def test_prod_must_protect_stateful_resources():
    msgs = problems(stack="prod", overrides={"protectStateful": False})
    assert any("protectStateful" in m for m in msgs)


def test_reference_rows_cover_every_section():
    keys = [row[0] for row in reference_rows()]
    for prefix in ("xray.", "emfEdge.", "anomaly.", "sloAlerting.", "dashboards.", "aws.", "kubernetes."):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert "pagerdutyRoutingKey" in keys


@pytest.mark.parametrize("bad", [
    {"xray": {"samplingFraction": 2}},  # out of range
    {"sloAlertng": {"enabled": True}},  # unknown key
])
def test_plan_command_exits_non_zero_naming_the_key_without_traceback(tmp_path, bad):
    sf = with_overrides(read_stack_file("staging"), bad)
    lines = ["config:"]
    import json
    for k, v in sf.values.items():
        if k in sf.secret_keys:
            lines.append(f"  {k}:\n    secure: v1:placeholder")
        else:
            lines.append(f"  {k}: {json.dumps(v) if not v.startswith(('{', '[')) else v}")
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "infra.offline.plan", "--stack", "bad", "--config", str(path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    key = next(iter(bad))
    assert key in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_readme_config_reference_is_current():
    from infra.config.reference import updated_readme

    text = (ROOT / "README.md").read_text()
    assert updated_readme(text) == text, "README.md config reference is stale: run `make docs`"
