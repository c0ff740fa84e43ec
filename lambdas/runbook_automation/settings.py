"""Settings from the RUNBOOK_SETTINGS environment variable (JSON, no secrets), checked once at init."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any


class SettingsError(RuntimeError):
    """The function is misconfigured: every problem, named."""


@dataclass(frozen=True)
class Settings:
    environment: str
    table_name: str
    audit_topic_arn: str
    queue_url: str = ""
    secret_id: str = ""  # the webhook signing secret, by name (GetSecretValue takes a name or an ARN)
    notify_topic_arn: str = ""
    dry_run: bool = True
    allowed_asgs: tuple[str, ...] = ()
    scale_out_asg: str | None = None
    scale_out_step: int = 2
    max_capacity: int = 20
    max_actions_per_hour: int = 3
    edge_function_name: str = ""
    edge_regions: tuple[str, ...] = ()
    runbook_base_url: str = ""
    grafana_base_url: str = ""
    edge_dashboard_url: str = ""  # the stack's CloudWatch edge board ("" when the stack deploys none)
    # Incident timeline (timeline.py): its table, the CloudWatch namespace of the outcome metrics, how long the
    # records are kept, and how long an incident must be quiet before its figures are published.
    timeline_table_name: str = ""
    metrics_namespace: str = "AkiDB/Incidents"
    timeline_retention_days: int = 400
    timeline_settle_s: int = 300
    # Freshness of signed events: older than max_event_age_s or ahead of the clock by more than clock_skew_s is
    # refused (a replay of a captured body outlives the dedupe record's TTL only beyond this window).
    max_event_age_s: int = 3600
    clock_skew_s: int = 300
    extra: dict[str, Any] = field(default_factory=dict)


_REQUIRED = ("environment", "table_name", "audit_topic_arn")
_INTS = {"scale_out_step": (1, 50), "max_capacity": (1, 1000), "max_actions_per_hour": (0, 60),
         "timeline_retention_days": (1, 3650), "timeline_settle_s": (0, 900),  # 900: SQS's longest delay
         "max_event_age_s": (60, 86400), "clock_skew_s": (0, 900)}


def parse(raw: str | None) -> Settings:
    if not raw:
        raise SettingsError("RUNBOOK_SETTINGS is not set (JSON object with " + ", ".join(_REQUIRED) + ")")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SettingsError(f"RUNBOOK_SETTINGS is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise SettingsError("RUNBOOK_SETTINGS must be a JSON object")
    problems = [f"{k} is required" for k in _REQUIRED if not data.get(k)]
    known = set(Settings.__dataclass_fields__) - {"extra"}
    problems += [f"unknown setting {k!r}" for k in data if k not in known]
    for k, (lo, hi) in _INTS.items():
        v = data.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi):
            problems.append(f"{k} must be an integer in [{lo}, {hi}], got {v!r}")
    if not isinstance(data.get("dry_run", True), bool):
        problems.append("dry_run must be true or false")
    if data.get("scale_out_asg") and data["scale_out_asg"] not in data.get("allowed_asgs", []):
        problems.append(f"scale_out_asg {data['scale_out_asg']!r} is not in allowed_asgs")
    if problems:
        raise SettingsError("invalid RUNBOOK_SETTINGS: " + "; ".join(problems))
    for k in ("allowed_asgs", "edge_regions"):
        if k in data:
            data[k] = tuple(data[k])
    return Settings(**data)


def load() -> Settings:
    return parse(os.environ.get("RUNBOOK_SETTINGS"))
