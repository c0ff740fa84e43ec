"""Property: any mutation of a checked-in stack file (drop, rename, retype a key; NaN/Inf; huge strings and numbers;
unicode; newlines; duplicate keys) ends in exit 0 or exit 2 naming the key, never a crash (exit 3) or a silent
drop. Driven through the plan's own command line (`infra.offline.plan.main`, config stage only: an invalid file
stops before the program runs), with a fixed, derandomized example budget so it stays fast."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import stack_mutations as sm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.config import ConfigError, parse_stack_config
from infra.core.paths import ROOT
from infra.offline.stackfile import StackFileError, read_stack_file, with_offline_secrets

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers

ORIGINALS = {stack: sm.load_original(ROOT, stack) for stack in ("staging", "prod")}


class DrawChooser:
    """mutate()'s choices drawn by Hypothesis, so a failing case shrinks to the smallest mutation."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def choice(self, seq: Sequence[Any]) -> Any:
        return self.data.draw(st.sampled_from(list(seq)))

    def randrange(self, stop: int) -> int:
        return self.data.draw(st.integers(min_value=0, max_value=stop - 1))


def run_config_stage(path: Path) -> tuple[int, str]:
    """What `python -m infra.offline.plan --config PATH --offline-secrets` decides before running the program:
    0 valid, 2 invalid (the message), 3 anything else (the plan's crash exit)."""
    try:
        stack = sm.stack_of(path)
        sf, _ = with_offline_secrets(read_stack_file(stack, path))
        parse_stack_config(sf.values, set(sf.secret_keys), stack=stack)
    except (ConfigError, StackFileError) as err:
        return 2, str(err)
    except Exception as err:  # a crash: the property fails on it
        return 3, f"{type(err).__name__}: {err}"
    return 0, ""


@settings(max_examples=250, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stack=st.sampled_from(sorted(ORIGINALS)), data=st.data())
def test_any_mutation_is_accepted_or_rejected_naming_the_key(tmp_path_factory, stack, data):
    mutation = sm.mutate(ORIGINALS[stack], DrawChooser(data))
    outcome = sm.judge(mutation, run_config_stage, tmp_path_factory.mktemp("m", numbered=True), stack)
    assert outcome.verdict in ("accepted", "rejected"), (mutation.kind, mutation.key, outcome.detail)


@pytest.mark.parametrize("kind", ["namespace", "duplicate", "nan", "rename"])
def test_the_plan_command_exits_2_for_each_kind_of_finding(tmp_path, kind):
    """The same judge, through the real command line once per kind of finding (exit code and stderr)."""
    from infra.offline.plan import main

    class FirstOf:
        def choice(self, seq: Sequence[Any]) -> Any:
            return kind if seq is sm.KINDS else next(iter(seq))

        def randrange(self, stop: int) -> int:
            return 0

    mutation = sm.mutate(ORIGINALS["staging"], FirstOf())
    assert mutation.kind == kind

    def run(path: Path) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["--stack", "staging", "--config", str(path), "--offline-secrets"])
        return code, err.getvalue()

    outcome = sm.judge(mutation, run, tmp_path)
    assert outcome.verdict == "rejected", (mutation.key, outcome.detail)
