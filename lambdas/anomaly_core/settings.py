"""Function settings: `settings.json` baked into each zip by infra (from the stack's `anomaly:` config) plus the
resource names infra passes as environment variables. Parsed once, with an error naming any bad field."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .metrics import NAMESPACE

# Prophet's two seasonality modes.
SeasonalityMode = Literal["additive", "multiplicative"]

SETTINGS_FILE = "settings.json"
NAME_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")


class SettingsError(ValueError):
    """The baked settings or the environment are wrong: a deployment bug, reported clearly."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    source: str  # "cloudwatch" | "prometheus"
    query: str
    seasonality_mode: SeasonalityMode = "additive"
    hourly_seasonality: bool = False
    mape_limit: float = 0.15

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "query": self.query,
                "seasonalityMode": self.seasonality_mode, "hourlySeasonality": self.hourly_seasonality,
                "mapeLimit": self.mape_limit}


@dataclass(frozen=True)
class Settings:
    metrics: tuple[MetricSpec, ...]
    prometheus_url: str | None = None
    confidence_threshold: float = 0.545  # the stack default (infra/config/anomaly.py), chosen by measurement
    history_days: int = 90
    forecast_max_age_s: int = 192 * 3600
    namespace: str = NAMESPACE

    def to_json(self) -> dict[str, Any]:
        return {"metrics": [m.to_json() for m in self.metrics], "prometheusUrl": self.prometheus_url,
                "confidenceThreshold": self.confidence_threshold, "historyDays": self.history_days,
                "forecastMaxAgeS": self.forecast_max_age_s}

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise SettingsError(f"unknown metric {name!r}; configured: {[m.name for m in self.metrics]}")


def _metric(i: int, raw: Any) -> MetricSpec:
    if not isinstance(raw, dict):
        raise SettingsError(f"metrics[{i}] must be an object, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SettingsError(f"metrics[{i}].name {name!r} must match {NAME_PATTERN.pattern}")
    source = raw.get("source")
    if source not in ("cloudwatch", "prometheus"):
        raise SettingsError(f"metrics[{i}].source {source!r}; allowed: cloudwatch, prometheus")
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        raise SettingsError(f"metrics[{i}].query must be a non-empty string")
    mode = raw.get("seasonalityMode", "additive")
    if mode not in ("additive", "multiplicative"):
        raise SettingsError(f"metrics[{i}].seasonalityMode {mode!r}; allowed: additive, multiplicative")
    limit = raw.get("mapeLimit", 0.15)
    if not isinstance(limit, int | float) or limit <= 0:
        raise SettingsError(f"metrics[{i}].mapeLimit {limit!r} must be a positive number")
    return MetricSpec(name=name, source=source, query=query, seasonality_mode=mode,
                      hourly_seasonality=bool(raw.get("hourlySeasonality", False)), mape_limit=float(limit))


def parse(raw: Any) -> Settings:
    if not isinstance(raw, dict):
        raise SettingsError("settings must be a JSON object")
    metrics = raw.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise SettingsError("settings.metrics must be a non-empty list")
    specs = tuple(_metric(i, m) for i, m in enumerate(metrics))
    url = raw.get("prometheusUrl")
    if any(m.source == "prometheus" for m in specs) and not url:
        raise SettingsError("prometheusUrl is required when a metric's source is prometheus")
    threshold = raw.get("confidenceThreshold", Settings.confidence_threshold)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise SettingsError(f"confidenceThreshold {threshold!r} must be within [0, 1]")
    return Settings(metrics=specs, prometheus_url=url, confidence_threshold=float(threshold),
                    history_days=int(raw.get("historyDays", 90)),
                    forecast_max_age_s=int(raw.get("forecastMaxAgeS", 192 * 3600)))


def load(package_dir: Path) -> Settings:
    path = package_dir / SETTINGS_FILE
    try:
        return parse(json.loads(path.read_text()))
    except FileNotFoundError:
        raise SettingsError(f"{path} is missing: infra bakes it into the package") from None
    except json.JSONDecodeError as e:
        raise SettingsError(f"{path} is not valid JSON: {e}") from None


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SettingsError(f"environment variable {name} is not set (infra sets it on the function)")
    return value
