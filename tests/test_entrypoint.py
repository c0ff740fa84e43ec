"""The CLI entry point (`Pulumi.yaml` main: infra/) runs the same program under the mock runtime."""

from __future__ import annotations

import asyncio
import runpy

import pulumi
import pytest
import yaml

from infra.core.paths import ROOT
from infra.offline.plan import collect, configure_mock_runtime
from infra.offline.stackfile import read_stack_file, with_offline_secrets, with_overrides


def _run_main(stack_file, seen: list | None = None):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = configure_mock_runtime(stack_file)
    if seen is not None:
        seen.append(monitor)
    try:
        pulumi.runtime.test(lambda: runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"))()
    finally:
        pulumi.runtime.reset_options()
        loop.close()
        asyncio.set_event_loop(None)
    return monitor


def test_pulumi_yaml_points_at_the_program():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "akidb-observability"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert (ROOT / project["main"] / "__main__.py").exists()


def test_main_registers_the_same_resources_as_the_offline_plan(planned):
    monitor = _run_main(with_offline_secrets(read_stack_file("staging"))[0])
    via_main = sorted((r.type, r.name) for r in collect(monitor, "staging"))
    via_plan = sorted((r.type, r.name) for r in planned["staging"].resources)
    assert via_main == via_plan


def test_main_stops_on_invalid_config_without_registering_anything():
    bad = with_overrides(read_stack_file("staging"), {"xray": {"samplingFraction": 7}})
    seen: list = []
    with pytest.raises(pulumi.RunError, match="invalid stack config"):
        _run_main(bad, seen)
    assert [r for r in seen[0].recorded if r.custom] == []
