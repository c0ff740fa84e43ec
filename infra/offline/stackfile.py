"""Read `Pulumi.<stack>.yaml` the way the CLI hands it to a program: namespaced keys, string values.

Secure values cannot be decrypted offline: each becomes a placeholder marked secret, so the program sees a
secret exactly where the real run would, and the plan can prove no placeholder leaks into plain text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import PROJECT
from infra.core.paths import ROOT

SECRET_PLACEHOLDER_PREFIX = "offline-secret-placeholder-"


class StackFileError(Exception):
    pass


@dataclass(frozen=True)
class StackFile:
    stack: str
    values: dict[str, str]
    secret_keys: list[str]

    @property
    def placeholders(self) -> list[str]:
        return [v for k, v in self.values.items() if k in self.secret_keys]


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return ("secure" in value and len(value) == 1) or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _replace_secure(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER_PREFIX + key.split(":", 1)[-1]
        return {k: _replace_secure(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _as_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value)


def stack_file_path(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str, path: Path | None = None) -> StackFile:
    path = path or stack_file_path(stack)
    if not path.exists():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
        raise StackFileError(f"no stack file {path.name} for stack '{stack}'; known stacks: {', '.join(known)}")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise StackFileError(f"{path.name} is not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise StackFileError(f"{path.name}: expected a mapping with a 'config:' mapping")
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if _has_secure(value):
            secret_keys.append(full)
            value = _replace_secure(value, full)
        values[full] = _as_config_string(value)
    return StackFile(stack=stack, values=values, secret_keys=secret_keys)


def with_overrides(stack_file: StackFile, overrides: dict[str, Any],
                   secrets: dict[str, str] | None = None, remove: tuple[str, ...] = ()) -> StackFile:
    """A copy of `stack_file` with project keys deep-merged (objects) or replaced (scalars).

    `secrets` adds secret keys (marked secret, as the CLI would); `remove` drops keys."""
    values = dict(stack_file.values)
    secret_keys = list(stack_file.secret_keys)
    for key in remove:
        full = key if ":" in key else f"{PROJECT}:{key}"
        values.pop(full, None)
        if full in secret_keys:
            secret_keys.remove(full)
    for key, value in overrides.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        current = values.get(full)
        if isinstance(value, dict) and current is not None and current.startswith("{"):
            values[full] = _as_config_string(_deep_merge(json.loads(current), value))
        else:
            values[full] = _as_config_string(value)
    for key, value in (secrets or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        values[full] = value
        if full not in secret_keys:
            secret_keys.append(full)
    return StackFile(stack=stack_file.stack, values=values, secret_keys=secret_keys)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
