"""Lambda functions from their built zip, run as Lambda runs them, several at once, and an SQS event source mapping
over them (issue 28: the anomaly fan-out's tests and `make bench-detector`).

Each worker is a fresh interpreter with only the extracted zip and the runtime's boto3 on its path (a warm Lambda
container: it keeps its module state between invocations), reading one request per line and answering one line:
the handler's result, its wall and CPU time, and the process's peak RSS (what the function's memory size limits).
A request can carry a fault, injected at the AWS call boundary of that invocation (botocore's
`BaseClient._make_api_call`): `fail` raises call `at` as a throttled API does, `die` ends the invocation right
before call `at` (the function's time ran out: the runtime answers `died`, nothing after it ran).

`drain` plays an SQS event source mapping with ReportBatchItemFailures over a pool: it receives up to
`batch_size` messages per invocation, invokes the workers concurrently (at most the mapping's maximum concurrency:
the pool's size), deletes what succeeded and makes the failed or unprocessed messages visible again (the
redelivery, without waiting out the visibility timeout).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from infra.artifacts.packaging import runtime_python
from infra.tools.drill.zip_runtime import extract, runtime_site

# The runtime loop. As in Lambda the function's log lines go to its stdout, here the worker's log file; results
# travel on the pipe the process was given as stdout, kept apart before the handler is imported.
RUNTIME = r"""
import importlib, json, os, resource, sys, time, uuid
results = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = os.fdopen(1, "w", buffering=1)
module, function, timeout_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.path[:0] = [sys.argv[4], sys.argv[5]]  # /var/task (the zip), then the runtime's boto3: nothing else
import botocore.client
from botocore.exceptions import ClientError


class LambdaTimeout(BaseException):
    pass


FAULT = {"kind": None, "at": -1, "calls": [], "fired": False}
_real_call = botocore.client.BaseClient._make_api_call


def _call(self, operation, params):
    index = len(FAULT["calls"])
    FAULT["calls"].append(f"{self.meta.service_model.service_name}.{operation}")
    if FAULT["kind"] and not FAULT["fired"] and index >= FAULT["at"]:
        FAULT["fired"] = True
        if FAULT["kind"] == "die":
            raise LambdaTimeout(f"time ran out before call {index} ({FAULT['calls'][-1]})")
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded (injected)"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
    return _real_call(self, operation, params)


botocore.client.BaseClient._make_api_call = _call
fn = getattr(importlib.import_module(module), function)


class Context:
    def __init__(self, request_id):
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.function_name = module
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self):
        return int(max(0.0, self._deadline - time.monotonic()) * 1000)


for line in sys.stdin:
    req = json.loads(line)
    fault = req.get("fault") or {}
    FAULT.update(kind=fault.get("kind"), at=int(fault.get("at", -1)), calls=[], fired=False)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = {"ok": fn(req["event"], Context(req.get("id")))}
    except LambdaTimeout as e:
        out = {"died": str(e)}
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, calls=FAULT["calls"],
               fired=FAULT["fired"], max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results.write(json.dumps(out, default=str) + "\n")
    results.flush()
