"""Every job of every workflow, run offline step by step in a clean clone of HEAD (tests/workflow_sim.py says what
is real and what is simulated): `pulumi`, `aws`, `gh`, `curl` are recording stand-ins, AWS for the project's own
tools is a moto server, everything else (venvs, pip, make, the project's modules, git, jq, bash) is real.
`make test` inside a job runs as `make -n test` (a dry run: the target and its prerequisites exist) so this test
does not run itself. The recorded CLI calls are then checked: OIDC token before `pulumi login` before any stack
command, the stack `<org>/<stack>`, `--policy-pack policy/`, `--diff`, the kubeconfig before the program runs,
the error-budget gate on prod deploys only, and the deploy markers and maintenance suppressor in (moto's) AWS.

The policy pack's venv comes from the workflows' cached action (.github/actions/policy-venv) under the runner's
actions/cache (an empty store per run): the first job that needs it misses, runs the build step (`python -m venv`
and `pip install -r`) and saves it at its end; the later jobs restore it and skip the build. The miss starts from a
copy of the venv tests/test_policy_pack.py's pack_venv built with the same two commands (under its lock: the pack
test and this one never both build it), on which the build step finds everything installed. Every job runs at the
same absolute path (build/workflow-steps/ws), as on a runner, so a restored venv works there."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from budget_world import budget_world
from test_policy_pack import pack_venv
from workflow_sim import JobRecord, Runner, StepRecord, StrictDict

from infra.components.edge_composite import MAINTENANCE_DIMENSION, MAINTENANCE_METRIC, MAINTENANCE_NAMESPACE
from infra.core.paths import ROOT
from infra.offline.plan import PlanResult
from infra.slo.spec import load_slos
from infra.tools import daemons
from infra.tools import deploy_marker as dm

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CACHE = ROOT / "build" / "workflow-steps"
# `make test` runs every job with the first combination of each matrix (staging); `make workflow-steps` sets
# WORKFLOW_STEPS_FULL=1 and runs every combination (the plan-diff jobs alone are ~25 s per stack).
FULL = os.environ.get("WORKFLOW_STEPS_FULL") == "1"
MATRIX_STACKS = ["prod", "staging"] if FULL else ["staging"]
# Shell metacharacters in a dispatch input: a template injection would run them, env passing never does.
GAME_DAY_QUIET_EXPERIMENT = "anomaly-detector-errors"  # expect: none (a ticket, no page)
EXHAUSTED_SHARE = 1.6  # of each SLO's budget spent in its window
OVERRIDE_REASON = 'flaky probe burnt the budget; $(touch INJECTED) `touch INJECTED` "; touch INJECTED'



def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def documented_settings() -> tuple[dict[str, str], set[str]]:
    """Repository variables and environments as the CI settings table (docs/operations/pr-flow.md) and the
    rollback doc list them:
    a workflow reading a variable nobody is told to configure fails here."""
    text = (ROOT / "docs" / "operations" / "pr-flow.md").read_text()
    table = text[text.index("## CI settings"):]
    names, envs = set(), set()
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] == "variable":
            names |= set(re.findall(r"`([A-Z0-9_]+)`", cells[1]))
        if len(cells) >= 2 and cells[0] == "environment":
            envs |= set(re.findall(r"`([a-z0-9-]+)`", cells[1]))
    names |= set(re.findall(r"Variable `([A-Z0-9_]+)`", (ROOT / "docs" / "operations-rollback.md").read_text()))

    def value(name: str) -> str:
        if name.endswith("ROLE_ARN"):
            return f"arn:aws:iam::111111111111:role/{name.lower().replace('_', '-')}"
        if name.endswith("KEY_ARN"):
            return "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        if name == "AWS_REGION":
            return "us-east-1"
        if name.endswith("_URL"):
            return "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0a1b2c3d/"
        return f"ci-{name.lower().replace('_', '-')}"
    return {n: value(n) for n in sorted(names)}, envs


class Run:
    def __init__(self, records: list[JobRecord], moto_url: str, sha: str, rollback_to: str, seconds: float):
        self.records, self.moto_url, self.sha, self.rollback_to, self.seconds = (
            records, moto_url, sha, rollback_to, seconds)

    def jobs(self, workflow: str, job: str) -> list[JobRecord]:
        return [r for r in self.records if (r.workflow, r.job) == (workflow, job)]


def fis_templates(plan: PlanResult, path: Path) -> Path:
    """The FIS experiment templates the stack plans (id, tags), as the FIS stand-in answers for them."""
    templates = [{"id": r.outputs.get("id") or r.name, "tags": r.inputs.get("tags") or {}}
                 for r in plan.resources if r.type == "aws:fis/experimentTemplate:ExperimentTemplate"]
    assert templates, "the staging plan holds no FIS experiment template"
    path.write_text(json.dumps(templates))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, planned: dict[str, PlanResult]) -> Iterator[Run]:
    sha = _git("rev-parse", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        print("note: uncommitted changes are not tested: the jobs run the committed HEAD")
    variables, environments = documented_settings()
    # A rollback goes to an earlier revision of main: the parent, when it builds the same way (the jobs have no
    # network to reinstall a venv a changed recipe asks for), else HEAD itself (a redeploy of the same revision).
    same_build = subprocess.run(["git", "diff", "--quiet", "HEAD~1", "HEAD", "--", ".github/actions", "Makefile",
                                 "pyproject.toml"], cwd=ROOT).returncode == 0
    rollback_to = _git("rev-parse", "HEAD~1" if same_build else "HEAD")
    print(f"rollback target: {'HEAD~1' if same_build else 'HEAD'} {rollback_to}")
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    # The prod deploy's gate reads a real Prometheus whose akidb-rest budgets are exhausted: the deploy goes only
    # because the dispatch carries an override, which the gate must record.
    world_dir = tmp_path_factory.mktemp("budgets")
    with (CACHE / "lock").open("w") as lock, daemons.moto_server() as moto, \
            budget_world(world_dir, {slo.service: EXHAUSTED_SHARE for slo in load_slos()}) as world:
        variables["AMP_QUERY_URL"] = world.url
        fcntl.flock(lock, fcntl.LOCK_EX)  # one session per checkout: the jobs share one workspace path
        for stack in ("staging", "prod"):
            t = dm.load_targets(stack)
            if t.timeline_table:  # deployed by the stack (infra/components/incident_timeline.py)
                boto3.client("dynamodb", region_name=t.home_region, endpoint_url=moto.url,
                             aws_access_key_id="testing", aws_secret_access_key="testing").create_table(
                    TableName=t.timeline_table, BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                          {"AttributeName": "sk", "AttributeType": "S"}])
        runner = Runner(
            repo=ROOT, sha=sha, tmp=tmp_path_factory.mktemp("workflows"),
            vars=StrictDict(variables, "not a repository variable the CI settings table "
                                       "(docs/operations/pr-flow.md) documents"),
            environments=environments, moto_url=moto.url, cache_dir=CACHE, dev_venv=Path(sys.prefix),
            shared_build={"build/cache": (ROOT / "build" / "cache").resolve(),
                          "build/models": (ROOT / "build" / "models").resolve()},
            full_matrix=FULL, seed_policy_venv=pack_venv,
            standin_env={"WORKFLOW_FIS_TEMPLATES": str(fis_templates(planned["staging"],
                                                                      world_dir / "fis-templates.json"))})
        runner.run_workflow("preview.yml", "pull_request")
        runner.run_workflow("deploy.yml", "workflow_dispatch", {"budget-override-reason": OVERRIDE_REASON})
        runner.run_workflow("drift.yml", "schedule")
        runner.run_workflow("rollback.yml", "workflow_dispatch", {"stack": "prod", "revision": rollback_to})
        # An experiment that must page nobody (the timeline stays empty here), judged at once (no grace wait).
        runner.run_workflow("game-day.yml", "workflow_dispatch",
                            {"experiment": GAME_DAY_QUIET_EXPERIMENT, "grace-minutes": "0"})
        yield Run(runner.records, moto.url, sha, rollback_to, time.monotonic() - started)


def _calls(r: JobRecord, tool: str, *words: str) -> list[int]:
    return [i for i, c in enumerate(r.calls) if c["tool"] == tool and c["argv"][:len(words)] == list(words)]


def _flag(r: JobRecord, i: int, name: str) -> str | None:
    argv = r.calls[i]["argv"]
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def test_every_job_of_every_workflow_ran_and_succeeded(run: Run) -> None:
    declared = {(p.name, job) for p in WORKFLOWS for job, spec in yaml.safe_load(p.read_text())["jobs"].items()
                if "uses" not in spec}
    ran = {(r.workflow, r.job) for r in run.records}
    failed = [r.report() for r in run.records if r.status != "success"]
    assert not failed, "\n\n".join(failed)
    assert declared <= ran, f"jobs never run: {sorted(declared - ran)}"
    leftovers = {r.label: r.leftovers for r in run.records if r.leftovers}
    assert not leftovers, f"processes outlived their job: {leftovers}"


def test_stack_commands_come_after_the_oidc_login_and_a_kubeconfig(run: Run) -> None:
    org = documented_settings()[0]["PULUMI_ORG"]
    for r in run.records:
        stack_cmds = [i for i, c in enumerate(r.calls) if c["tool"] == "pulumi" and c["argv"][0] != "login"]
        if not stack_cmds:
            continue
        logins = _calls(r, "pulumi", "login")
        tokens = _calls(r, "curl")
        assert logins and tokens and tokens[0] < logins[0] < min(stack_cmds), f"{r.label}: OIDC order {r.calls}"
        assert _flag(r, logins[0], "--oidc-org") == org
        aws_login = _calls(r, "aws-actions/configure-aws-credentials")
        assert aws_login, f"{r.label}: no AWS credentials"
        for i in stack_cmds:
            argv = r.calls[i]["argv"]
            if argv[0] in ("preview", "up", "refresh", "stack"):
                want = r.matrix.get("stack") or r.inputs.get("stack")
                stack = _flag(r, i, "--stack")
                assert stack == f"{org}/{want}", f"{r.label}: {argv}"
            if argv[0] in ("preview", "up", "refresh"):
                kube = _calls(r, "aws", "eks", "update-kubeconfig")
                assert kube and aws_login[0] < kube[0] < i, f"{r.label}: {argv[0]} without a kubeconfig first"
            if argv[0] in ("preview", "up"):
                assert _flag(r, i, "--policy-pack") == "policy/" and "--diff" in argv, f"{r.label}: {argv}"


def test_previews_and_drift_checks_cover_both_stacks(run: Run) -> None:
    for wf, job, extra in (("preview.yml", "preview", ["--refresh"]),
                           ("drift.yml", "drift", ["--refresh", "--expect-no-changes"])):
        recs = run.jobs(wf, job)
        assert sorted(r.matrix["stack"] for r in recs) == MATRIX_STACKS
        for r in recs:
            previews = _calls(r, "pulumi", "preview")
            assert len(previews) == 1 and all(f in r.calls[previews[0]]["argv"] for f in extra)
    for r in run.jobs("drift.yml", "drift"):
        assert r.step("Refresh-preview").outputs == {"result": "clean"}
        assert r.step("drift issue").outcome == "success" and "compiled" in r.step("drift issue").output
    for r in run.jobs("drift.yml", "state-backup"):
        export, upload = _calls(r, "pulumi", "stack", "export"), _calls(r, "aws", "s3", "cp")
        assert export and upload and export[0] < upload[0]


def test_plan_diff_jobs_write_the_comment_the_script_posts(run: Run) -> None:
    recs = run.jobs("preview.yml", "plan-diff")
    assert sorted(r.matrix["stack"] for r in recs) == MATRIX_STACKS
    for r in recs:
        md = r.workspace / "build" / r.matrix["stack"] / "plan-diff.md"
        assert md.is_file() and md.read_text().strip(), f"{r.label}: {md} missing: the github-script reads it"


def test_test_jobs_dry_run_make_test(run: Run) -> None:
    for wf in ("preview.yml", "deploy.yml"):
        (r,) = run.jobs(wf, "test")
        out = r.step("make test").output
        assert "-m pytest" in out and "ruff check" in out, out  # `make -n test` printed the recipe


def _up_jobs(run: Run) -> dict[str, JobRecord]:
    recs = run.jobs("pulumi-up.yml", "up")
    return {f"{r.inputs['kind']}:{r.inputs['stack']}": r for r in recs}


def test_error_budget_gate_holds_prod_deploys_only(run: Run) -> None:
    ups = _up_jobs(run)
    assert set(ups) == {"deploy:staging", "deploy:prod", "rollback:prod"}
    for key, r in ups.items():
        step = r.step("Error-budget gate")
        if key != "deploy:prod":
            assert step.outcome == "skipped", f"{key} must not be gated"
            continue
        assert step.outcome == "success", step.output
        verdict = json.loads(next(line for line in reversed(step.output.splitlines()) if line.startswith("{")))
        # The real gate read the exhausted budgets from Prometheus, held, and let the deploy go on the override,
        # which it recorded with the dispatch input verbatim (passed via env: its shell metacharacters ran nothing).
        assert (verdict["stack"], verdict["verdict"], verdict["exit"]) == ("prod", "held", 0)
        assert {s["slo"] for s in verdict["slos"] if s["over"]} == {slo.name for slo in load_slos()}
        assert verdict["override"]["reason"] == OVERRIDE_REASON
        assert r.step("pulumi up").outcome == "success"
        assert not list(r.workspace.rglob("INJECTED"))


def test_rollback_refreshes_then_updates_the_target_revision(run: Run) -> None:
    r = _up_jobs(run)["rollback:prod"]
    refresh, up = _calls(r, "pulumi", "refresh"), _calls(r, "pulumi", "up")
    assert refresh and up and refresh[0] < up[0] and "--yes" in r.calls[refresh[0]]["argv"]
    assert _git("-C", str(r.workspace), "rev-parse", "HEAD") == run.rollback_to
    for key, d in _up_jobs(run).items():
        assert (len(_calls(d, "pulumi", "refresh")) == 1) == key.startswith("rollback")


def _metric(url: str, region: str, namespace: str, metric: str, dims: dict[str, str]) -> dict[str, float]:
    cw = boto3.client("cloudwatch", region_name=region, endpoint_url=url, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    now = datetime.now(tz=UTC)
    points = cw.get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - timedelta(hours=2), EndTime=now + timedelta(minutes=5), Period=3600,
        Statistics=["Maximum", "Minimum"])["Datapoints"]
    if not points:
        return {}
    return {"Maximum": max(p["Maximum"] for p in points), "Minimum": min(p["Minimum"] for p in points)}


def test_deploys_leave_markers_and_raise_then_lower_the_suppressor(run: Run) -> None:
    for key, r in _up_jobs(run).items():
        kind, stack = key.split(":")
        t = dm.load_targets(stack)
        order = [r.step(n) for n in ("Deploy marker (start)", "Raise the edge maintenance", "pulumi up with",
                                     "Lower the edge maintenance", "Deploy marker (end")]
        assert [s.outcome for s in order] == ["success"] * 5, r.report()
        assert r.steps.index(order[3]) > r.steps.index(order[2])
        assert t.edge_function
        for region in t.edge_regions:
            seen = _metric(run.moto_url, region, MAINTENANCE_NAMESPACE, MAINTENANCE_METRIC,
                           {MAINTENANCE_DIMENSION: t.edge_function})
            assert seen == {"Maximum": 1, "Minimum": 0}, f"{key} {region}: {seen}"
        if t.timeline_table is None:
            continue
        ddb = boto3.client("dynamodb", region_name=t.home_region, endpoint_url=run.moto_url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        items = ddb.query(TableName=t.timeline_table, KeyConditionExpression="pk = :pk",
                          ExpressionAttributeValues={":pk": {"S": f"deploy#{stack}"}})["Items"]
        mine = [i for i in items if i["kind"]["S"] == kind]
        assert sorted(i["phase"]["S"] for i in mine) == ["end", "start"], items
        commit = run.rollback_to if kind == "rollback" else run.sha
        assert all(i["commit"]["S"] == commit and i["marker_published"]["BOOL"] for i in mine)
        assert [i["outcome"]["S"] for i in mine if i["phase"]["S"] == "end"] == ["success"]


def _pack_venv_steps(r: JobRecord) -> tuple[StepRecord, StepRecord, list[StepRecord]]:
    """The policy-venv action's cache step and build step in the job `r`, and the cache's post step (if any)."""
    def inner(name: str) -> StepRecord:
        (step,) = [s for s in r.steps if s.name.endswith(f" > {name}") and not s.name.startswith("Post ")]
        return step
    cache, build = inner("Restore the policy pack virtualenv"), inner("Build the policy pack virtualenv (cache miss)")
    return cache, build, [s for s in r.steps if s.name == f"Post {cache.name}"]


def test_only_the_first_job_with_a_key_builds_the_pack_venv_the_others_restore_it(run: Run) -> None:
    """Every job that ran the pack got its venv from the cached action; the first job with each key missed, built
    it (the two commands) and saved it at its end; each later job with that key restored it and ran no pip."""
    packs = [r for r in run.records if any(c["tool"] == "pulumi" and "--policy-pack" in c["argv"] for c in r.calls)]
    assert {(r.workflow, r.job) for r in packs} >= {("preview.yml", "preview"), ("pulumi-up.yml", "up"),
                                                   ("drift.yml", "drift")}
    saved: set[str] = set()
    keys: dict[str, set[str]] = {}
    for r in packs:
        cache, build, post = _pack_venv_steps(r)
        key = cache.output.split()[-1]
        keys.setdefault(_git("-C", str(r.workspace), "rev-parse", "HEAD"), set()).add(key)
        if key not in saved:
            assert cache.outputs == {"cache-hit": ""} and cache.output == f"cache miss {key}", r.report()
            assert build.outcome == "success", r.report()
            assert [s.output for s in post] == [f"cache saved {key}: policy/venv"], r.report()
            saved.add(key)
        else:
            assert cache.outputs == {"cache-hit": "true"} and cache.output == f"cache hit {key}", r.report()
            assert build.outcome == "skipped" and not post, r.report()
    assert len(packs) > len(saved), "no job restored the pack's venv"
    assert all(len(k) == 1 for k in keys.values()), f"one revision, several keys: {keys}"


def test_report_the_recorded_calls(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a check: each job and its calls, with the run's time (printed by `make workflow-steps`)."""
    if not FULL:
        print(f"workflow steps: {len(run.records)} jobs in {run.seconds:.1f} s")  # shown by `pytest -s`
        return
    with capsys.disabled():
        print(f"\nworkflow steps ({'every matrix combination' if FULL else 'first matrix combination'}): "
              f"{len(run.records)} jobs in {run.seconds:.1f} s")
        for r in run.records:
            print(f"  {r.label} ({r.seconds:.1f} s)")
            for c in r.calls:
                if c["tool"] in ("actions/github-script", "actions/cache"):
                    argv = [a.split("=", 1)[0] + "=..." for a in c["argv"]]
                else:
                    argv = [str(a) for a in c["argv"]]
                print(f"      {c['tool']} {' '.join(argv)}"[:200])


