"""A function run as Lambda runs it: its built zip extracted, imported by a fresh interpreter of the runtime's
Python (RUNTIME_PYTHON, 3.12) whose path holds the zip and what the runtime itself provides (the AWS SDK for
Python: boto3 and its dependencies), nothing else: no site-packages, no source tree, no PYTHONPATH. A module, a
vendored wheel or a file the zip lacks fails the function here as it fails in Lambda (AWS Lambda "Building with
Python": the runtime includes the SDK; everything else comes from the deployment package).

`ZipProcess(root, "pkg.handler")` starts it (a warm container: its module state stays between invocations);
`invoke(event, function=..., fault=...)` is one invocation, optionally with one AWS fault injected at the call
numbered `at` among the function's AWS calls of this invocation: `fail` (the call raises as a throttled API does)
or `die` (the invocation's time runs out right before it; see RUNTIME). The function's stdout (its log lines)
goes to a log file; each invocation returns its own lines, its result, its AWS calls, wall and CPU time and the
process's peak RSS (what the function's memory size limits).
The one runtime loop of the repository: the drill (the anomaly detector), the tests of every function's zip,
the exactly-once interleavings (tests/exactly_once.py) and infra/tools/lambda_pool.py's concurrent workers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from infra.artifacts.packaging import build_lambda, runtime_python
from infra.core.paths import BUILD_DIR

# What the Lambda Python runtime brings besides the standard library (AWS Lambda "Lambda runtimes").
RUNTIME_DISTRIBUTIONS = ("boto3",)

# The runtime loop: one JSON request per line in, one JSON result per line out. As in Lambda, the function's
# stdout is its log, here the log file (stderr's); the results travel on the pipe given as stdout, kept apart
# before anything is imported. A request may carry one fault for its invocation, at the AWS call numbered `at`
# (botocore's BaseClient._make_api_call wrapped, as tracing SDKs patch it: every client of every session):
# - `fail`: the call raises as a throttled API does (ClientError Throttling: nothing reached AWS);
# - `die`: the invocation's time runs out right before the call (LambdaTimeout, a BaseException no handler
#   catches: nothing after it runs, the answer is `died`). Each call is taken to last `call_ms` (the function's
#   bounded call), so the context's get_remaining_time_in_millis reports (at - calls made) * call_ms, at most the
#   real time left: a function that checks its time before a step sees the deadline coming, as in Lambda.
RUNTIME = r"""
import importlib, json, os, resource, sys, time, uuid
results = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = os.fdopen(1, "w", buffering=1)
root, runtime, module = sys.argv[1:4]
sys.path[:0] = [root, runtime]  # /var/task (the zip), then the runtime's boto3: nothing else
os.chdir(root)
import botocore.client
from botocore.exceptions import ClientError


class LambdaTimeout(BaseException):
    pass


class Fault:
    kind, at, call_ms, calls, fired = None, -1, 0.0, [], False

    @classmethod
    def arm(cls, spec):
        cls.kind, cls.at, cls.call_ms = spec.get("kind"), int(spec.get("at", -1)), float(spec.get("call_ms", 0))
        cls.calls, cls.fired = [], False

    @classmethod
    def left_ms(cls):
        if cls.kind != "die" or cls.fired:
            return None
        return max(0, cls.at - len(cls.calls)) * cls.call_ms


_real_call = botocore.client.BaseClient._make_api_call


def _call(self, operation, params):
    index = len(Fault.calls)
    Fault.calls.append(f"{self.meta.service_model.service_name}.{operation}")
    if Fault.kind and not Fault.fired and index >= Fault.at:
        Fault.fired = True
        if Fault.kind == "die":
            raise LambdaTimeout(f"the time ran out before call {index} ({Fault.calls[-1]})")
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded (injected)"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
    return _real_call(self, operation, params)


botocore.client.BaseClient._make_api_call = _call


class Context:
    def __init__(self, raw):
        self.aws_request_id = raw.get("aws_request_id") or str(uuid.uuid4())
        self.function_name = raw.get("function_name") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", module)
        self._deadline = time.monotonic() + float(raw.get("timeout_s", 900))

    def get_remaining_time_in_millis(self):
        left, fault = max(0.0, self._deadline - time.monotonic()) * 1000, Fault.left_ms()
        return int(left if fault is None else min(left, fault))


