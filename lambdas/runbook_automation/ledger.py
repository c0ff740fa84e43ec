"""Exactly once across SQS redeliveries and PagerDuty retries: one ledger item per signed event (`run#<event id>`
in the runbook table) records the run's decisions and every step done, each by a DynamoDB conditional write made
before anything that can fail after it. A redelivery (a failed audit publish, a throttled call, a timeout) or a
second queued copy of the same event (a receiver that died between queueing and marking its claim) reads the
item and does only the steps not yet recorded.

Three kinds of step:
- `result`: a decision taken once (the scale-out's absolute target, the budget unit); later runs read it, so a
  redelivery sets the same desired capacity instead of adding the step again (4 -> 6, never 4 -> 6 -> 8).
- `effect`: an AWS call whose repetition changes nothing (an absolute capacity): done, then recorded.
- `notice`: a message to a topic, which a repetition would duplicate: marked `sending` (conditional: a concurrent
  copy of the run skips it), published, marked `done`. A refusal by SNS (ClientError: nothing was published) puts
  the mark back, so the redelivery sends it; a mark left `sending` therefore means the message went out and only
  the `done` write failed. A publish whose outcome is unknown (a network error or read timeout, BotoCoreError)
  is marked `uncertain` and sent again by the redelivery (at least once: it carries the same `notice_id`).
A Lambda timeout cannot cut a step in two: a step starts only when the time left covers each of its calls at
their bounded duration (CALL_BOUND_MS, from BOTO_CONFIG); otherwise the run stops before it (OutOfTime) and SQS
redelivers. AWS: "Lambda function timeout", "DynamoDB condition expressions", "Amazon SQS visibility timeout".
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .audit import LOG

RUN_TTL_S = 7 * 86400  # the dedupe records' TTL (handler.DEDUPE_TTL_S): a replay is either found or stale
CONNECT_TIMEOUT_S, READ_TIMEOUT_S, ATTEMPTS = 1, 3, 2
# botocore's default read timeout is 60 s: a worker (60 s) could not bound a step with it.
BOTO_CONFIG = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                     retries={"max_attempts": ATTEMPTS, "mode": "standard"})
# Every attempt at its timeouts, plus the standard mode's backoff before the retry (at most 1 s after the first).
CALL_BOUND_MS = (ATTEMPTS * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + 1) * 1000
DONE, SENDING, UNCERTAIN = "done", "sending", "uncertain"


class OutOfTime(Exception):
    """Too little time left for the next step: the run stops before it and SQS redelivers the message."""


def unbounded_time() -> float:
    return math.inf


def _conditional_failed(e: ClientError) -> bool:
    return bool(e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class Ledger:
    """The record of one run (a signed event): `result`, `effect` and `notice` steps, each once."""

    def __init__(self, dynamodb: Any, table: str, run_id: str,
                 time_left_ms: Callable[[], float] = unbounded_time) -> None:
        self._ddb, self._table, self._time_left = dynamodb, table, time_left_ms
        self._key = {"pk": {"S": f"run#{run_id}"}}
        self.run_id = run_id
        self._item: dict[str, Any] | None = None

    def room(self, calls: int) -> None:
        """Raise OutOfTime unless `calls` AWS calls fit in the time left at their bounded duration."""
        self.guard(self._time_left, calls)

    @staticmethod
    def guard(time_left_ms: Callable[[], float], calls: int) -> None:
        left = time_left_ms()
        if left < calls * CALL_BOUND_MS:
            raise OutOfTime(f"{left:.0f} ms left, a step of {calls} calls needs {calls * CALL_BOUND_MS} ms")

    def _load(self) -> dict[str, Any]:
        if self._item is None:
            self.room(1)
            got = self._ddb.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
            self._item = dict(got.get("Item") or {})
        return self._item

    def state(self, step: str) -> str | None:
        value = self._load().get(f"step_{step}", {}).get("S")
        return str(value) if value is not None else None

    def _write(self, step: str, value: str | None, expect: str | None) -> None:
        """Set (or, value None, remove) the step's mark, only if it is still `expect` (None: absent)."""
        names = {"#a": f"step_{step}"}
        values: dict[str, Any] = {}
        condition = "attribute_not_exists(#a)" if expect is None else "#a = :expect"
        if expect is not None:
            values[":expect"] = {"S": expect}
        if value is None:
            update = "REMOVE #a"
        else:
            update = "SET #a = :v, expires_at = if_not_exists(expires_at, :exp)"
            values.update({":v": {"S": value}, ":exp": {"N": str(int(time.time()) + RUN_TTL_S)}})
        kwargs: dict[str, Any] = {"TableName": self._table, "Key": self._key, "UpdateExpression": update,
                                  "ConditionExpression": condition, "ExpressionAttributeNames": names}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        self._ddb.update_item(**kwargs)
        item = self._load()
        if value is None:
            item.pop(f"step_{step}", None)
        else:
            item[f"step_{step}"] = {"S": value}

    def _reload(self) -> None:
        self._item = None
        self._load()

    def result(self, step: str, decide: Callable[[], str]) -> str:
        """The step's decision: the stored one, else `decide()` stored (the first writer wins)."""
        stored = self.state(step)
        if stored is not None:
            return stored
        self.room(2)
        value = decide()
        try:
            self._write(step, value, None)
        except ClientError as e:
            if not _conditional_failed(e):
                raise
            self._reload()  # a concurrent copy of the run decided first: its decision holds
            return self.state(step) or value
        return value

    def effect(self, step: str, act: Callable[[], object]) -> None:
        """An idempotent effect: run unless recorded done, then record it."""
        if self.state(step) == DONE:
            return
        self.room(2)
        act()
        try:
            self._write(step, DONE, None)
        except ClientError as e:
            if not _conditional_failed(e):
                raise

    def notice(self, step: str, send: Callable[[], object]) -> bool:
        """Send once (see the module docstring); True when this call sent it."""
        state = self.state(step)
        if state in (DONE, SENDING):
            return False
        self.room(3)
        try:
            self._write(step, SENDING, state)
        except ClientError as e:
            if _conditional_failed(e):
                return False  # another copy of the run holds it
            raise
        try:
            send()
        except ClientError:  # SNS refused it: nothing was published; the redelivery sends it
            self._write(step, state, SENDING)
            raise
        except BotoCoreError as e:  # unknown whether it went out: at least once, with the same notice_id
            try:
                self._write(step, UNCERTAIN, SENDING)
            except (ClientError, BotoCoreError) as mark:
                LOG.error(json.dumps({"decision": "notice-mark-failed", "run": self.run_id, "step": step,
                                      "error": str(mark), "send_error": str(e)}))
            raise
        self._write(step, DONE, SENDING)
        return True
