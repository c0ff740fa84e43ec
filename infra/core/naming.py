"""Names: logical (Pulumi URNs) and physical (AWS/Kubernetes), derived from one prefix."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


def fit(name: str, max_len: int) -> str:
    """Shorten `name` to `max_len`, keeping it unique with a short hash of the full name."""
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:7]
    return f"{name[: max_len - 8].rstrip('-_.')}-{digest}"


@dataclass(frozen=True)
class Naming:
    service: str
    environment: str

    @property
    def prefix(self) -> str:
        return f"{self.service}-{self.environment}"

    def physical(self, *parts: str, max_len: int = 64) -> str:
        """An AWS name such as `akidb-staging-anomaly-detector`, within the service's length limit."""
        joined = "-".join([self.prefix, *parts])
        return fit(re.sub(r"[^A-Za-z0-9_.-]+", "-", joined), max_len)

    def k8s(self, *parts: str) -> str:
        """A Kubernetes object name (DNS-1123 label, 63 characters)."""
        joined = "-".join(parts).lower()
        return fit(re.sub(r"[^a-z0-9-]+", "-", joined).strip("-"), 63)


# Service name limits, in one place (AWS quotas pages).
MAX_LAMBDA_NAME = 64
MAX_IAM_ROLE_NAME = 64
MAX_ALARM_NAME = 255
MAX_TOPIC_NAME = 256
MAX_BUCKET_NAME = 63
MAX_DASHBOARD_NAME = 255