def test_the_runner_fails_on_what_ci_would_fail_on(tmp_path: Path) -> None:
    """A made-up repository whose job uses a module, a make target, a file and a CLI it does not have, and a
    variable nobody configured: each is a failure here, as on GitHub (or worse there: an empty value)."""
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / "infra" / "tools").mkdir(parents=True)
    for init in ("infra/__init__.py", "infra/tools/__init__.py"):
        (repo / init).write_text("")
    (repo / "Makefile").write_text("present:\n\t@echo present\n")
    steps = [{"uses": "actions/checkout@v6", "with": {"persist-credentials": False}},
             {"name": "module", "run": "python3 -m infra.tools.budget_gatee --help"},
             {"name": "target", "if": "always()", "run": "make present && make absent"},
             {"name": "file", "if": "always()", "run": "cat policy/requirements.txt"},
             {"name": "cli", "if": "always()", "run": "pulumi whoami"}]
    doc = {"on": {"workflow_dispatch": {}}, "permissions": {},
           "jobs": {"j": {"runs-on": "ubuntu-24.04", "permissions": {"contents": "read"}, "steps": steps}}}
    (repo / ".github" / "workflows" / "t.yml").write_text(yaml.safe_dump(doc))
    unset = dict(doc, jobs={"j": {**doc["jobs"]["j"], "steps": [{"run": "echo '${{ vars.NOT_DOCUMENTED }}'"}]}})
    (repo / ".github" / "workflows" / "unset.yml").write_text(yaml.safe_dump(unset))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "t"], check=True)
    runner = Runner(repo=repo, sha=subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                                                  text=True).stdout.strip(),
                    tmp=tmp_path / "run", vars=StrictDict({}, "not documented"), environments=set(),
                    moto_url="http://127.0.0.1:9", cache_dir=tmp_path / "cache", dev_venv=Path(sys.prefix),
                    shared_build={})
    (r,) = runner.run_workflow("t.yml", "workflow_dispatch")
    assert r.status == "failure"
    assert "No module named infra.tools.budget_gatee" in r.step("module").output
    assert "present" in r.step("target").output and "No rule to make target 'absent'" in r.step("target").output
    assert "No such file or directory" in r.step("file").output
    assert "pulumi: command not found" in r.step("cli").output
    with pytest.raises(AssertionError, match=r"vars\.NOT_DOCUMENTED is not defined"):
        runner.run_workflow("unset.yml", "workflow_dispatch")


