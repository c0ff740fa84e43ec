"""Side effects exactly once (issue 30): the runbook webhook and worker from their built zip, each run as Lambda runs
it (its own runtime process: infra/tools/drill/zip_runtime.py), against a moto server,
with one fault (a throttled AWS call, or the function's time running out) injected before each AWS call of a
run in turn, then the redeliveries and retries that follow. Every run must end with each effect once: the
scale-out (+2, never +4), the cold-start notice, the incident's Pages datum, the audit of the decision and of
the action.

`make exactly-once` runs every interleaving of every scenario (110 today); the suite a subset (suite_indexes)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from zip_env import EXHAUSTIVE

from infra.tools import daemons
from infra.tools.drill import webhook
from tests.exactly_once import KINDS, SCENARIOS, Harness, problems

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers



@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    saved = {k: os.environ.get(k) for k in (*webhook.aws_environment("x"), "RUNBOOK_SETTINGS")}
    with daemons.moto_server() as moto:
        os.environ.update(webhook.aws_environment(moto.url))  # the harness's own checking clients
        try:
            world = webhook.create_world(in_process=False)
            with Harness(world, moto.url, tmp_path_factory.mktemp("exactly-once")) as harness:
                webhook.asg_ready(world)  # made in the background (moto's first Auto Scaling call is slow)
                yield harness
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_a_clean_run_does_each_effect_once(harness: Harness) -> None:
    for scenario in SCENARIOS:
        assert problems(harness.run(scenario)) == []


def suite_indexes(scenario: str, calls: list[str], kind: str) -> list[int]:
    """All of them for `make exactly-once`. In the suite, the issue's cases: an SNS publish failing after the
    action (every publish), the receiver dying between queueing and marking its claim, the time running out
    before the timeline's PutMetricData; plus every 11th call of the scale-out."""
    if EXHAUSTIVE:
        return list(range(len(calls)))
    queued = [i + 1 for i, c in enumerate(calls) if c == "sqs.SendMessage"]
    picked = {i for i, c in enumerate(calls) if c == "sns.Publish"} if kind == "fail" else set(queued[:1])
    if scenario == "manual":  # and the timeline's Pages: its claim and PutMetricData cut apart by the deadline
        picked = set(queued[:1]) | {i for i, c in enumerate(calls) if c == "cloudwatch.PutMetricData"} \
            if kind == "die" else set()
    if scenario == "scale-out":
        picked |= set(range(KINDS.index(kind) * 3, len(calls), 11)) | (set(queued) if kind == "die" else set())
    return sorted(i for i in picked if i < len(calls))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_fault_at_every_call_then_redelivery_does_each_effect_once(harness: Harness, scenario: str) -> None:
    calls = harness.clean_calls(scenario)
    found, fired, runs = [], 0, 0
    for kind in KINDS:
        for at in suite_indexes(scenario, calls, kind):
            outcome = harness.run(scenario, kind, at)
            fired, runs = fired + outcome.fired, runs + 1
            found += problems(outcome)
    print(f"{scenario}: {len(calls)} calls in a clean run ({', '.join(calls)}); {runs} interleavings, "
          f"{fired} faults fired")
    assert found == []
    assert fired == runs  # every injected fault really hit the run
