"""`make plan`'s job: plan, preview (forked, side by side with the plan), cost per stack; their output in that
order; the code of the first failing step."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infra.core.paths import BUILD_DIR, ROOT
from infra.offline import cost_report, job, plan, preview

STEPS = ("plan", "preview", "cost")


@dataclass
class Steps:
    """Stand-in steps. Each records its call in a file (the preview runs in another process), prints its name to
    stdout and stderr, and returns the code set for it; `raises` makes one raise instead."""

    log: Path
    codes: dict[str, int] = field(default_factory=dict)
    raises: str | None = None

    def calls(self) -> list[tuple[str, list[str]]]:
        if not self.log.exists():
            return []
        return [(c["step"], c["argv"]) for c in map(json.loads, self.log.read_text().splitlines())]


@pytest.fixture()
def steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Steps:
    state = Steps(log=tmp_path / "calls.jsonl")

    def recorder(name: str) -> Callable[[list[str]], int]:
        def step(argv: list[str]) -> int:
            with state.log.open("a") as f:
                f.write(json.dumps({"step": name, "argv": argv}) + "\n")
            print(f"{name} out {argv[1]}")
            print(f"{name} err {argv[1]}", file=sys.stderr)
            if state.raises == name:
                raise RuntimeError(f"{name} broke")
            return state.codes.get(name, 0)
        return step

    for module, name in ((plan, "plan"), (preview, "preview"), (cost_report, "cost")):
        monkeypatch.setattr(module, "main", recorder(name))
    return state


def test_each_stack_gets_plan_preview_and_cost_printed_in_that_order(steps: Steps,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert job.main(["--stack", "staging", "--stack", "prod", "--offline-secrets"]) == 0
    out, err = capsys.readouterr()
    expected = [f"{name} {{}} {stack}" for stack in ("staging", "prod") for name in STEPS]
    assert out.splitlines() == [line.format("out") for line in expected]
    assert err.splitlines() == [line.format("err") for line in expected]
    calls = steps.calls()
    assert sorted(calls[:2]) == [("plan", ["--stack", "staging", "--offline-secrets"]),
                                 ("preview", ["--stack", "staging", "--offline-secrets"])]
    assert calls[2:] == [("cost", ["--stack", "staging"]), *calls[3:5], ("cost", ["--stack", "prod"])]
    assert sorted(calls[3:5]) == [("plan", ["--stack", "prod", "--offline-secrets"]),
                                  ("preview", ["--stack", "prod", "--offline-secrets"])]


@pytest.mark.parametrize(("failing", "code"), [("plan", 2), ("plan", 1), ("preview", 1), ("cost", 1)])
def test_the_first_failing_step_ends_the_job_with_its_code(steps: Steps, failing: str, code: int,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    steps.codes = {failing: code}
    assert job.main(["--stack", "staging", "--stack", "prod"]) == code
    shown = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    # What the three commands in a row would have printed: nothing of a step after the failing one.
    assert shown == list(STEPS[: STEPS.index(failing) + 1])
    assert {name for name, argv in steps.calls() if argv[1] == "prod"} == set()


def test_a_preview_that_raises_fails_the_job_with_its_traceback(steps: Steps,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    steps.raises = "preview"
    assert job.main(["--stack", "staging"]) == 1
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()] == ["plan", "preview"]
    assert "RuntimeError: preview broke" in err


def test_the_preview_runs_while_the_plan_does(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The plan waits (up to 60 s) for a file the preview writes: run one after the other, it would never come.
    marker = tmp_path / "preview-started"

    def plan_step(argv: list[str]) -> int:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if time.monotonic() > deadline:
                return 7
            time.sleep(0.01)
        return 0

    def preview_step(argv: list[str]) -> int:
        marker.write_text("started")
        return 0

    monkeypatch.setattr(plan, "main", plan_step)
    monkeypatch.setattr(preview, "main", preview_step)
    monkeypatch.setattr(cost_report, "main", lambda argv: 0)
    assert job.main(["--stack", "staging"]) == 0


def test_default_stack_is_staging(steps: Steps) -> None:
    assert job.main([]) == 0
    assert {argv[1] for _, argv in steps.calls()} == {"staging"}


def test_one_config_file_for_several_stacks_is_refused(steps: Steps,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        job.main(["--stack", "staging", "--stack", "prod", "--config", "x.yaml"])
    assert exc.value.code == 2
    assert "--config names one stack file" in capsys.readouterr().err
    assert steps.calls() == []


def test_the_real_job_plans_previews_and_costs_the_staging_stack() -> None:
    # The real program, forked: the mock runtime and the SDKs must survive the fork, and the shared build cache
    # the two runs write at once.
    proc = subprocess.run([sys.executable, "-m", "infra.offline.job", "--stack", "staging", "--offline-secrets"],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    plan_at = out.index("build/staging/plan.json")
    preview_at = out.index("all known at preview")
    cost_at = out.index("Total: $")
    assert plan_at < preview_at < cost_at
    assert json.loads((BUILD_DIR / "staging" / "plan.json").read_text())
