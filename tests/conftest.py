"""Test harness: the real program under Pulumi's mock runtime, one fresh event loop and config per run.

`run_stack("staging", overrides={...})` runs the whole program for a stack file (optionally edited), waits for
every registration, then returns the PlanResult to assert on: collect first, then assert (asserting inside an
`apply` races with later registrations; Pulumi "Unit testing", https://www.pulumi.com/docs/iac/concepts/testing/unit/).

Secrets: the stack files hold none, so the harness stands in for the ones a config needs, explicitly, the way
`python -m infra.offline.plan --offline-secrets` does (`offline_secrets=False` to see the missing-secret errors).
A key passed in `remove` is removed after the stand-ins are added: it stays missing.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from infra.core.collector import collect_less
from infra.core.paths import LAMBDAS_DIR, ROOT

# Lambda packages are top-level packages inside their zips; import them the same way in tests.
sys.path.insert(0, str(LAMBDAS_DIR))
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\..*)?")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_kubernetes(\..*)?")

from log_shape import FUNCTION_TEST_MODULES, SERVICES, lines_of, shape_problems  # noqa: E402

from infra.offline.plan import PlanResult, run_plan  # noqa: E402
from infra.offline.stackfile import read_stack_file, with_offline_secrets, with_overrides  # noqa: E402

STACKS = ("staging", "prod")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Every log line a function writes in its own tests is a line of the one shape (tests/log_shape.py): a
    passing test of those modules fails when its captured stdout holds a line that is not."""
    outcome = yield
    report = outcome.get_result()
    module = getattr(item, "module", None)
    if report.when != "call" or report.outcome != "passed" or module is None \
            or module.__name__ not in FUNCTION_TEST_MODULES:
        return
    stdout = "".join(text for name, text in report.sections if name == "Captured stdout call")
    problems = [p for line in lines_of(stdout) for p in shape_problems(line, SERVICES)]
    if problems:
        report.outcome = "failed"
        report.longrepr = "log lines outside the one shape (lambdas/logshape):\n" + "\n".join(problems[:10])


@pytest.fixture(autouse=True)
def _no_pulumi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("PULUMI_CONFIG")]:
        monkeypatch.delenv(var)


RunStack = Callable[..., PlanResult]


@pytest.fixture
def run_stack() -> RunStack:
    def run(stack: str = "staging", overrides: dict[str, Any] | None = None,
            secrets: dict[str, str] | None = None, remove: tuple[str, ...] = (),
            offline_secrets: bool = True) -> PlanResult:
        stack_file = with_overrides(read_stack_file(stack), overrides or {}, secrets)
        if offline_secrets:
            stack_file, _ = with_offline_secrets(stack_file)
        stack_file = with_overrides(stack_file, {}, remove=remove)
        return run_plan(stack, stack_file=stack_file, quiet=True, write=False)

    return run


@pytest.fixture(scope="session")
def planned() -> dict[str, PlanResult]:
    """Each checked-in stack planned once per session (read-only: do not mutate)."""
    return {stack: run_plan(stack, quiet=True, write=False, offline_secrets=True) for stack in STACKS}


@pytest.fixture
def project_root() -> Any:
    return ROOT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding a `slow` test first (stable otherwise): with `make test`'s workers (--dist loadfile) the long
    modules start at once and the short ones fill in beside them, instead of one long module starting last."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test module is imported now: the collector skips them and the SDKs from here on (as `make plan`)."""
    collect_less()