def test_the_runner_caches_like_actions_cache(tmp_path: Path) -> None:
    """actions/cache in the runner: the first job misses, builds and saves at its end; the next job with the key
    restores a copy and skips the build; a changed key misses; a failed job saves nothing (post-if: success());
    a job that writes in place into a restored file is caught (GitHub's entries are immutable)."""
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / "data.txt").write_text("one\n")
    steps = [{"uses": "actions/checkout@v6", "with": {"persist-credentials": False}},
             {"id": "cache", "uses": "actions/cache@v5",
              "with": {"path": "out", "key": "out-${{ runner.os }}-${{ hashFiles('data.txt') }}"}},
             {"name": "build", "if": "steps.cache.outputs.cache-hit != 'true'",
              "run": "mkdir out && cp data.txt out/copy"},
             {"name": "use", "run": "cat out/copy"},
             {"name": "fail", "if": "inputs.then == 'fail'", "run": "exit 1"},
             {"name": "tamper", "if": "inputs.then == 'tamper'", "run": "echo tampered >> out/copy"}]
    doc = {"on": {"workflow_dispatch": {"inputs": {"then": {"type": "string", "default": ""}}}}, "permissions": {},
           "jobs": {"j": {"runs-on": "ubuntu-24.04", "permissions": {"contents": "read"}, "steps": steps}}}
    (repo / ".github" / "workflows" / "t.yml").write_text(yaml.safe_dump(doc))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]

    def commit() -> str:
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "t"], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([*git, "init", "-q"], check=True)
    runner = Runner(repo=repo, sha=commit(), tmp=tmp_path / "run", vars=StrictDict({}, "not documented"),
                    environments=set(), moto_url="http://127.0.0.1:9", cache_dir=tmp_path / "cache",
                    dev_venv=Path(sys.prefix), shared_build={})

    def job(then: str = "") -> tuple[JobRecord, str]:
        (r,) = runner.run_workflow("t.yml", "workflow_dispatch", {"then": then})
        (cache,) = [s for s in r.steps if s.name == "actions/cache@v5"]
        return r, cache.outputs["cache-hit"]

    def ran(r: JobRecord) -> list[str]:
        return [s.name for s in r.steps if s.outcome != "skipped"]
    r, hit = job()
    assert (r.status, hit, r.step("use").output) == ("success", "", "one\n")
    assert ran(r) == ["actions/checkout@v6", "actions/cache@v5", "build", "use", "Post actions/cache@v5"]
    assert r.step("Post").output.startswith("cache saved out-Linux-")
    r, hit = job()
    assert (r.status, hit, r.step("use").output) == ("success", "true", "one\n")
    assert ran(r) == ["actions/checkout@v6", "actions/cache@v5", "use"]
    (repo / "data.txt").write_text("two\n")
    runner.sha = commit()
    r, hit = job("fail")
    assert (r.status, hit, r.step("Post").outcome) == ("failure", "", "skipped")
    r, hit = job()
    assert (r.status, hit, r.step("use").output) == ("success", "", "two\n") and "build" in ran(r)
    r, hit = job("tamper")
    assert (r.status, hit) == ("success", "true")
    with pytest.raises(AssertionError, match="changed after it was saved"):
        job()
