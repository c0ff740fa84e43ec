"""Stack config parsing: Pulumi config values -> a typed StackConfig, with every problem reported at once."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config

from infra.config.formats import FORMATS
from infra.config.providers import provider_key_problem, provider_keys
from infra.config.rules import cross_field_problems, required_secrets
from infra.config.schema import ABSENT, PROJECT, ConfigError, Problem, camel, constraint_text, describe
from infra.config.slo_alerting import load_slo_definitions
from infra.config.stack import SECRET_KEYS, Secrets, StackConfig

# Namespaces of provider and engine config (`aws:region`, `pulumi:disable-default-providers`): read by the
# providers and the engine, not by this program, and checked against the keys they read (providers.py). Any
# other namespace is a typo of the project's.
PROVIDER_NAMESPACES = tuple(provider_keys())
# Provider keys that hold credentials: in plain text they would sit in the stack file and the state.
PROVIDER_SECRET_KEYS = ("aws:accessKey", "aws:secretKey", "aws:token", "pagerduty:token", "pagerduty:userToken",
                        "kubernetes:kubeconfig")


# The magnitude any numeric setting without its own bound may have (beyond it: a typo).
MAX_UNBOUNDED_NUMBER = 1e15
# Settings that moved to a section of their own (old dotted key -> new one): a stack file still using the old key
# gets an error naming the new one, never a silent default.
MOVED_KEYS = {
    "dashboards.synthetics": "synthetics",
    "dashboards.alertingPath": "alertingPath",
    "dashboards.cost": "costWatch",
    "costWatch.budgetEnabled": "costWatch.enabled",
}


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
            key_format = meta.get("key_format")
            out = {}
            for k, v in raw.items():
                if key_format and not FORMATS[key_format].check(str(k)):
                    self.fail(f"{key}.{k}", k, f"key must be {FORMATS[key_format].doc}")
                out[str(k)] = self.value(args[1], v, f"{key}.{k}", meta)
            return out
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
            if ok and isinstance(raw, float) and not math.isfinite(raw):
                self.fail(key, raw, f"{allowed} (NaN and infinities are not numbers a service accepts)")
                return ABSENT
            if tp is int and ok and isinstance(raw, float) and not raw.is_integer():
                ok = False
            if not ok:
                self.fail(key, raw, allowed)
                return ABSENT
            val: Any = int(raw) if tp is int else float(raw)
            lo, hi = meta.get("minimum"), meta.get("maximum")
            xlo, xhi = meta.get("exclusive_minimum"), meta.get("exclusive_maximum")
            if ((lo is not None and val < lo) or (hi is not None and val > hi)
                    or (xlo is not None and val <= xlo) or (xhi is not None and val >= xhi)):
                self.fail(key, raw, allowed)
                return ABSENT
            if (hi is None and xhi is None and abs(val) > MAX_UNBOUNDED_NUMBER) or (
                    lo is None and xlo is None and abs(val) > MAX_UNBOUNDED_NUMBER):
                # A field without an explicit bound still takes no value no AWS API or counter would: 1e300
                # dollars or requests is a typo, not a setting.
                self.fail(key, raw, f"{allowed}; at most {MAX_UNBOUNDED_NUMBER:.0e} in magnitude")
                return ABSENT
        elif tp is str:
            if not isinstance(raw, str):
                self.fail(key, raw, allowed)
                return ABSENT
            # The whole string, ASCII classes: no trailing newline, no Arabic-Indic digits as account ids.
            if meta.get("pattern") and not re.fullmatch(meta["pattern"], raw, re.ASCII):
                self.fail(key, raw, allowed)
                return ABSENT
            fmt = FORMATS[meta["format"]] if meta.get("format") else None
            if fmt is not None and not fmt.check(raw):
                why = fmt.why(raw) if fmt.why else None
                self.fail(key, raw, f"must be {fmt.doc}" + (f" ({why})" if why else ""))
                return ABSENT
            val = raw
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
            moved = MOVED_KEYS.get(f"{prefix}.{key}".removeprefix(f"{PROJECT}."))
            if moved is not None and key not in fields:
                self.fail(f"{prefix}.{key}", raw[key],
                          f"moved: set it as {PROJECT}:{moved} (the same keys, now a section of its own)"
                          if "." not in moved else f"moved: set it as {PROJECT}:{moved}")
                continue
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


def _takes_text(tp: Any) -> bool:
    """A field whose config value is the string itself (never JSON-decoded: `owner: "123"` is the text 123)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return all(_takes_text(a) for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is Literal:
        return all(isinstance(a, str) for a in typing.get_args(tp))
    return tp is str


def _decode(raw: Any, tp: Any) -> Any:
    """Pulumi hands structured config over as JSON text and scalars as strings; strings stay strings."""
    if not isinstance(raw, str) or _takes_text(tp):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON (JSONDecodeError), or beyond int/recursion limits
        return raw


def _top_level_fields() -> dict[str, Any]:
    hints = typing.get_type_hints(StackConfig)
    return {camel(f.name): hints[f.name] for f in dataclasses.fields(StackConfig) if not f.metadata.get("internal")}


def _closest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean '{PROJECT}:{close[0]}'?)" if close else ""


