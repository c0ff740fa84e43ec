"""The stack check refuses what the receiving side refuses (issue 30, "Stack config"):

- provider namespaces are checked against the keys the installed provider SDKs read (a project section under
  `kubernetes:` or a typo `aws:regoin` was skipped with exit 0);
- every value of the REFUSED catalogue (tests/stack_mutations.py: URLs, CloudWatch statistics and dimensions,
  PromQL, schedules, alarm windows, thresholds over timeouts, S3-reserved prefixes, foreign-account ARNs, the
  environment of another stack file, prod paging off without its guard, maintenance windows) ends in exit 2
  naming the key, through the plan's config stage;
- the limits copied into infra/config/aws_limits.py are the ones botocore's service models carry;
- schedules: when a cron expression fires, L/W/# included.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import stack_mutations as sm
import yaml
from test_config_properties import ORIGINALS, run_config_stage

from infra.config import aws_limits
from infra.config.formats import SCHEDULE_HORIZON_DAYS, fire_gaps_s, parse_schedule, schedule_problem
from infra.config.providers import PULUMI_ENGINE_KEYS, provider_keys

P = sm.PROJECT + ":"


def _run(tmp_path: Path, stack: str, edit: Any) -> tuple[int, str]:
    doc = copy.deepcopy(ORIGINALS[stack])
    edit(doc["config"])
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return run_config_stage(path)


# ------------------------------------------------------------------------------------------ provider namespaces
@pytest.mark.parametrize("section", ["sloAlerting", "anomaly", "environment"])
@pytest.mark.parametrize("namespace", ["kubernetes", "aws", "pulumi", "pagerduty"])
def test_a_project_section_under_a_provider_namespace_is_refused(tmp_path, namespace, section) -> None:
    code, out = _run(tmp_path, "prod", lambda c: c.__setitem__(f"{namespace}:{section}", c.pop(P + section)))
    assert code == 2, out
    assert f"{namespace}:{section}" in out and f"write it as '{P}{section}'" in out


@pytest.mark.parametrize(("typo", "meant"), [("aws:regoin", "aws:region"),
                                             ("pulumi:disable-default-provider", "pulumi:disable-default-providers"),
                                             ("kubernetes:contxt", "kubernetes:context"),
                                             ("pagerduty:tokn", "pagerduty:token")])
def test_a_typo_of_a_provider_key_is_refused_with_the_closest_key(tmp_path, typo, meant) -> None:
    code, out = _run(tmp_path, "staging", lambda c: c.__setitem__(typo, "x"))
    assert code == 2, out
    assert f"{typo} = " in out and f"did you mean '{meant}'" in out


def test_an_unknown_namespace_names_the_allowed_ones(tmp_path) -> None:
    code, out = _run(tmp_path, "staging", lambda c: c.__setitem__("gcp:project", "x"))
    assert code == 2 and "unknown namespace 'gcp'" in out
    assert all(f"'{ns}:'" in out for ns in provider_keys())


def test_provider_values_are_checked_by_kind(tmp_path) -> None:
    for key, value in (("aws:region", "us-east-7"), ("aws:insecure", "maybe"), ("aws:maxRetries", "many"),
                       ("pulumi:disable-default-providers", "*")):
        code, out = _run(tmp_path, "staging", lambda c, k=key, v=value: c.__setitem__(k, v))
        assert code == 2 and f"{key} = " in out, (key, out)
    code, out = _run(tmp_path, "staging", lambda c: c.__setitem__("pagerduty:token", "plain"))
    assert code == 2 and "must be a secret" in out


def _vars_properties(package: str) -> set[str]:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    text = (Path(next(iter(spec.submodule_search_locations))) / "config" / "vars.py").read_text()
    return set(re.findall(r"def (\w+)\(self\)", text))


def test_provider_keys_are_the_sdks_own() -> None:
    """Derived, not hand-listed: one key per property of the SDK's config module (aws, pagerduty) or of its
    ProviderArgs (kubernetes), spelled the way the SDK reads it."""
    import pulumi_kubernetes

    keys = provider_keys()
    snake = {ns: {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower() for k in keys[ns].keys} for ns in ("aws", "pagerduty")}
    for ns in ("aws", "pagerduty"):
        assert snake[ns] == _vars_properties(f"pulumi_{ns}"), ns
    args = {name for name, v in vars(pulumi_kubernetes.ProviderArgs).items() if isinstance(v, property)}
    assert {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower() for k in keys["kubernetes"].keys} == args
    assert dict(keys["pulumi"].keys) == PULUMI_ENGINE_KEYS


# ------------------------------------------------------------------------------------------ refused values
@pytest.mark.parametrize("entry", sm.REFUSED, ids=[f"{'.'.join(map(str, e[0]))}={str(e[1])[:40]}" for e in sm.REFUSED])
def test_every_value_the_service_refuses_is_refused_naming_the_key(tmp_path, entry) -> None:
    path, value, only = entry
    stack = only or "prod"

    def edit(config: dict[str, Any]) -> None:
        parent = config
        for part in path[:-1]:
            parent = parent.setdefault(part, {})
        old = parent.get(path[-1])
        parent[path[-1]] = {**old, **value} if isinstance(value, dict) and isinstance(old, dict) else value

    code, out = _run(tmp_path, stack, edit)
    assert code == 2, (path, value, out)
    leaf = str(path[-1]).split(":")[-1]
    assert leaf in out, out


def test_the_checked_in_stacks_pass() -> None:
    for stack in ORIGINALS:
        assert run_config_stage(Path(f"Pulumi.{stack}.yaml").resolve()) == (0, ""), stack


def test_prod_paging_off_passes_with_its_named_guard(tmp_path) -> None:
    def edit(config: dict[str, Any]) -> None:
        config[P + "sloAlerting"].update(pagingEnabled=False, pagingDisabledReason="PagerDuty account not live yet")
        config[P + "pagerduty"]["manage"] = False  # nothing to page through: PagerDuty is not managed either

    _, out = _run(tmp_path, "prod", edit)
    assert "pagingEnabled" not in out and "pagingDisabledReason" not in out, out


def test_prod_runbooks_in_dry_run_pass_with_their_named_guard(tmp_path) -> None:
    def edit(config: dict[str, Any]) -> None:
        config[P + "sloAlerting"]["runbooks"].update(dryRun=True, dryRunReason="first week in prod: audit only")

    _, out = _run(tmp_path, "prod", edit)
    assert "dryRun" not in out, out


def test_prod_runbooks_left_at_the_default_dry_run_are_refused(tmp_path) -> None:
    """The default is dry-run: a prod file without `dryRun: false` would deploy runbooks that never act."""
    code, out = _run(tmp_path, "prod", lambda c: c[P + "sloAlerting"]["runbooks"].pop("dryRun"))
    assert code == 2 and "sloAlerting.runbooks.dryRun" in out and "dryRunReason" in out, out


# ------------------------------------------------------------------------------------------ limits vs botocore
def test_the_cloudwatch_and_amp_limits_are_botocores() -> None:
    import botocore.session  # a dev dependency (boto3), never the program's: hence the copy in aws_limits

    session = botocore.session.get_session()
    cw = session.get_service_model("cloudwatch")
    assert tuple(cw.shape_for("Statistic").enum) == aws_limits.CLOUDWATCH_STATISTICS
    ns = cw.shape_for("Namespace").metadata
    assert (ns["min"], ns["max"], ns["pattern"]) == (aws_limits.NAMESPACE_MIN, aws_limits.NAMESPACE_MAX,
                                                     aws_limits.NAMESPACE_PATTERN)
    assert cw.shape_for("MetricName").metadata["max"] == aws_limits.METRIC_NAME_MAX
    assert cw.shape_for("DimensionName").metadata["max"] == aws_limits.DIMENSION_NAME_MAX
    assert cw.shape_for("DimensionValue").metadata["max"] == aws_limits.DIMENSION_VALUE_MAX
    assert cw.shape_for("Dimensions").metadata["max"] == aws_limits.MAX_DIMENSIONS
    assert cw.shape_for("EvaluationPeriods").metadata["min"] == 1
    amp = session.get_service_model("amp")
    assert amp.shape_for("WorkspaceId").metadata["max"] == aws_limits.AMP_WORKSPACE_ID_MAX


@pytest.mark.parametrize(("stat", "ok"), [("Average", True), ("p99", True), ("p99.9", True), ("p100", True),
                                          ("tm90", True), ("TM(10%:90%)", True), ("IQM", True), ("p101", False),
                                          ("Bogus", False), ("average", False), ("p", False)])
def test_statistics(stat, ok) -> None:
    assert (aws_limits.statistic_problem(stat) is None) == ok


# ------------------------------------------------------------------------------------------ schedules
NOW = dt.datetime(2026, 12, 6, 23, 0)


@pytest.mark.parametrize(("expr", "first_s", "gap_s"), [
    ("rate(5 minutes)", 300, 300),
    ("cron(0/15 * * * ? *)", 0, 15 * 60),  # NOW is a quarter hour
    ("cron(0 3 ? * SUN *)", (6 * 24 + 4) * 3600, 7 * 86400),  # NOW is Sunday 23:00: next Sunday 03:00
    ("cron(0 18 ? * MON-FRI *)", 19 * 3600, 3 * 86400),  # Friday 18:00 -> Monday 18:00
])
def test_when_a_cron_fires(expr, first_s, gap_s) -> None:
    assert fire_gaps_s(parse_schedule(expr), NOW) == (first_s, gap_s)


@pytest.mark.parametrize(("expr", "first_day"), [("cron(0 3 L * ? *)", dt.date(2026, 12, 31)),
                                                 ("cron(0 3 ? * 6#3 *)", dt.date(2026, 12, 18)),
                                                 ("cron(0 3 ? * 2L *)", dt.date(2026, 12, 28)),
                                                 ("cron(0 3 15W * ? *)", dt.date(2026, 12, 15)),
                                                 ("cron(0 3 5W * ? *)", dt.date(2027, 1, 5))])
def test_calendar_forms_fire_on_their_day_every_month(expr, first_day) -> None:
    """L (last day), 6#3 (third Friday), 2L (last Monday), 15W (weekday nearest the 15th): monthly."""
    first, gap = fire_gaps_s(parse_schedule(expr), NOW)
    assert NOW + dt.timedelta(seconds=first or 0) == dt.datetime.combine(first_day, dt.time(3))
    assert 27 * 86400 <= gap <= 36 * 86400


@pytest.mark.parametrize(("expr", "why"), [("cron(0 3 31 2 ? *)", "never fires"), ("cron(0 3 ? * SUN 2020)", "never"),
                                           ("cron(0 3 29 2 ? *)", "days without firing"),
                                           ("cron(0 3 ? * SUN 2027)", "year field stops it")])
def test_schedules_that_never_or_rarely_fire_are_refused(expr, why) -> None:
    problem = schedule_problem(expr, NOW)
    assert problem is not None and why in problem
    assert SCHEDULE_HORIZON_DAYS >= 2 * 365


def test_a_misspelt_namespace_suggests_the_right_one(tmp_path) -> None:
    code, out = _run(tmp_path, "staging", lambda c: c.__setitem__("AWS:region", c.pop("aws:region")))
    assert code == 2 and "did you mean 'aws:region'" in out
    code, out = _run(tmp_path, "staging", lambda c: c.__setitem__("pulumi:disable-default-providers", ["awz"]))
    assert code == 2 and "unknown: awz" in out
