"""Lambda functions from their built zip, run as Lambda runs them, several at once, and an SQS event source mapping
over them (issue 28: the anomaly fan-out's tests and `make bench-detector`).

Each worker is a warm Lambda container of infra/tools/drill/zip_runtime.py (ZipProcess: a fresh interpreter of the
runtime's Python with only the extracted zip and the runtime's boto3 on its path, the one runtime loop); its answer
is the handler's result, its wall and CPU time, and the process's peak RSS (what the function's memory size
limits). A request can carry a fault, injected at the AWS call boundary of that invocation (zip_runtime.RUNTIME):
`fail` raises call `at` as a throttled API does, `die` ends the invocation right before call `at` (the function's
time ran out: the answer is `died`, nothing after it ran; its context reported the time left accordingly).

`drain` plays an SQS event source mapping with ReportBatchItemFailures over a pool: it receives up to
`batch_size` messages per invocation, invokes the workers concurrently (at most the mapping's maximum concurrency:
the pool's size), deletes what succeeded and makes the failed or unprocessed messages visible again (the
redelivery, without waiting out the visibility timeout).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.tools.drill.zip_runtime import ZipProcess, extract


class PoolError(RuntimeError):
    """A worker exited, or a drain kept redelivering."""


class LambdaPool:
    """`workers` warm containers of one function (zip + `handler` setting, e.g. anomaly_detector.handler.consume)."""

    def __init__(self, zip_path: Path, handler: str, *, workers: int, timeout_s: float, env: dict[str, str],
                 workdir: Path) -> None:
        if workers < 1:
            raise ValueError(f"workers {workers} must be at least 1")
        self.root = extract(zip_path, workdir / f"{zip_path.stem}-zip")
        module, self.function = handler.rsplit(".", 1)
        self.timeout_s = timeout_s
        self._idle: queue.Queue[ZipProcess] = queue.Queue()
        self._all: list[ZipProcess] = []
        try:
            for i in range(workers):
                worker = ZipProcess(self.root, module, env, workdir / f"{zip_path.stem}-{i}.log").__enter__()
                self._all.append(worker)
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        return len(self._all)

    def invoke(self, event: Any, fault: dict[str, Any] | None = None) -> dict[str, Any]:
        """One invocation on an idle worker (waits for one); thread-safe. The answer holds `ok` (the result),
        `error` or `died`, and `calls`, `fired`, `wall_s`, `cpu_s`, `max_rss_mb`."""
        worker = self._idle.get()
        try:
            got = worker.invoke(event, function=self.function, context={"timeout_s": self.timeout_s}, fault=fault)
        except RuntimeError as e:
            raise PoolError(f"{e} (see {worker.log_path})") from e
        finally:
            self._idle.put(worker)
        out: dict[str, Any] = {"died": got.died} if got.died is not None else \
            {"error": got.error} if got.error is not None else {"ok": got.result}
        out.update(calls=got.calls, fired=got.fired, wall_s=got.wall_s, cpu_s=got.cpu_s, max_rss_mb=got.max_rss_mb)
        return out

    def close(self) -> None:
        for w in self._all:
            w.__exit__(None, None, None)


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

