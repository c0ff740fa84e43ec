"""Each component can be switched off per stack; the rest still plans cleanly without it."""

from __future__ import annotations

import pytest

COMPONENTS = {
    "xray": "akidb:xray:",
    "emfEdge": "akidb:emf-edge:",
    "anomaly": "akidb:anomaly:",
    "sloAlerting": "akidb:slo-alerting:",
    "dashboards": "akidb:dashboards:",
    "synthetics": "akidb:synthetics:",
    "alertingPath": "akidb:alerting-path:",
    "costWatch": "akidb:cost-watch:",
}


def _component_types(result) -> set[str]:
    return {r.type for r in result.resources if not r.custom}


@pytest.mark.parametrize("section", sorted(COMPONENTS))
def test_switching_a_component_off_removes_it_and_keeps_the_plan_clean(run_stack, section):
    result = run_stack("prod", overrides={section: {"enabled": False}})
    assert result.config_problems == []
    assert not any(t.startswith(COMPONENTS[section]) for t in _component_types(result))
    assert [str(v) for v in result.violations] == []
    others = set(COMPONENTS) - {section}
    for other in others:
        assert any(t.startswith(COMPONENTS[other]) for t in _component_types(result)), other


def test_everything_off_leaves_only_the_severity_topics(run_stack):
    result = run_stack("staging", overrides={s: {"enabled": False} for s in COMPONENTS})
    assert result.config_problems == []
    assert _component_types(result) == {"akidb:foundation:SeverityTopics"}
    assert [str(v) for v in result.violations] == []
