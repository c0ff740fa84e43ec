"""The one log shape for functions that log through the standard `logging` module (every function but the edge).

`configure(service)` once per container; `bind(context)` at the top of each invocation. `bind` also puts this
function's formatter back on the root handler, so functions imported into one process (tests) each log under
their own name.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from . import Shape, redactor_from

QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


class JsonFormatter(logging.Formatter):
    """stdlib logging records -> the shape. A message that is itself a JSON object (the runbook code's
    `LOG.info(json.dumps({...}))`) is merged field by field; `extra={"fields": {...}}` adds fields."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
        if message.startswith("{"):
            try:
                parsed = json.loads(message)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                fields = {**parsed, **fields}
                message = str(parsed.get("message") or parsed.get("decision") or "")
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        fields.setdefault("logger", record.name)
        return json.dumps(self.shape.record(record.levelname, message, fields, at=record.created),
                          separators=(",", ":"), default=str)


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the sys.stdout of the moment (a test's capture, the runtime's stream)."""

    _logshape = True

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed or sys.stdout
        super().emit(record)


def install(shape: Shape, stream: TextIO | None = None) -> None:
    """Format every record of the root logger in `shape`. On Lambda the runtime's handler stays (it writes to
    the function's log stream with the request's frame) and only its formatter changes; elsewhere one handler
    of ours writes to stdout, as the runtime would. Idempotent and cheap: `LoggingShape.bind` calls it per
    invocation."""
    root = logging.getLogger()
    runtime = [h for h in root.handlers if type(h).__name__ == "LambdaLoggerHandler"]
    ours = [h for h in root.handlers if getattr(h, "_logshape", False)]
    same = [h for h in ours if getattr(h, "_fixed", None) is stream]  # stdout stays stdout, a stream its stream
    if runtime:
        targets = runtime
    elif same:
        targets = same[:1]
    else:
        for h in ours:
            root.removeHandler(h)
        targets = [_Stdout(stream)]
        root.addHandler(targets[0])
    for h in targets:
        if not (isinstance(h.formatter, JsonFormatter) and h.formatter.shape is shape):
            h.setFormatter(JsonFormatter(shape))
    if root.level != logging.INFO:
        root.setLevel(logging.INFO)
    # The SDK's INFO lines ("Found credentials in environment variables.", "Found endpoint for sqs via: ...")
    # are one per client and call: log volume (CloudWatch Logs ingestion is billed per GB) with no diagnosis in
    # it. Its warnings and errors still pass.
    for noisy in QUIET_LOGGERS:
        logger = logging.getLogger(noisy)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


class LoggingShape(Shape):
    stream: TextIO | None = None  # where configure() sent the lines (None: stdout, as on Lambda)

    def bind(self, context: Any = None, *, trace_header: str | None = None, **fields: Any) -> None:
        install(self, self.stream)
        super().bind(context, trace_header=trace_header, **fields)


def configure(service: str, *, stream: TextIO | None = None, baked: Path | None = None) -> LoggingShape:
    """The shape of `service` (its redaction from the environment or the baked file), installed."""
    shape = LoggingShape(service, redactor_from(baked=baked))
    shape.stream = stream
    install(shape, stream)
    return shape
