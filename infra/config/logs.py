"""Logs as a signal (issue 32): the archive of the stack's log groups, the saved queries and log-based alarms.

Every log group the program creates is subscribed to a Firehose stream of its Region that writes it, encrypted
with the stack's key of that Region, to a private archive bucket there (CloudWatch Logs subscriptions reach only a
stream of their own Region). The functions' redaction is lambdas/logshape's defaults plus `redactFields` and
`redactPatterns`.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import setting


@dataclass(frozen=True)
class LogsConfig:
    enabled: bool = setting(True, doc="archive the log groups, save the Logs Insights queries, alarm on log events")
    archive_days: int = setting(365, doc="days an archived log object is kept before it expires",
                                minimum=30, maximum=3650)
    archive_buffer_s: int = setting(300, doc="seconds Firehose buffers log batches before writing an object",
                                    minimum=60, maximum=900)
    signature_failures_per_5min: int = setting(
        10, doc="webhook deliveries refused for their signature in 5 minutes before the ticket", minimum=1,
        maximum=100000)
    refused_actions_per_hour: int = setting(
        3, doc="runbook actions the worker refuses in an hour (guardrails, malformed jobs) before the ticket",
        minimum=1, maximum=10000)
    redact_fields: list[str] = setting(default_factory=list, doc="field names the functions never log, beside "
                                                                 "lambdas/logshape's defaults",
                                       pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    redact_patterns: list[str] = setting(default_factory=list, doc="regular expressions scrubbed from every "
                                                                   "logged string, beside the defaults")