def _split(values: Mapping[str, Any], secret_keys: set[str], parser: _Parser,
           stack: str | None) -> tuple[dict[str, Any], set[str]]:
    """Project keys (decoded) and the present secrets; every key outside the known namespaces is a problem."""
    fields = _top_level_fields()
    choices = sorted(set(fields) | set(SECRET_KEYS))
    stack_flag = f" -s {stack}" if stack else ""
    raw: dict[str, Any] = {}
    present_secrets: set[str] = set()
    for full_key, value in values.items():
        namespace, sep, key = full_key.partition(":")
        if not sep:
            namespace, key = PROJECT, full_key
        if namespace in PROVIDER_NAMESPACES:
            why = provider_key_problem(namespace, key, value, PROJECT, choices)
            if why is not None:
                parser.fail(full_key, _decode(value, Any) if key in choices else value, why)
            elif full_key in PROVIDER_SECRET_KEYS and full_key not in secret_keys:
                parser.fail(full_key, "<plain text>", f"must be a secret (a credential): pulumi config rm "
                            f"{full_key}{stack_flag}; pulumi config set --secret {full_key}{stack_flag}")
            continue
        if namespace != PROJECT:
            spaces = {n.lower(): n for n in (PROJECT, *PROVIDER_NAMESPACES)}
            near = difflib.get_close_matches(namespace.lower(), list(spaces), n=1, cutoff=0.6)
            hint = (f" (did you mean '{spaces[near[0]]}:{key}'?)" if near and (near[0] != PROJECT or key in choices)
                    else _closest(key, choices))
            parser.fail(full_key, "...", f"unknown namespace '{namespace}'{hint}: project "
                        f"settings live under '{PROJECT}:', provider and engine settings under "
                        + ", ".join(f"'{n}:'" for n in PROVIDER_NAMESPACES)
                        + " (the namespaces of the installed provider SDKs)")
            continue
        if key in SECRET_KEYS:
            if f"{PROJECT}:{key}" not in secret_keys:
                parser.fail(f"{PROJECT}:{key}", "<plain text>",
                            f"must be a secret ({SECRET_KEYS[key]}): pulumi config rm {key}{stack_flag}; "
                            f"pulumi config set --secret {key}{stack_flag}")
            present_secrets.add(key)
            continue
        if key not in fields:
            parser.fail(f"{PROJECT}:{key}", _decode(value, Any),
                        f"unknown key{_closest(key, choices).replace(PROJECT + ':', '')}; allowed keys: "
                        f"{', '.join(choices)}")
            continue
        raw[key] = _decode(value, fields[key])
    return raw, present_secrets


def _parse(values: Mapping[str, Any], secret_keys: set[str],
           stack: str | None) -> tuple[StackConfig | None, set[str], list[Problem]]:
    parser = _Parser()
    raw, present_secrets = _split(values, secret_keys, parser, stack)
    cfg = parser.section(StackConfig, raw, PROJECT)
    # section() reports nested paths as "<project>.<key>": show them the way `pulumi config` spells them.
    problems = [Problem(p.key.replace(f"{PROJECT}.", f"{PROJECT}:", 1), p.value, p.allowed) for p in parser.problems]
    if cfg is ABSENT or problems:
        return None, present_secrets, problems
    problems = cross_field_problems(cfg, present_secrets, stack)
    provider_region = values.get("aws:region")
    if provider_region is not None and provider_region != cfg.aws.region:
        # Every resource names the stack's own provider (built from aws.region); `aws:region` only configures the
        # default provider. Two regions mean one of them is silently not where the stack deploys.
        problems.append(Problem("aws:region", provider_region,
                                f"must equal {PROJECT}:aws.region ({cfg.aws.region!r}), the region the stack deploys "
                                "to: the program's providers are built from that one"))
    return cfg, present_secrets, problems


def missing_secret_keys(values: Mapping[str, Any], secret_keys: set[str]) -> list[str]:
    """Secret keys this config requires and does not set (what an offline stand-in may fill); [] when the
    config has other problems (they are reported first)."""
    cfg, present, _ = _parse(values, secret_keys, None)
    if cfg is None:
        return []
    return sorted(k for k in required_secrets(cfg) if k not in present)


def parse_stack_config(values: Mapping[str, Any], secret_keys: set[str],
                       secret_reader: Callable[[str], pulumi.Output[str] | None] | None = None,
                       stack: str | None = None) -> StackConfig:
    """Parse fully qualified config values; raise ConfigError with every problem.

    `stack` names the stack in the commands the messages give (`pulumi config set --secret KEY -s STACK`)."""
    cfg, present_secrets, problems = _parse(values, secret_keys, stack)
    slos, symptoms, definition_problems = load_slo_definitions()  # rules/: one report with the config's
    problems += definition_problems
    if problems or cfg is None:
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
        pagerduty_token=read("pagerdutyToken") if "pagerdutyToken" in present_secrets else None,
    )
    slo_alerting = dataclasses.replace(cfg.slo_alerting, slos=slos, symptoms=symptoms)
    return dataclasses.replace(cfg, secrets=secrets, slo_alerting=slo_alerting)


def load_stack_config() -> StackConfig:
    """Read and validate the current stack's config from the Pulumi runtime."""
    conf = pulumi.Config(PROJECT)
    return parse_stack_config(_all_config(), _secret_keys(), secret_reader=conf.get_secret,
                              stack=pulumi.get_stack())