mod = importlib.import_module(module)
for line in sys.stdin:
    req = json.loads(line)
    for k, v in req.get("env", {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    Fault.arm(req.get("fault") or {})
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = {"ok": getattr(mod, req.get("function", "handler"))(req["event"], Context(req.get("context") or {}))}
    except LambdaTimeout as e:
        out = {"died": str(e)}
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}", "error_type": type(e).__name__}
    out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, calls=Fault.calls,
               fired=Fault.fired, max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    sys.stdout.flush()
    sys.stderr.flush()
    results.write(json.dumps(out, default=str) + "\n")
    results.flush()
"""

FAULT_KINDS = ("fail", "die")
# How long a call lasts in a `die` fault's clock when the caller names no bound of its function's own: botocore's
# default read timeout (botocore "Config" reference: read_timeout, 60 s).
DEFAULT_CALL_MS = 60_000


def fault_spec(fault: dict[str, Any] | None) -> dict[str, Any] | None:
    """A fault as the runtime loop takes it (`{"kind", "at", "call_ms"}`), checked: a clear error otherwise."""
    if not fault:
        return None
    unknown = sorted(set(fault) - {"kind", "at", "call_ms"})
    if unknown:
        raise ValueError(f"fault {fault!r}: unknown keys {unknown}; allowed: kind, at, call_ms")
    kind, at, call_ms = fault.get("kind"), fault.get("at"), fault.get("call_ms", DEFAULT_CALL_MS)
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind {kind!r} is not one of: {', '.join(FAULT_KINDS)}")
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        raise ValueError(f"fault at {at!r} is not a call index (an integer, 0 or more)")
    if not isinstance(call_ms, int | float) or isinstance(call_ms, bool) or call_ms <= 0:
        raise ValueError(f"fault call_ms {call_ms!r} is not a duration in milliseconds (more than 0)")
    return {"kind": kind, "at": at, "call_ms": call_ms}


def _top_level(dist: importlib.metadata.Distribution) -> set[str]:
    names = set()
    for f in dist.files or ():
        first = f.parts[0]
        if first.endswith((".dist-info", ".egg-info")) or first in ("..", "bin", "__pycache__"):
            continue
        names.add(first)
    return names


def _closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The distributions `names` need at run time (their unconditional requirements, transitively)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[key] = dist
        for req in dist.requires or ():
            if ";" in req and "extra" in req.split(";", 1)[1]:
                continue  # an optional extra (boto3[crt]): not in the runtime
            name_of = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
            if name_of:
                todo.append(name_of.group(0))
    return list(seen.values())


def runtime_site(out: Path | None = None) -> Path:
    """A folder holding only the runtime's own packages (links to this environment's copies of boto3 and what it
    needs: pure Python, the same on the runtime's Python)."""
    out = out or BUILD_DIR / "lambda-runtime"
    out.mkdir(parents=True, exist_ok=True)
    for dist in _closure(RUNTIME_DISTRIBUTIONS):
        base = Path(str(dist.locate_file("")))
        for name in _top_level(dist):
            link, target = out / name, base / name
            if not target.exists() or (link.is_symlink() and link.readlink() == target):
                continue
            link.unlink(missing_ok=True)  # a link into an older environment
            with contextlib.suppress(FileExistsError):  # another test worker made it meanwhile
                link.symlink_to(target)
    return out


def extract(zip_path: Path, dest: Path) -> Path:
    """The zip's files under `dest` (emptied first), as Lambda unpacks a deployment package to /var/task."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            z.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode:  # keep the exec bit (prophet's compiled Stan model runs as a program)
                (dest / info.filename).chmod(mode)
    return dest


@dataclass
class Invocation:
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    died: str | None = None  # a `die` fault ended it (the time ran out before this call)
    calls: list[str] = field(default_factory=list)
    fired: bool = False
    log: list[str] = field(default_factory=list)  # the function's stdout lines during this invocation
    wall_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_mb: float = 0.0

    def records(self) -> list[dict[str, Any]]:
        """The log lines that are JSON objects (the one log shape)."""
        return [json.loads(ln) for ln in self.log if ln.startswith("{")]


class ZipProcess:
    """The function at `root` (an extracted zip), `module` imported once by the runtime loop (the container's
    init), then invoked per event. `env` is the function's environment (its configuration variables, and the
    endpoint its boto3 talks to)."""

    def __init__(self, root: Path, module: str, env: dict[str, str], log: Path) -> None:
        self.root, self.module, self.env, self.log_path = root, module, env, log
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._offset = 0

    def __enter__(self) -> ZipProcess:
        env = {k: v for k, v in self.env.items() if not k.startswith("PYTHON")}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self._offset = 0
        # -I: no PYTHON* variables, no user site, not the current folder; -S: no site-packages.
        self._proc = subprocess.Popen([runtime_python(), "-I", "-S", "-c", RUNTIME, str(self.root),
                                       str(runtime_site()), self.module], cwd=self.root, env=env, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        return self

    def invoke(self, event: Any, *, function: str = "handler", context: dict[str, Any] | None = None,
               env: dict[str, str | None] | None = None, fail_at: int = -1,
               fault: dict[str, Any] | None = None) -> Invocation:
        """One invocation; `env` changes the environment from now on (None removes a variable), as the runtime
        sets per-invocation variables such as _X_AMZN_TRACE_ID. `fault` ({"kind": "fail" or "die", "at": call,
        "call_ms": a call's bound}) is injected into it; `fail_at=N` is short for {"kind": "fail", "at": N}."""
        if fail_at >= 0 and fault:
            raise ValueError("give fail_at or fault, not both")
        spec = fault_spec({"kind": "fail", "at": fail_at} if fail_at >= 0 else fault)
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the function is not running")
        proc.stdin.write(json.dumps({"event": event, "function": function, "context": context or {},
                                     "env": env or {}, "fault": spec}) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the function exited: {self.tail()}")
        out = json.loads(line)
        return Invocation(result=out.get("ok"), error=out.get("error"), error_type=out.get("error_type"),
                          died=out.get("died"), calls=out["calls"], fired=out["fired"], log=self._new_log_lines(),
                          wall_s=out["wall_s"], cpu_s=out["cpu_s"], max_rss_mb=out["max_rss_mb"])

    def _new_log_lines(self) -> list[str]:
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        return data.decode(errors="replace").splitlines()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def packaged(function: str, out_dir: Path, env: dict[str, str], *,
             baked: dict[str, bytes] | None = None) -> ZipProcess:
    """`lambdas/<function>` as the stack deploys it (build_lambda's zip), extracted under `out_dir`, ready to start
    (`with packaged(...) as fn: fn.invoke(...)`); its log is `out_dir/<function>.log`."""
    pkg = build_lambda(function, kind="lambda", baked=baked)
    root = extract(pkg.path, out_dir / f"{function}-zip")
    return ZipProcess(root, pkg.handler.rsplit(".", 1)[0], env, out_dir / f"{function}.log")