"""


class PoolError(RuntimeError):
    """A worker exited or answered something that is not a result line."""


@dataclass
class _Worker:
    proc: subprocess.Popen[str]
    log: Path

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        pipe_in: IO[str] | None = self.proc.stdin
        if pipe_in is None or self.proc.stdout is None:
            raise PoolError("the worker has no pipes")
        pipe_in.write(json.dumps(request) + "\n")
        pipe_in.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise PoolError(f"the worker exited (code {self.proc.poll()}): see {self.log}")
        out: dict[str, Any] = json.loads(line)
        return out


class LambdaPool:
    """`workers` warm containers of one function (zip + `handler` setting, e.g. anomaly_detector.handler.consume)."""

    def __init__(self, zip_path: Path, handler: str, *, workers: int, timeout_s: float, env: dict[str, str],
                 workdir: Path) -> None:
        if workers < 1:
            raise ValueError(f"workers {workers} must be at least 1")
        self.root = extract(zip_path, workdir / f"{zip_path.stem}-zip")
        module, function = handler.rsplit(".", 1)
        run_env = {k: v for k, v in env.items() if not k.startswith("PYTHON")}
        site = str(runtime_site())
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        for i in range(workers):
            log = workdir / f"{zip_path.stem}-{i}.log"
            # The runtime's Python, isolated (-I: no PYTHON* variables, no user site; -S: no site-packages), as
            # infra/tools/drill/zip_runtime.py runs one container: a module the zip lacks fails here as in Lambda.
            proc = subprocess.Popen([runtime_python(), "-I", "-S", "-c", RUNTIME, module, function, str(timeout_s),
                                     str(self.root), site],
                                    cwd=self.root, env=run_env, text=True, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log.open("w"))
            worker = _Worker(proc, log)
            self._all.append(worker)
            self._idle.put(worker)

    @property
    def size(self) -> int:
        return len(self._all)

    def invoke(self, event: Any, fault: dict[str, Any] | None = None) -> dict[str, Any]:
        """One invocation on an idle worker (waits for one); thread-safe."""
        worker = self._idle.get()
        try:
            return worker.call({"event": event, "fault": fault})
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for w in self._all:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        for w in self._all:
            try:
                w.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=10)


@contextmanager
def lambda_pool(zip_path: Path, handler: str, *, workers: int, timeout_s: float, env: dict[str, str],
                workdir: Path) -> Iterator[LambdaPool]:
    pool = LambdaPool(zip_path, handler, workers=workers, timeout_s=timeout_s, env=env, workdir=workdir)
    try:
        yield pool
    finally:
        pool.close()


@dataclass
class Drained:
    """What a drain did: every invocation's answer, the messages deleted, and the rounds of redelivery."""

    invocations: list[dict[str, Any]] = field(default_factory=list)
    deleted: int = 0
    redelivered: int = 0
    rounds: int = 0


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source hands the function (the fields the consumers read)."""
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": m.get("Attributes", {}), "eventSource": "aws:sqs",
                         "eventSourceARN": queue_arn} for m in messages]}


def drain(pool: LambdaPool, sqs: Any, queue_url: str, *, batch_size: int = 1, max_rounds: int = 8,
          fault_for: Callable[[int], dict[str, Any] | None] | None = None) -> Drained:
    """Invoke the pool over the queue until it is empty, as an event source mapping with ReportBatchItemFailures
    would; `fault_for(invocation index)` may inject a fault into an invocation."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    out = Drained()
    lock = threading.Lock()

    def one(messages: list[dict[str, Any]]) -> None:
        with lock:
            index = len(out.invocations)
            out.invocations.append({})
        answer = pool.invoke(sqs_event(messages, arn), fault_for(index) if fault_for else None)
        out.invocations[index] = answer
        if "ok" in answer:
            failed = {f["itemIdentifier"] for f in (answer["ok"] or {}).get("batchItemFailures", [])}
        else:  # the invocation failed or died: its whole batch comes back
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        again = [m for m in messages if m["MessageId"] in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        if again:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(again)])
        with lock:
            out.deleted += len(done)
            out.redelivered += len(again)

    while True:
        received: list[list[dict[str, Any]]] = []
        while True:  # what the mapping's pollers hold at once: up to one batch per concurrent invocation
            msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(10, batch_size),
                                       WaitTimeSeconds=0, VisibilityTimeout=600).get("Messages", [])
            if not msgs:
                break
            received.append(msgs)
        if not received:
            return out
        out.rounds += 1
        if out.rounds > max_rounds:
            raise PoolError(f"{queue_url}: still redelivering after {max_rounds} rounds")
        with ThreadPoolExecutor(max_workers=pool.size) as ex:
            list(ex.map(one, received))

