"""A small offline GitHub Actions runner for this repository's workflows (tests/test_workflow_steps.py).

What is real and what is simulated:
- Every job runs in its own clean clone of the commit under test (`git clone --shared` + checkout of HEAD): an
  untracked or ignored file of the developer's checkout cannot stand in for a missing one.
- `run:` steps (the workflows' and the composite action's) run in bash as on the runner (`bash -e {0}`, or
  `bash --noprofile --norc -eo pipefail {0}` for `shell: bash`), after `${{ }}` substitution from a context built
  like GitHub's (github, vars, inputs, matrix, env, steps.<id>.outputs/outcome, runner, job, needs). GITHUB_OUTPUT,
  GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY are files, read back after each step. Python, venvs, pip, make,
  git, jq and the project's modules are the real ones.
- `pulumi`, `aws`, `gh` and `curl` are recording stand-ins (tests/workflow_standin.py). `pulumi` is on PATH only
  after `pulumi/actions` ran (as on the runner); `aws`, `gh`, `curl`, `jq` are preinstalled on ubuntu-24.04.
  boto3 in the project's tools talks to a moto server (AWS_ENDPOINT_URL, set by the configure-aws stand-in).
- Third-party actions are simulated:
  checkout = the clean clone (`path:` a second clone, `ref:` checked out in it; the clone has full history, so
  `fetch-depth` is not simulated); setup-python = `python`/`python3` of this interpreter's version first on PATH,
  the version checked; cache of `.venv`, `build/cache`, `build/models` (the setup action's) = always a hit (see
  `restore_cache`: `.venv` is the dev venv's packages behind this job's own stamp files, `build/cache`/
  `build/models` the shared caches); cache of any other path = actions/cache's own semantics on a store of this
  run (`cache_store`): an exact key match restores what was saved and sets `cache-hit` to 'true' (the entry is
  moved in and back at the job's end; a job that changed it fails the next restore: entries are immutable); a
  miss leaves `cache-hit` empty, and the post step saves the paths under the key at the end of a successful job
  (an existing key is never overwritten); every `hashFiles` input must exist;
  configure-aws-credentials = role and Region checked, credentials and the moto endpoint exported to later steps;
  pulumi/actions = `pulumi-version-file` read and checked, the stand-in put on PATH; github-script = not executed,
  its script compiled by `node --check` inside an async function (as the action wraps it).
- The job's leftover processes are listed and killed at its end (the runner's "orphan processes" cleanup).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.artifacts.packaging import RUNTIME_PYTHON, runtime_python

STANDIN = Path(__file__).with_name("workflow_standin.py")
STEP_TIMEOUT_S = 900


class WorkflowError(AssertionError):
    """The workflow cannot run as written (missing file, action, expression context...)."""


# ------------------------------------------------------------------------------------------------ expressions
TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\],.*])"
                   r"|(?P<id>[A-Za-z_][A-Za-z0-9_-]*))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise WorkflowError(f"cannot parse expression {text!r} at {text[pos:]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def truthy(v: Any) -> bool:
    return v not in (None, False, 0, "") and v == v


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)


def to_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


class Expr:
    """Recursive descent over GitHub's expression grammar (the subset these workflows use, strictly)."""

    def __init__(self, text: str, ctx: dict[str, Any], functions: dict[str, Callable[..., Any]]):
        self.toks, self.i, self.ctx, self.fns, self.text = _tokens(text), 0, ctx, functions, text

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks) or (want is not None and self.toks[self.i][1] != want):
            raise WorkflowError(f"expression {self.text!r}: expected {want!r}")
        self.i += 1
        return self.toks[self.i - 1]

    def value(self) -> Any:
        v = self.or_()
        if self.i != len(self.toks):
            raise WorkflowError(f"expression {self.text!r}: unexpected {self.peek()!r}")
        return v

    def or_(self) -> Any:
        v = self.and_()
        while self.peek() == "||":
            self.take()
            rhs = self.and_()
            v = v if truthy(v) else rhs
        return v

    def and_(self) -> Any:
        v = self.cmp()
        while self.peek() == "&&":
            self.take()
            rhs = self.cmp()
            v = rhs if truthy(v) else v
        return v

    def cmp(self) -> Any:
        v = self.unary()
        while self.peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self.take()[1]
            rhs = self.unary()
            v = {"==": _eq(v, rhs), "!=": not _eq(v, rhs), "<": v < rhs, ">": v > rhs, "<=": v <= rhs,
                 ">=": v >= rhs}[op]
        return v

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, tok = self.take()
        if tok == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return float(tok)
        if kind != "id":
            raise WorkflowError(f"expression {self.text!r}: unexpected {tok!r}")
        if tok in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok]
        if self.peek() == "(":
            self.take("(")
            args = []
            while self.peek() != ")":
                args.append(self.or_())
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
            if tok not in self.fns:
                raise WorkflowError(f"expression {self.text!r}: function {tok}() is not simulated")
            return self.fns[tok](*args)
        if tok not in self.ctx:
            raise WorkflowError(f"expression {self.text!r}: no context {tok!r} here")
        v: Any = self.ctx[tok]
        path = tok
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                name = self.take()[1]
            else:
                name = to_str(self.or_())
                self.take("]")
            path += f".{name}"
            v = _member(v, name, path)
        return v


