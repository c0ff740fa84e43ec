"""Provider and engine config (`aws:region`, `kubernetes:context`, `pulumi:disable-default-providers`): the keys
each namespace accepts, derived from the installed provider SDKs, so a typo (`aws:regoin`) or a project section
written under a provider's namespace (`kubernetes:sloAlerting`) is refused like a typo of the project's own keys.

The providers read their config by key, and ignore a key they do not know: the deploy would run without it.
Each Python SDK lists the keys its provider reads: `pulumi_aws.config.vars` and `pulumi_pagerduty.config.vars`
(`__config__.get_bool('insecure')`), and for Kubernetes (whose SDK has no config module) the `ProviderArgs`
getters, which are the provider's config keys (Pulumi Kubernetes provider docs, "Configuration"). The SDK source
is read, not imported: importing pulumi_aws costs seconds.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infra.config.formats import AWS_REGIONS

ValueKind = Literal["str", "bool", "int", "list", "map", "any"]

# Engine keys of the `pulumi:` namespace documented for stack config (Pulumi docs, "Configuration" and
# "Disable default providers" (3.23.0); `pulumi:tags` sets stack tags from config).
PULUMI_ENGINE_KEYS: dict[str, ValueKind] = {"disable-default-providers": "list", "tags": "map"}
# Provider namespace -> the SDK package that lists its keys (pulumi-pagerduty is optional: without its SDK the
# stack cannot use the provider, so its namespace is unknown).
PROVIDER_SDKS = {"aws": "pulumi_aws", "kubernetes": "pulumi_kubernetes", "pagerduty": "pulumi_pagerduty"}



@dataclass(frozen=True)
class ProviderKeys:
    namespace: str
    keys: Mapping[str, ValueKind]
    source: str  # where the keys come from, shown in errors


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


_CONFIG_GET = re.compile(r"__config__\.get(_bool|_int|_float|_object)?\('([^']+)'\)")
_GETTER = re.compile(r"@pulumi\.getter(?:\(name=\"(\w+)\"\))?\s+def (\w+)\(self\) -> ([^:]+):")


def _from_config_vars(text: str) -> dict[str, ValueKind]:
    kinds: dict[str | None, ValueKind] = {None: "any", "_bool": "bool", "_int": "int", "_float": "any",
                                          "_object": "any"}
    return {key: kinds[getter or None] for getter, key in _CONFIG_GET.findall(text)}


def _from_provider_args(text: str) -> dict[str, ValueKind]:
    body = text.split("class ProviderArgs", 1)[-1].split("\nclass ", 1)[0]
    out: dict[str, ValueKind] = {}
    for name, attr, annotation in _GETTER.findall(body):
        key = name or attr
        out[key] = "bool" if "bool]" in annotation else ("int" if "int]" in annotation else "any")
    return out


@functools.cache
def provider_keys() -> dict[str, ProviderKeys]:
    """Namespace -> the keys its installed SDK reads (plus the engine's `pulumi:` keys)."""
    out = {"pulumi": ProviderKeys("pulumi", dict(PULUMI_ENGINE_KEYS), "Pulumi's documented engine keys")}
    for namespace, package in PROVIDER_SDKS.items():
        root = _package_dir(package)
        if root is None:
            continue
        vars_py = root / "config" / "vars.py"
        if vars_py.exists():
            keys = _from_config_vars(vars_py.read_text(encoding="utf-8"))
            source = f"{package}.config"
        else:
            keys = _from_provider_args((root / "provider.py").read_text(encoding="utf-8"))
            source = f"{package}.ProviderArgs"
        if keys:
            out[namespace] = ProviderKeys(namespace, keys, source)
    return out


def _value_problem(namespace: str, key: str, kind: ValueKind, raw: Any) -> str | None:
    """What the provider would refuse in a value (the CLI hands every value over as text; structured as JSON)."""
    text = raw if isinstance(raw, str) else json.dumps(raw)
    if kind == "bool" and text not in ("true", "false"):
        return "must be true or false"
    if kind == "int" and not re.fullmatch(r"-?[0-9]{1,9}", text, re.ASCII):
        return "must be an integer"
    if kind in ("list", "map"):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if kind == "list" and not (isinstance(decoded, list) and all(isinstance(v, str) for v in decoded)):
            return 'must be a list of strings, e.g. ["*"]'
        if (namespace, key) == ("pulumi", "disable-default-providers"):
            names = sorted(n for n in provider_keys() if n != "pulumi")
            unknown = [v for v in decoded if v != "*" and v not in names]
            if unknown:  # a misspelt provider name leaves that default provider on, silently
                return f"items must be '*' or provider names ({', '.join(names)}); unknown: {', '.join(unknown)}"
        if kind == "map" and not (isinstance(decoded, dict) and all(isinstance(v, str) for v in decoded.values())):
            return "must be a map of string to string"
    if (namespace, key) == ("aws", "region") and text not in AWS_REGIONS:
        return "must be an AWS commercial region: " + ", ".join(AWS_REGIONS)
    return None


def provider_key_problem(namespace: str, key: str, raw: Any, project: str,
                         project_keys: list[str]) -> str | None:
    """Why `namespace:key` is refused (None: a key its provider reads, with a value it takes)."""
    known = provider_keys()
    if namespace not in known:
        return None  # not a provider namespace: the caller reports the namespace
    spec = known[namespace]
    if key in spec.keys:
        problem = _value_problem(namespace, key, spec.keys[key], raw)
        reader = "the Pulumi engine" if namespace == "pulumi" else f"the {namespace} provider"
        return f"{problem} ({namespace}:{key}, read by {reader})" if problem else None
    if key in project_keys:
        return (f"'{key}' is a setting of this project, not of the {namespace} provider (which ignores it): "
                f"write it as '{project}:{key}'")
    close = difflib.get_close_matches(key, list(spec.keys), n=1, cutoff=0.6)
    hint = f" (did you mean '{namespace}:{close[0]}'?)" if close else ""
    return (f"unknown key of the {namespace} provider{hint}: the provider ignores it; keys it reads "
            f"({spec.source}): {', '.join(sorted(spec.keys))}")
