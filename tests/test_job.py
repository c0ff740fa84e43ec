"""`make plan`'s one-process job: plan, preview, cost per stack, in that order, stopping at the first failure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from infra.offline import cost_report, job, plan, preview


@dataclass
class Steps:
    calls: list[tuple[str, list[str]]] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)


@pytest.fixture()
def steps(monkeypatch: pytest.MonkeyPatch) -> Steps:
    state = Steps()

    def recorder(name: str) -> Callable[[list[str]], int]:
        def step(argv: list[str]) -> int:
            state.calls.append((name, argv))
            return state.codes.get(name, 0)
        return step

    monkeypatch.setattr(plan, "main", recorder("plan"))
    monkeypatch.setattr(preview, "main", recorder("preview"))
    monkeypatch.setattr(cost_report, "main", recorder("cost"))
    return state


def test_each_stack_gets_plan_then_preview_then_cost(steps: Steps) -> None:
    assert job.main(["--stack", "staging", "--stack", "prod", "--offline-secrets"]) == 0
    assert steps.calls == [
        ("plan", ["--stack", "staging", "--offline-secrets"]), ("preview", ["--stack", "staging", "--offline-secrets"]),
        ("cost", ["--stack", "staging"]),
        ("plan", ["--stack", "prod", "--offline-secrets"]), ("preview", ["--stack", "prod", "--offline-secrets"]),
        ("cost", ["--stack", "prod"]),
    ]


@pytest.mark.parametrize(("failing", "code"), [("plan", 2), ("plan", 1), ("preview", 1), ("cost", 1)])
def test_the_first_failing_step_ends_the_job_with_its_code(steps: Steps, failing: str,
                                                           code: int) -> None:
    steps.codes = {failing: code}
    assert job.main(["--stack", "staging", "--stack", "prod"]) == code
    names = [name for name, _ in steps.calls]
    assert names == ["plan", "preview", "cost"][: ["plan", "preview", "cost"].index(failing) + 1]


def test_default_stack_is_staging(steps: Steps) -> None:
    assert job.main([]) == 0
    assert steps.calls[0][1] == ["--stack", "staging"]


def test_one_config_file_for_several_stacks_is_refused(steps: Steps,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        job.main(["--stack", "staging", "--stack", "prod", "--config", "x.yaml"])
    assert exc.value.code == 2
    assert "--config names one stack file" in capsys.readouterr().err
    assert steps.calls == []