def _member(v: Any, name: str, path: str) -> Any:
    if isinstance(v, StrictDict):
        return v.get_strict(name, path)
    return v.get(name) if isinstance(v, dict) else None


class StrictDict(dict[str, Any]):
    """A context whose unknown keys are an error (vars: a variable nobody configured is empty on GitHub)."""

    def __init__(self, data: dict[str, Any], why: str):
        super().__init__(data)
        self.why = why

    def get_strict(self, name: str, path: str) -> Any:
        if name not in self:
            raise WorkflowError(f"{path} is not defined: {self.why}")
        return self[name]


EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def substitute(text: str, ctx: dict[str, Any], fns: dict[str, Callable[..., Any]]) -> str:
    return EXPR.sub(lambda m: to_str(Expr(m.group(1), ctx, fns).value()), text)


def evaluate(value: Any, ctx: dict[str, Any], fns: dict[str, Callable[..., Any]]) -> Any:
    """A `with:`/`env:` value: a whole-expression string keeps its type, others are interpolated."""
    if isinstance(value, str):
        m = EXPR.fullmatch(value.strip())
        if m and value.count("${{") == 1:
            return Expr(m.group(1), ctx, fns).value()
        return substitute(value, ctx, fns)
    if isinstance(value, dict):
        return {k: evaluate(v, ctx, fns) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, ctx, fns) for v in value]
    return value


def condition(text: Any, ctx: dict[str, Any], fns: dict[str, Callable[..., Any]]) -> bool:
    if text is None:
        return bool(fns["success"]())
    if isinstance(text, bool):
        return text
    text = str(text).strip()
    m = EXPR.fullmatch(text)
    expr = m.group(1) if m else text
    names = {t[1] for t in _tokens(expr) if t[0] == "id"}
    if not names & {"always", "success", "failure", "cancelled"}:
        expr = f"success() && ({expr})"
    return truthy(Expr(expr, ctx, fns).value())


def expression_functions(ctx: dict[str, Any], ws: Path | None) -> dict[str, Callable[..., Any]]:
    """The expression functions, `hashFiles` over the job's workspace `ws`."""
    def hash_files(*patterns: str) -> str:
        if ws is None:
            raise WorkflowError("hashFiles() outside a job")
        h = hashlib.sha256()
        for p in patterns:
            files = sorted(f for f in ws.glob(p) if f.is_file())
            if not files:
                raise WorkflowError(f"hashFiles('{p}'): no such file in the checkout")
            for f in files:
                h.update(f.read_bytes())
        return h.hexdigest()

    status = lambda: ctx["job"]["status"]  # noqa: E731
    return {"always": lambda: True, "success": lambda: status() == "success",
            "failure": lambda: status() == "failure", "cancelled": lambda: False, "hashFiles": hash_files,
            "contains": lambda a, b: (to_str(b).lower() in to_str(a).lower()) if isinstance(a, str)
            else b in (a or []),
            "startsWith": lambda a, b: to_str(a).lower().startswith(to_str(b).lower()),
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: to_str(a[int(m.group(1))]), f)}


# ------------------------------------------------------------------------------------------------------ runner
@dataclass
class StepRecord:
    name: str
    outcome: str  # success | failure | skipped
    output: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # what it wrote to GITHUB_OUTPUT


@dataclass
class JobRecord:
    workflow: str
    job: str
    matrix: dict[str, Any]
    inputs: dict[str, Any]
    workspace: Path
    status: str = "success"
    steps: list[StepRecord] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        m = ",".join(f"{k}={v}" for k, v in self.matrix.items())
        return f"{self.workflow}:{self.job}" + (f"[{m}]" if m else "")

    def step(self, needle: str) -> StepRecord:
        found = [s for s in self.steps if needle in s.name]
        if len(found) != 1:
            raise AssertionError(f"{self.label}: {len(found)} steps named like {needle!r}: "
                                 f"{[s.name for s in self.steps]}")
        return found[0]

    def report(self) -> str:
        lines = [f"{self.label}: {self.status} in {self.seconds:.1f} s"]
        for s in self.steps:
            lines.append(f"  [{s.outcome}] {s.name}")
            if s.outcome == "failure":
                lines += ["      " + ln for ln in s.output.splitlines()[-40:]]
        for c in self.calls:
            lines.append(f"    call: {c['tool']} {' '.join(c['argv'])}")
        return "\n".join(lines)


