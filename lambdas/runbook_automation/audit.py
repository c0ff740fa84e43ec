"""Every decision and action: one structured log line and one message on the (KMS-encrypted) audit topic."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from logshape import stdlib as logshape

LOG = logging.getLogger("runbook_automation")
LOG.setLevel(logging.INFO)
# Both entry points (webhook, worker) log the stack's one shape; each binds its invocation (handler.py).
SHAPE = logshape.configure("runbook-automation")


class Audit:
    def __init__(self, sns: Any, topic_arn: str, environment: str) -> None:
        self._sns, self._topic, self._env = sns, topic_arn, environment

    def record(self, decision: str, **details: Any) -> dict[str, Any]:
        entry = {"decision": decision, "environment": self._env, "at": int(time.time()), **details}
        text = json.dumps(entry, sort_keys=True, default=str)
        LOG.info(text)
        self._sns.publish(TopicArn=self._topic, Subject=f"runbook {decision}"[:100], Message=text,
                          MessageAttributes={"decision": {"DataType": "String", "StringValue": decision}})
        return entry
