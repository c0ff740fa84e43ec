"""Stack config parsing: Pulumi config values -> a typed StackConfig, with every problem reported at once."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config

from infra.config.rules import cross_field_problems
from infra.config.schema import ABSENT, PROJECT, ConfigError, Problem, camel, constraint_text, describe
from infra.config.slo_alerting import load_slo_definitions
from infra.config.stack import SECRET_KEYS, Secrets, StackConfig


class _Parser:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.problems.append(Problem(key, value, allowed))

    def value(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if raw is None:
                return None
            return self.value(inner[0], raw, key, meta)
        if dataclasses.is_dataclass(tp):
            if not isinstance(raw, dict):
                self.fail(key, raw, f"must be {describe(tp)}")
                return ABSENT
            return self.section(tp, raw, key)
        if origin is list:
            if not isinstance(raw, list):
                self.fail(key, raw, f"must be {describe(tp)}")
                return ABSENT
            items = [self.value(args[0], item, f"{key}[{i}]", meta) for i, item in enumerate(raw)]
            if meta.get("min_items") and len(items) < meta["min_items"]:
                self.fail(key, raw, f"needs at least {meta['min_items']} item(s)")
            return items
        if origin is dict:
            if not isinstance(raw, dict):
                self.fail(key, raw, f"must be {describe(tp)}")
                return ABSENT
            return {str(k): self.value(args[1], v, f"{key}.{k}", meta) for k, v in raw.items()}
        return self.scalar(tp, raw, key, meta)

    def scalar(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        allowed = f"must be {describe(tp)}"
        extra = constraint_text(meta)
        if extra:
            allowed += f" {extra}"
        if typing.get_origin(tp) is Literal:
            if raw not in typing.get_args(tp):
                self.fail(key, raw, allowed)
                return ABSENT
            return raw
        if tp is bool:
            if not isinstance(raw, bool):
                self.fail(key, raw, allowed)
                return ABSENT
            return raw
        if tp in (int, float):
            ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
            if tp is int and ok and float(raw) != int(raw):
                ok = False
            if not ok:
                self.fail(key, raw, allowed)
                return ABSENT
            val = tp(raw)
            lo, hi = meta.get("minimum"), meta.get("maximum")
            xlo, xhi = meta.get("exclusive_minimum"), meta.get("exclusive_maximum")
            if ((lo is not None and val < lo) or (hi is not None and val > hi)
                    or (xlo is not None and val <= xlo) or (xhi is not None and val >= xhi)):
                self.fail(key, raw, allowed)
                return ABSENT
        elif tp is str:
            if not isinstance(raw, str):
                self.fail(key, raw, allowed)
                return ABSENT
            val = raw
            if meta.get("pattern") and not re.match(meta["pattern"], val):
                self.fail(key, raw, allowed)
                return ABSENT
        else:  # pragma: no cover - a field type this parser does not know is a programming error
            raise TypeError(f"unsupported config field type {tp!r} at {key}")
        if meta.get("choices") is not None and val not in meta["choices"]:
            self.fail(key, raw, allowed)
            return ABSENT
        return val

    def section(self, cls: Any, raw: Mapping[str, Any], prefix: str) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {camel(f.name): f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for key in raw:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.fail(f"{prefix}.{key}", raw[key],
                          f"unknown key{hint}; allowed keys: {', '.join(sorted(fields))}")
        kwargs: dict[str, Any] = {}
        for key, f in fields.items():
            full = f"{prefix}.{key}"
            if key in raw:
                val = self.value(hints[f.name], raw[key], full, f.metadata)
                if val is not ABSENT:
                    kwargs[f.name] = val
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(full, ABSENT, f"required: {f.metadata.get('doc', '')}")
        if self.problems and any(p.key.startswith(prefix + ".") for p in self.problems):
            try:
                return cls(**kwargs)
            except TypeError:
                return ABSENT
        return cls(**kwargs)


def _all_config() -> dict[str, Any]:
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def _secret_keys() -> set[str]:
    return set(runtime_config._SECRET_KEYS.get()) | set(runtime_config.get_config_secret_keys_env())


def _decode(raw: Any) -> Any:
    """Pulumi hands structured config over as JSON text and scalars as strings."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_stack_config(values: Mapping[str, Any], secret_keys: set[str],
                       secret_reader: Callable[[str], pulumi.Output[str] | None] | None = None) -> StackConfig:
    """Parse fully qualified project config values; raise ConfigError with every problem."""
    parser = _Parser()
    prefix = f"{PROJECT}:"
    raw: dict[str, Any] = {}
    present_secrets: set[str] = set()
    for full_key, value in values.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        if key in SECRET_KEYS:
            if full_key not in secret_keys:
                parser.fail(full_key, "<plain text>",
                            f"must be a secret: pulumi config set --secret {key} ... ({SECRET_KEYS[key]})")
            present_secrets.add(key)
            continue
        raw[key] = _decode(value)

    top_fields = {camel(f.name) for f in dataclasses.fields(StackConfig) if not f.metadata.get("internal")}
    unknown = [k for k in raw if k not in top_fields]
    for key in unknown:
        choices = sorted(top_fields | set(SECRET_KEYS))
        close = difflib.get_close_matches(key, choices, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        parser.fail(f"{PROJECT}:{key}", raw.pop(key), f"unknown key{hint}; allowed keys: {', '.join(choices)}")

    cfg = parser.section(StackConfig, raw, PROJECT)
    # section() reports nested paths as "<project>.<key>": show them the way `pulumi config` spells them.
    problems = [Problem(p.key.replace(f"{PROJECT}.", f"{PROJECT}:", 1), p.value, p.allowed) for p in parser.problems]
    if cfg is not ABSENT and not problems:
        problems += cross_field_problems(cfg, present_secrets)
    slos, symptoms, definition_problems = load_slo_definitions()  # rules/: one report with the config's
    problems += definition_problems
    if problems:
        raise ConfigError(problems)

    read = secret_reader or (lambda k: None)
    secrets = Secrets(
        kubeconfig=read("kubeconfig") if "kubeconfig" in present_secrets else None,
        pagerduty_routing_key=read("pagerdutyRoutingKey") if "pagerdutyRoutingKey" in present_secrets else None,
        pagerduty_cloudwatch_key=(read("pagerdutyCloudwatchKey")
                                  if "pagerdutyCloudwatchKey" in present_secrets else None),
        pagerduty_webhook_secret=(read("pagerdutyWebhookSecret")
                                  if "pagerdutyWebhookSecret" in present_secrets else None),
        slack_webhook_url=read("slackWebhookUrl") if "slackWebhookUrl" in present_secrets else None,
    )
    slo_alerting = dataclasses.replace(cfg.slo_alerting, slos=slos, symptoms=symptoms)
    return dataclasses.replace(cfg, secrets=secrets, slo_alerting=slo_alerting)


def load_stack_config() -> StackConfig:
    """Read and validate the current stack's config from the Pulumi runtime."""
    conf = pulumi.Config(PROJECT)
    return parse_stack_config(_all_config(), _secret_keys(), secret_reader=conf.get_secret)