@dataclass
class Runner:
    """Runs workflows of the commit `sha` of the repository `repo` offline."""

    repo: Path
    sha: str
    tmp: Path
    vars: StrictDict
    environments: set[str]
    moto_url: str
    cache_dir: Path  # the jobs' workspace, setup-python's interpreters and the actions/cache store of one run
    dev_venv: Path  # the venv a cache hit restores (its packages, not its stamp files)
    shared_build: dict[str, Path]  # build/cache, build/models: what a cache hit restores
    prepare_workspace: Callable[[Path], None] = lambda ws: None
    # A venv built from policy/requirements.txt by the workflows' own two commands (the policy pack test's,
    # tests/test_policy_pack.py: built there, or waited for under its lock, when the first job needs it): a miss
    # of the `policy/venv` cache leaves a copy of it there (when it was built from this checkout's file), so one
    # session does not build the same venv twice. The job's build step still runs `python -m venv` and
    # `pip install -r` on it, and the post step saves the result.
    seed_policy_venv: Callable[[], Path] | None = None
    standin_env: dict[str, str] = field(default_factory=dict)  # WORKFLOW_* data the stand-ins answer from
    full_matrix: bool = True  # False: the first combination of each matrix only (every job still runs)
    records: list[JobRecord] = field(default_factory=list)
    # The current job's actions/cache post steps: (step label, key, paths) of each cache step that missed; and the
    # entries it restored: (key, paths), moved back into the store at its end.
    cache_posts: list[tuple[str, str, list[str]]] = field(default_factory=list, init=False)
    cache_lent: list[tuple[str, list[str]]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # actions/cache's store, empty at the start of each run: the first job with a key misses, as on a
        # repository whose cache holds no entry for it yet.
        self.cache_store = self.cache_dir / "actions-cache"
        shutil.rmtree(self.cache_store, ignore_errors=True)
        self.cache_store.mkdir(parents=True)
        self.cache_manifests: dict[str, str] = {}
        self.bin_tools = self.tmp / "bin-runner"  # preinstalled on the runner image
        self.bin_pulumi = self.tmp / "bin-pulumi"  # installed by pulumi/actions
        # setup-python: at a fixed path, like the runner's tool cache (a kept venv links to its interpreter).
        self.bin_python = self.cache_dir / "bin-python"
        for d, tools in ((self.bin_tools, ("aws", "gh", "curl")), (self.bin_pulumi, ("pulumi",))):
            d.mkdir(parents=True, exist_ok=True)
            for t in tools:
                (d / t).write_text(f"#!/bin/sh\nexec {base_python()} {STANDIN} {t} \"$@\"\n")
                (d / t).chmod(0o755)
        self.bin_python.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            link = self.bin_python / name
            if not link.exists():
                link.symlink_to(base_python())
        if not shutil.which("jq"):
            raise WorkflowError("jq is preinstalled on ubuntu-24.04 runners; install it here (apt-get install jq)")
        self.system_path = ":".join(p for p in os.environ["PATH"].split(":")
                                    if p and Path(p).resolve() != Path(sys.executable).parent.resolve()
                                    and "pyenv/shims" not in p)

    # ------------------------------------------------------------------------------------------ workflows
    def run_workflow(self, name: str, event: str, inputs: dict[str, Any] | None = None) -> list[JobRecord]:
        ws0 = self.clone(self.tmp / f"wf-{name}")
        doc = yaml.safe_load((ws0 / ".github" / "workflows" / name).read_text())
        on = doc.get(True, doc.get("on"))  # YAML 1.1 reads `on` as True
        if event not in on:
            raise WorkflowError(f"{name} is not triggered by {event}")
        trigger = on.get(event)
        spec = (trigger.get("inputs") if isinstance(trigger, dict) else None) or {}
        got = dict(inputs or {})
        unknown = set(got) - set(spec)
        if unknown:
            raise WorkflowError(f"{name}: no inputs {sorted(unknown)}")
        for k, s in spec.items():
            if k not in got:
                if s.get("required"):
                    raise WorkflowError(f"{name}: input {k} is required")
                got[k] = s.get("default", "")
            if s.get("type") == "choice" and got[k] not in s["options"]:
                raise WorkflowError(f"{name}: input {k}={got[k]!r} is not one of {s['options']}")
        github = self.github(event, name)
        return self.run_jobs(name, doc, StrictDict(got, f"{name} has no such input") if event != "push" else {},
                             github, caller_perms=None)

    def github(self, event: str, workflow: str) -> dict[str, Any]:
        return {"event_name": event, "sha": self.sha, "ref": "refs/heads/main", "repository": "akidb/observability",
                "repository_owner": "akidb", "actor": "octocat",
                "run_id": str(4242 + len({r.workflow for r in self.records})), "run_attempt": "1",
                "server_url": "https://github.com", "workflow": workflow, "workspace": "",
                "event": {"pull_request": {"number": 7}} if event == "pull_request" else {}}

    def run_jobs(self, wf: str, doc: dict[str, Any], inputs: dict[str, Any], github: dict[str, Any],
                 caller_perms: dict[str, str] | None) -> list[JobRecord]:
        jobs: dict[str, Any] = doc["jobs"]
        order: list[str] = []
        while len(order) < len(jobs):
            ready = [j for j in jobs if j not in order and all(n in order for n in _list(jobs[j].get("needs")))]
            if not ready:
                raise WorkflowError(f"{wf}: a `needs` cycle or an unknown job among {list(jobs)}")
            order += ready
        out: list[JobRecord] = []
        results: dict[str, str] = {}
        for job_id in order:
            job = jobs[job_id]
            if caller_perms is not None:
                over = {k: v for k, v in (job.get("permissions") or {}).items()
                        if not (v == "read" and caller_perms.get(k) in ("read", "write")) and caller_perms.get(k) != v}
                if over:
                    raise WorkflowError(f"{wf}:{job_id} asks for {over} beyond its caller's {caller_perms}")
            if any(results.get(n) != "success" for n in _list(job.get("needs"))):
                results[job_id] = "skipped"
                continue
            recs: list[JobRecord] = []
            combos = list(_matrix(job))
            for matrix in combos if self.full_matrix else combos[:1]:
                ctx = self.context(github, inputs, matrix, {}, {}, {"status": "success"})
                if "uses" in job:
                    recs += self.call_workflow(wf, job_id, job, ctx)
                else:
                    recs.append(self.run_job(wf, job_id, job, github, inputs, matrix))
            out += recs
            results[job_id] = "success" if all(r.status == "success" for r in recs) else "failure"
        return out

    def call_workflow(self, wf: str, job_id: str, job: dict[str, Any], ctx: dict[str, Any]) -> list[JobRecord]:
        uses = job["uses"]
        if not uses.startswith("./.github/workflows/"):
            raise WorkflowError(f"{wf}:{job_id}: only local reusable workflows are simulated ({uses})")
        called = yaml.safe_load((self.clone(self.tmp / f"wf-{wf}") / uses[2:]).read_text())
        spec = (called.get(True, called.get("on")) or {}).get("workflow_call", {}).get("inputs", {})
        given = evaluate(job.get("with") or {}, ctx, expression_functions(ctx, None))
        unknown = set(given) - set(spec)
        if unknown:
            raise WorkflowError(f"{wf}:{job_id}: {uses} has no inputs {sorted(unknown)}")
        inputs = {}
        for k, s in spec.items():
            if k in given:
                inputs[k] = given[k]
            elif s.get("required"):
                raise WorkflowError(f"{wf}:{job_id}: {uses} needs input {k}")
            else:
                inputs[k] = s.get("default", "")
        return self.run_jobs(Path(uses).name, called, StrictDict(inputs, f"{uses} declares no such input"),
                             ctx["github"], caller_perms=job.get("permissions") or {})

    def context(self, github: dict[str, Any], inputs: dict[str, Any], matrix: dict[str, Any],
                env: dict[str, str], steps: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        return {"github": github, "vars": self.vars, "inputs": inputs, "matrix": matrix, "env": env, "steps": steps,
                "runner": {"os": "Linux", "arch": "X64", "temp": ""}, "job": job, "secrets": {}, "needs": {}}

    # ----------------------------------------------------------------------------------------------- jobs
    def clone(self, dest: Path, ref: str | None = None) -> Path:
        if not dest.exists():
            subprocess.run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(self.repo), str(dest)],
                           check=True, capture_output=True)
            subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", ref or self.sha],
                           cwd=dest, check=True, capture_output=True, text=True)
            # The deploy workflows run on main: the commit under test is main's head (a pull request's
            # `git fetch origin main` still fetches the real main).
            subprocess.run(["git", "update-ref", "refs/remotes/origin/main", self.sha], cwd=dest, check=True)
            self.prepare_workspace(dest)
        return dest

    def run_job(self, wf: str, job_id: str, job: dict[str, Any], github: dict[str, Any], inputs: dict[str, Any],
                matrix: dict[str, Any]) -> JobRecord:
        started = time.monotonic()
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{wf}-{job_id}-{'-'.join(map(to_str, matrix.values()))}-"
                                              f"{len(self.records)}")
        jobdir = self.tmp / "jobs" / slug
        # Every job runs at the same absolute path, as on a runner, so a cached venv restored there still works.
        ws = self.cache_dir / "ws"
        if ws.exists():
            shutil.rmtree(ws)
        self.clone(ws)
        self.cache_posts, self.cache_lent = [], []
        temp = jobdir / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        rec = JobRecord(workflow=wf, job=job_id, matrix=matrix, inputs=dict(inputs), workspace=ws)
        self.records.append(rec)
        log = temp / "standin.jsonl"
        perms = job.get("permissions") or {}
        tag = uuid.uuid4().hex
        env: dict[str, str] = {
            "PATH": f"{self.bin_tools}:{self.system_path}", "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(ws),
            "GITHUB_SHA": self.sha, "GITHUB_REF": github["ref"], "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_RUN_ID": github["run_id"], "GITHUB_RUN_ATTEMPT": github["run_attempt"],
            "GITHUB_ACTOR": github["actor"], "GITHUB_SERVER_URL": github["server_url"],
            "GITHUB_EVENT_NAME": github["event_name"], "RUNNER_OS": "Linux", "RUNNER_TEMP": str(temp),
            "WORKFLOW_STANDIN_LOG": str(log), "WORKFLOW_SIM_JOB": tag, **self.standin_env,
        }
        if "PIP_CONFIG_FILE" in os.environ:
            env["PIP_CONFIG_FILE"] = os.environ["PIP_CONFIG_FILE"]
        if perms.get("id-token") == "write":
            env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "stand-in-request-token"
            env["ACTIONS_ID_TOKEN_REQUEST_URL"] = "https://pipelines.actions.githubusercontent.com/idtoken?api-version=2"
        steps: dict[str, Any] = {}
        jobstate = {"status": "success"}
        ctx = self.context({**github, "workspace": str(ws)}, inputs, matrix, env, steps, jobstate)
        ctx["runner"]["temp"] = str(temp)
        fns = expression_functions(ctx, ws)
        envname = job.get("environment")
        if envname is not None:
            name = to_str(evaluate(envname if isinstance(envname, str) else envname["name"], ctx, fns))
            if name not in self.environments:
                raise WorkflowError(f"{wf}:{job_id}: environment {name!r} is not a documented environment "
                                    f"({sorted(self.environments)})")
        env.update({k: to_str(v) for k, v in evaluate(job.get("env") or {}, ctx, fns).items()})
        try:
            self.run_steps(rec, job.get("steps") or [], ctx, fns, env, ws, temp, perms, prefix="")
            # Post steps, last first: actions/cache's runs on success only (its action.yml: `post-if: success()`).
            for label, key, paths in reversed(self.cache_posts):
                if jobstate["status"] != "success":
                    rec.steps.append(StepRecord(f"Post {label}", "skipped"))
                    continue
                rec.steps.append(StepRecord(f"Post {label}", "success", self.cache_save(ws, key, paths)))
        finally:
            rec.leftovers = _kill_tagged(tag)
            for key, paths in self.cache_lent:  # restored entries go back, checked at their next restore
                for p in paths:
                    if (ws / p).exists() or (ws / p).is_symlink():
                        (ws / p).rename(self.cache_entry(key) / p)
            if log.exists():
                rec.calls = [json.loads(line) for line in log.read_text().splitlines()]
            rec.status = jobstate["status"]
            rec.seconds = time.monotonic() - started
            ws.rename(jobdir / "ws")
            rec.workspace = jobdir / "ws"
        return rec

    def cache_entry(self, key: str) -> Path:
        return self.cache_store / hashlib.sha256(key.encode()).hexdigest()[:24]

    def cache_restore(self, ws: Path, label: str, key: str, paths: list[str], outputs: dict[str, str]) -> str:
        """actions/cache's main step: an exact key match restores the saved paths; a miss leaves `cache-hit` empty
        (restore-keys are not simulated) and schedules the save for the end of the job."""
        entry = self.cache_entry(key)
        for p in paths:
            if Path(p).is_absolute() or ".." in Path(p).parts or any(c in p for c in "*?[!"):
                raise WorkflowError(f"actions/cache path {p!r}: only plain paths in the workspace are simulated")
            if (ws / p).exists() or (ws / p).is_symlink():
                raise WorkflowError(f"actions/cache: {p} exists before its restore (extracting over it is not "
                                    "simulated)")
        if entry.is_dir():
            # The entry itself is moved into the workspace (a copy of a venv's ~25k files costs ~3 s of CPU) and
            # back at the job's end; a job that changed anything in it (GitHub's entries are immutable, a job
            # only changes its own copy) is caught here, at the next restore.
            if _manifest(entry, paths) != self.cache_manifests[key]:
                raise WorkflowError(f"the cache entry {key} changed after it was saved: a job changed its restored "
                                    "copy, which the runner does not simulate (entries are immutable on GitHub)")
            for p in paths:
                if (entry / p).exists() or (entry / p).is_symlink():
                    (ws / p).parent.mkdir(parents=True, exist_ok=True)
                    (entry / p).rename(ws / p)
            self.cache_lent.append((key, paths))
            outputs["cache-hit"] = "true"
            return f"cache hit {key}"
        outputs["cache-hit"] = ""
        self.cache_posts.append((label, key, paths))
        if "policy/venv" in paths and self.seed_policy_venv is not None:
            seed = self.seed_policy_venv()
            if _seed_matches(seed, ws):
                (ws / "policy").mkdir(exist_ok=True)
                subprocess.run(["cp", "-a", str(seed), str(ws / "policy" / "venv")], check=True)  # C: ~30% less CPU
                _relocate_scripts(seed, ws / "policy" / "venv")
        return f"cache miss {key}"

    def cache_save(self, ws: Path, key: str, paths: list[str]) -> str:
        """actions/cache's post step after a miss: the paths as they are at the end of the job, under the key,
        unless another job saved that key meanwhile (an entry is never overwritten)."""
        entry = self.cache_entry(key)
        if entry.exists():
            return f"cache entry {key} exists already: not saved"
        there = [p for p in paths if (ws / p).exists()]
        if not there:
            return f"none of {paths} exists: nothing saved"
        tmp = entry.with_name(entry.name + ".saving")
        for p in there:
            (tmp / p).parent.mkdir(parents=True, exist_ok=True)
            (ws / p).rename(tmp / p)  # the workspace is discarded after the job (kept for the checks: without it)
        tmp.rename(entry)
        self.cache_manifests[key] = _manifest(entry, paths)
        return f"cache saved {key}: {' '.join(there)}"

    def run_steps(self, rec: JobRecord, steps: list[dict[str, Any]], ctx: dict[str, Any],
                  fns: dict[str, Callable[..., Any]], env: dict[str, str], ws: Path, temp: Path,
                  perms: dict[str, str], prefix: str) -> None:
        for n, step in enumerate(steps):
            label = prefix + str(step.get("name") or step.get("uses") or str(step.get("run", "")).splitlines()[0])
            if not condition(step.get("if"), ctx, fns):
                rec.steps.append(StepRecord(label, "skipped"))
                if "id" in step:
                    ctx["steps"][step["id"]] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue
            step_env = {**env, **{k: to_str(v) for k, v in evaluate(step.get("env") or {}, ctx, fns).items()}}
            outputs: dict[str, str] = {}
            try:
                if "uses" in step:
                    output = self.action(rec, step, ctx, fns, step_env, env, ws, temp, perms, outputs, label)
                else:
                    output = self.shell(step, ctx, fns, step_env, env, ws, temp, outputs, n)
                outcome = "success"
            except StepFailed as e:
                output, outcome = str(e), "failure"
            rec.steps.append(StepRecord(label, outcome, output, outputs))
            conclusion = "success" if outcome == "failure" and step.get("continue-on-error") else outcome
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": outputs, "outcome": outcome, "conclusion": conclusion}
            if conclusion == "failure":
                ctx["job"]["status"] = "failure"

    def shell(self, step: dict[str, Any], ctx: dict[str, Any], fns: dict[str, Callable[..., Any]],
              step_env: dict[str, str], env: dict[str, str], ws: Path, temp: Path, outputs: dict[str, str],
              n: int) -> str:
        script = substitute(str(step["run"]), ctx, fns)
        # `make test` inside a job would run this test again: a dry run proves the target and what it needs exist.
        script = re.sub(r"(?m)^(\s*)make test\s*$", r"\1make -n test", script)
        shell = step.get("shell")
        argv = {None: ["bash", "-e"], "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"]}.get(shell)
        if argv is None:
            raise WorkflowError(f"shell {shell!r} is not simulated")
        files = {k: temp / f"{k.lower()}-{uuid.uuid4().hex[:8]}" for k in
                 ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
        for f in files.values():
            f.touch()
        path = temp / f"step-{uuid.uuid4().hex[:8]}.sh"
        path.write_text(script)
        cwd = ws / step["working-directory"] if "working-directory" in step else ws
        proc = subprocess.run([*argv, str(path)], cwd=cwd, env={**step_env, **{k: str(v) for k, v in files.items()}},
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=STEP_TIMEOUT_S)
        outputs.update(_kv_file(files["GITHUB_OUTPUT"]))
        env.update(_kv_file(files["GITHUB_ENV"]))
        for p in files["GITHUB_PATH"].read_text().splitlines():
            env["PATH"] = f"{p}:{env['PATH']}"
        summary = files["GITHUB_STEP_SUMMARY"].read_text()
        out = proc.stdout + (f"\n[step summary]\n{summary}" if summary else "")
        if proc.returncode != 0:
            raise StepFailed(f"exit {proc.returncode}\n$ {script}\n{out}")
        return out

    # -------------------------------------------------------------------------------------------- actions
    def action(self, rec: JobRecord, step: dict[str, Any], ctx: dict[str, Any], fns: dict[str, Callable[..., Any]],
               step_env: dict[str, str], env: dict[str, str], ws: Path, temp: Path, perms: dict[str, str],
               outputs: dict[str, str], label: str) -> str:
        uses: str = step["uses"]
        args = {k: to_str(v) for k, v in evaluate(step.get("with") or {}, ctx, fns).items()}
        log = Path(env["WORKFLOW_STANDIN_LOG"])
        if uses.startswith("./"):
            return self.composite(rec, ws / uses[2:], args, ctx, step_env, env, ws, temp, perms, label)
        action = uses.split("@", 1)[0]
        _log(log, action, args)
        if action == "actions/checkout":
            if args.get("persist-credentials") != "false":
                raise StepFailed("checkout persists the token in .git/config: set persist-credentials: false")
            if "path" in args:
                self.clone(ws / args["path"], args.get("ref") or None)
            elif args.get("ref"):
                try:
                    subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", args["ref"]],
                                   cwd=ws, check=True, capture_output=True, text=True)
                except subprocess.CalledProcessError as e:
                    raise StepFailed(f"checkout of {args['ref']!r}: {e.stderr}") from None
                self.prepare_workspace(ws)
            return f"checked out {args.get('ref') or self.sha} into {args.get('path', '.')}"
        if action == "actions/setup-python":
            # One version a line; the last is the default `python` (setup-python's "Specifying multiple Python
            # and PyPy versions"): this interpreter's. Another may be the Lambda runtime's only (zip_runtime
            # finds one here), linked as python3.X beside it.
            want = str(args.get("python-version", "")).split()
            have = f"{sys.version_info.major}.{sys.version_info.minor}"
            if not want or want[-1] != have:
                raise WorkflowError(f"setup-python {' '.join(want)}: this machine simulates the default one with "
                                    f"Python {have}")
            for other in want[:-1]:
                if other != RUNTIME_PYTHON:
                    raise WorkflowError(f"setup-python {other}: this machine simulates Python {have} and the "
                                        f"Lambda runtime's {RUNTIME_PYTHON} only")
                link = self.bin_python / f"python{other}"
                if not link.exists():
                    link.symlink_to(runtime_python())
            env["PATH"] = f"{self.bin_python}:{env['PATH']}"
            return f"python {' '.join(want)} on PATH"
        if action == "actions/cache":
            # Its key was evaluated with the other inputs: every file it hashes exists in the checkout.
            paths, key = args.get("path", "").split(), args.get("key", "")
            if not paths or not key:
                raise WorkflowError(f"actions/cache needs a path and a key, got {args}")
            simulated = [p for p in paths if p == ".venv" or p in self.shared_build]
            if simulated and len(simulated) == len(paths):
                for p in paths:
                    self.restore_cache(ws, p)
                outputs["cache-hit"] = "true"
                return f"cache hit {key}"
            if simulated or set(args) - {"path", "key"}:
                raise WorkflowError(f"actions/cache of {paths} with {sorted(args)}: only a path list and a key are "
                                    f"simulated, and {simulated} only on their own")
            return self.cache_restore(ws, label, key, paths, outputs)
        if action == "aws-actions/configure-aws-credentials":
            if perms.get("id-token") != "write":
                raise StepFailed("configure-aws-credentials with a role needs `id-token: write`")
            if not args.get("role-to-assume", "").startswith("arn:aws:iam::") or not args.get("aws-region"):
                raise StepFailed(f"configure-aws-credentials: bad role or Region {args}")
            env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
                       AWS_REGION=args["aws-region"], AWS_DEFAULT_REGION=args["aws-region"],
                       AWS_ENDPOINT_URL=self.moto_url)
            return f"assumed {args['role-to-assume']}"
        if action == "pulumi/actions":
            vf = ws / args.get("pulumi-version-file", "")
            if not vf.is_file() or not re.fullmatch(r"\d+\.\d+\.\d+\s*", vf.read_text()):
                raise StepFailed(f"pulumi/actions: pulumi-version-file {vf.name} missing or not a version")
            env["PATH"] = f"{self.bin_pulumi}:{env['PATH']}"
            return f"pulumi {vf.read_text().strip()} (stand-in) on PATH"
        if action == "actions/github-script":
            node = shutil.which("node")
            if not node:
                return "github-script: node is not installed here, the script's syntax was NOT checked"
            src = temp / f"script-{uuid.uuid4().hex[:8]}.js"
            src.write_text(f"(async function(github, context, core, require) {{\n{args['script']}\n}});\n")
            proc = subprocess.run([node, "--check", str(src)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise StepFailed(f"github-script: the script does not compile:\n{proc.stderr}")
            return "github-script: compiled (node --check), not executed"
        raise WorkflowError(f"action {uses} is not simulated")

    def composite(self, rec: JobRecord, path: Path, args: dict[str, str], ctx: dict[str, Any], step_env: dict[str, str],
                  env: dict[str, str], ws: Path, temp: Path, perms: dict[str, str], label: str) -> str:
        meta = path / "action.yml"
        if not meta.is_file():
            raise StepFailed(f"local action {path.relative_to(ws)} has no action.yml in the checkout")
        doc = yaml.safe_load(meta.read_text())
        spec = doc.get("inputs") or {}
        unknown = set(args) - set(spec)
        if unknown:
            raise WorkflowError(f"{path.name}: no inputs {sorted(unknown)}")
        inputs = {k: args.get(k, to_str(s.get("default", ""))) for k, s in spec.items()}
        inner = {**ctx, "inputs": StrictDict(inputs, f"{path.name} declares no such input"), "steps": {}}
        inner_fns = expression_functions(inner, ws)
        before = len(rec.steps)
        self.run_steps(rec, doc["runs"]["steps"], inner, inner_fns, env, ws, temp, perms, prefix=f"{label} > ")
        if any(s.outcome == "failure" for s in rec.steps[before:]):
            ctx["job"]["status"] = inner["job"]["status"]
            raise StepFailed(f"composite {path.name} failed")
        return f"composite {path.name}: {len(rec.steps) - before} steps"

    def restore_cache(self, ws: Path, rel: str) -> None:
        """A cache hit of `rel`. `.venv`: a venv of its own (in the job's checkout, so nothing a job does to it can
        reach the shared dev venv) that sees the dev venv's installed packages through a .pth file (without its
        editable install: the checkout's own modules are found from the working directory, as in CI), with
        the console scripts copied and pointed at it, and the dev venv's stamp files, as old as a restored
        archive's. build/*: the shared caches (symlinks)."""
        dest = ws / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel == ".venv":
            subprocess.run([base_python(), "-m", "venv", "--without-pip", str(dest)], check=True)
            site = self.dev_venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
            mine = dest / "lib" / site.parent.name / "site-packages"
            (mine / "_restored_cache.py").write_text(
                "import os, site, sys\n"
                f"SITE = {str(site)!r}\n"
                "sys.path.append(SITE)\n"
                "for name in sorted(os.listdir(SITE)):\n"
                "    if name.endswith('.pth') and not name.startswith('__editable__'):\n"
                "        site.addpackage(SITE, name, set(sys.path))\n")
            (mine / "_restored_cache.pth").write_text("import _restored_cache\n")
            shebang = f"#!{self.dev_venv}/bin/python".encode()
            for f in (self.dev_venv / "bin").iterdir():
                target = dest / "bin" / f.name
                if target.exists() or target.is_symlink() or f.is_dir():
                    continue  # the venv's own python and activate scripts
                head = f.read_bytes()[:256]
                if head.startswith(shebang):
                    target.write_bytes(f"#!{dest}/bin/python".encode() + f.read_bytes()[len(shebang):])
                    target.chmod(0o755)
                else:
                    target.symlink_to(f)  # native binaries (ruff, uv): never rewritten by a no-op `make venv`
            old = time.time() - 86400
            for stamp in (".plan-installed", ".installed", ".policy-sdk"):
                if (self.dev_venv / stamp).exists():
                    (dest / stamp).touch()
                    os.utime(dest / stamp, (old, old))
            return
        if rel not in self.shared_build:
            raise WorkflowError(f"cache path {rel} is not simulated")
        if dest.is_symlink() or dest.exists():
            return
        dest.symlink_to(self.shared_build[rel])


def _manifest(entry: Path, paths: list[str]) -> str:
    """A digest of the path, type, size and modification time of each of `paths` in `entry` and everything under
    them (what adding, removing or writing a file changes; not the folders above them, which moving the paths
    out and back changes). find(1): a Python walk of a venv's ~25k files costs ~0.9 s of CPU, find ~0.2 s."""
    h = hashlib.sha256()
    for p in paths:
        out = subprocess.run(["find", str(entry / p), "-printf", r"%P\t%y\t%s\t%T@\n"], capture_output=True).stdout
        h.update(f"{p}\n".encode() + b"".join(sorted(out.splitlines(keepends=True))))
    return h.hexdigest()


def _seed_matches(seed: Path, ws: Path) -> bool:
    """The seed was built from exactly this checkout's policy/requirements.txt (its .complete marker holds the file
    it was built from)."""
    done = seed / ".complete"
    req = ws / "policy" / "requirements.txt"
    return done.is_file() and req.is_file() and done.read_text() == req.read_text()


def _relocate_scripts(seed: Path, venv: Path) -> None:
    """The copied venv's console scripts (pip among them) name their interpreter by absolute path: pointed at the
    copy's, so the job's `policy/venv/bin/pip` installs into the copy, as into a venv built there."""
    shebang = f"#!{seed}/bin/".encode()
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(shebang):
            script.write_bytes(f"#!{venv}/bin/".encode() + data[len(shebang):])


class StepFailed(Exception):
    """A step exited non-zero (its output is the message)."""


def base_python() -> str:
    """The interpreter setup-python would provide: this venv's base Python (not the venv)."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")


def _list(v: Any) -> list[str]:
    return [] if v is None else [v] if isinstance(v, str) else list(v)


def _matrix(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    m = (job.get("strategy") or {}).get("matrix")
    if not m:
        yield {}
        return
    if set(m) & {"include", "exclude"}:
        raise WorkflowError("matrix include/exclude is not simulated")
    keys = list(m)
    for combo in itertools.product(*(m[k] for k in keys)):
        yield dict(zip(keys, combo, strict=True))


def _kv_file(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV: `k=v` lines and `k<<DELIM` heredocs."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


def _log(log: Path, tool: str, args: dict[str, str]) -> None:
    with log.open("a") as f:
        f.write(json.dumps({"tool": tool, "argv": [f"{k}={v}" for k, v in args.items()], "cwd": "", "env": {}})
                + "\n")


def _kill_tagged(tag: str) -> list[str]:
    """Processes a job left running (they carry its WORKFLOW_SIM_JOB tag): listed, then killed."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if f"WORKFLOW_SIM_JOB={tag}".encode() in environ.split(b"\0"):
            found.append(f"{proc.name}: {cmdline}")
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)
    return found
