"""Synthetics entry point (`python/akidb_canary.py` in the zip calls `handler`): settings from the run config's
environment variable CANARY_SETTINGS (JSON, no secrets), EMF lines on stdout (the canary's Lambda log group),
an exception when a check fails so the run counts as failed."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from logshape import stdlib as logshape

from . import probes

log = logging.getLogger(__name__)
SHAPE = logshape.configure("canary")


def _emit(line: str) -> None:
    doc = json.loads(line)  # an EMF document of probes.py: written as a line of the stack's one shape
    line = json.dumps(SHAPE.emf("INFO", "probe", doc), separators=(",", ":"), default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def handler(event: Any = None, context: Any = None) -> dict[str, Any]:
    SHAPE.bind(context)
    raw = os.environ.get("CANARY_SETTINGS")
    if raw is None:
        raise probes.SettingsError("CANARY_SETTINGS is not set (the canary's run_config.environment_variables)")
    settings = probes.ProbeSettings.from_json(raw)
    checks = probes.run(settings, _emit)
    log.info("all %d checks passed", len(checks), extra={"fields": {"checks": [c.name for c in checks]}})
    return {"checks": {c.name: round(c.latency_ms, 1) for c in checks}}
