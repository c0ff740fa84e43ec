"""Read `Pulumi.<stack>.yaml` the way the CLI hands it to a program: namespaced keys, string values.

As strict as the CLI's own reader: a duplicate key is an error (with its line), scalars follow YAML 1.2's core
schema like the CLI's Go parser (`yes`, `on`, `1:30`, `2020-01-01` stay strings; `.nan` is a float the config
parser then rejects), and a `secure:` value that is not ciphertext is refused (the CLI fails on it with "could not
decrypt configuration value" before the program runs).

Secrets offline: ciphertext cannot be decrypted here, and a missing secret is reported by the config parser with
the command to set it. Only `with_offline_secrets()` (the plan's `--offline-secrets` switch, and the test
harness) stands in for them: each stand-in is a placeholder marked secret, listed so the plan can print which
values were stood in and prove none leaks into plain text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from infra.config import PROJECT
from infra.config.parser import missing_secret_keys
from infra.core.paths import ROOT

STAND_IN_PREFIX = "offline-secret-stand-in-"
SECRET_PLACEHOLDER_PREFIX = STAND_IN_PREFIX  # the name the plan's leak check and its tests use
# Pulumi ciphertext: `v1:<nonce>:<ciphertext>` (passphrase and cloud KMS providers) or the service's base64 blob.
CIPHERTEXT = re.compile(r"v1:[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9+/]{16,}={0,2}", re.ASCII)


class StackFileError(Exception):
    pass


@dataclass(frozen=True)
class StackFile:
    stack: str
    values: dict[str, str]
    secret_keys: list[str]
    # Keys holding ciphertext (`secure:`), which only a stand-in can replace offline.
    encrypted: list[str] = field(default_factory=list)
    # Keys given a stand-in value by with_offline_secrets().
    stood_in: list[str] = field(default_factory=list)

    @property
    def placeholders(self) -> list[str]:
        return [v for k, v in self.values.items() if k in self.secret_keys and v.startswith(STAND_IN_PREFIX)]


# ------------------------------------------------------------------------------------------------ YAML
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and no duplicate keys (what the CLI's Go parser does)."""


_StrictLoader.yaml_implicit_resolvers = {}
# The YAML 1.2 core schema's scalars: how a plain scalar is typed, and what an explicitly tagged one (`!!int x`)
# must look like (the CLI's Go parser refuses `!!int abc`; PyYAML's constructors would raise a bare ValueError).
_CORE_SCALARS = {
    "tag:yaml.org,2002:null": (r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    "tag:yaml.org,2002:bool": (r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    "tag:yaml.org,2002:int": (r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    "tag:yaml.org,2002:float": (
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        list("-+.0123456789")),
}
_CORE_PATTERNS = {tag: re.compile(rf"^(?:{regexp})$") for tag, (regexp, _) in _CORE_SCALARS.items()}
for _tag, (_, _first) in _CORE_SCALARS.items():
    _StrictLoader.add_implicit_resolver(_tag, _CORE_PATTERNS[_tag], _first)  # type: ignore[no-untyped-call]
# Alias expansion bound (a "billion laughs" file): yaml.v3, which the CLI uses, refuses excessive aliasing too.
MAX_EXPANDED_NODES = 100_000


def _core_scalar(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    """The text of a core-schema scalar, refused (with its line) when it is not of its tag's form."""
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag} needs a scalar", node.start_mark)
    text = str(loader.construct_scalar(node))  # a ScalarNode, checked above
    if not _CORE_PATTERNS[node.tag].match(text):
        kind = node.tag.rsplit(":", 1)[1]
        raise yaml.constructor.ConstructorError(
            None, None, f"{text[:40]!r} is not a valid !!{kind} (line {node.start_mark.line + 1})", node.start_mark)
    return text


def _construct_core(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    _core_scalar(loader, node)
    return {"tag:yaml.org,2002:null": yaml.SafeLoader.construct_yaml_null,
            "tag:yaml.org,2002:bool": yaml.SafeLoader.construct_yaml_bool,
            "tag:yaml.org,2002:float": yaml.SafeLoader.construct_yaml_float}[node.tag](loader, node)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = _core_scalar(loader, node).replace("_", "")
    if len(text.lstrip("+-")) > 30:  # beyond any setting; also keeps int() away from its 4,300-digit limit
        raise yaml.constructor.ConstructorError(None, None, f"integer {text[:20]}... is too long", node.start_mark)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    base = 16 if digits.startswith("0x") else 8 if digits.startswith("0o") else 10
    return sign * int(digits[2:] if base != 10 else digits, base)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} must be a string", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' on line {key_node.start_mark.line + 1} (first on line "
                f"{seen[key] + 1}); the Pulumi CLI rejects duplicate keys", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


def _unsupported(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag} is not a config value", node.start_mark)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
for _tag in ("null", "bool", "float"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct_core)
_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))  # the CLI's YAML 1.2 reading: a date is a string


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
for _tag in ("binary", "omap", "pairs", "set"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _unsupported)


def _expanded_size(root: yaml.Node | None) -> int:
    """Nodes the document holds once every alias is expanded, counted without expanding (memoised per node);
    stops early past MAX_EXPANDED_NODES. A node that contains itself is refused (it never ends)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise yaml.constructor.ConstructorError(None, None, "a node contains itself through an alias",
                                                    node.start_mark)
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                break
        visiting.discard(key)
        sizes[key] = total
        return total

    return 0 if root is None else size(root)


def _check_scalars(loader: yaml.SafeLoader, root: yaml.Node | None) -> None:
    """Every core-schema scalar of the document is of its tag's form; the first that is not is refused with the
    key path that holds it (`a.b[0]`), not only its line. Each node is visited once (aliases are not expanded)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [] if root is None else [(root, "")]
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode) and node.tag in _CORE_PATTERNS:
            try:
                _core_scalar(loader, node)
            except yaml.constructor.ConstructorError as err:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{where or 'the document'}: {err.problem}", node.start_mark) from None
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            stack.extend((value, f"{where}.{key.value}" if where else str(key.value)) for key, value in node.value)


def load_yaml(text: str, name: str) -> Any:
    try:
        loader = _StrictLoader(text)
        try:
            root = loader.get_single_node()
            if _expanded_size(root) > MAX_EXPANDED_NODES:
                raise StackFileError(f"{name}: its aliases expand to more than {MAX_EXPANDED_NODES:,} values; a "
                                     "stack file holds settings, not expansions (write the values out)")
            _check_scalars(loader, root)
            return None if root is None else loader.construct_document(root)  # type: ignore[no-untyped-call]
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except yaml.YAMLError as err:
        raise StackFileError(f"{name} is not a valid stack file: {err}") from None
    except RecursionError:
        raise StackFileError(f"{name} is nested too deeply to be a stack file") from None


# ------------------------------------------------------------------------------------------------ secrets
def _secure_values(value: Any, where: str) -> list[tuple[str, Any]]:
    """(path, payload) of every `{secure: ...}` inside a value."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return [(where, value["secure"])]
        return [hit for k, v in value.items() for hit in _secure_values(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in _secure_values(v, f"{where}[{i}]")]
    return []


def _replace_secure(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return STAND_IN_PREFIX + key.split(":", 1)[-1]
        return {k: _replace_secure(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _as_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # numbers (NaN as `NaN`, for the parser to reject by key), lists, maps


def stack_file_path(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str, path: Path | None = None) -> StackFile:
    path = path or stack_file_path(stack)
    if not path.exists():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
        raise StackFileError(f"no stack file {path.name} for stack '{stack}'; known stacks: {', '.join(known)}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise StackFileError(f"{path.name} is not UTF-8 text (byte {err.start}): the CLI reads YAML as UTF-8") from None
    doc = load_yaml(text, path.name) or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("config") or {}, dict):
        raise StackFileError(f"{path.name}: expected a mapping with a 'config:' mapping")
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    encrypted: list[str] = []
    problems: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        secure = _secure_values(value, full)
        for where, payload in secure:
            if not (isinstance(payload, str) and CIPHERTEXT.fullmatch(payload)):
                problems.append(
                    f"{where}: `secure:` holds {json.dumps(payload)[:60]}, which is not ciphertext: the Pulumi CLI "
                    f"stops with 'could not decrypt configuration value' before the program runs. Remove it and "
                    f"run: pulumi config set --secret {full.split(':', 1)[1]} -s {stack}")
        if secure:
            secret_keys.append(full)
            encrypted.append(full)
            value = _replace_secure(value, full)
        try:
            values[full] = _as_config_string(value)
        except (ValueError, RecursionError):
            problems.append(f"{full}: value cannot be handed to the program as config")
    if problems:
        raise StackFileError(f"{path.name}: " + "\n".join(problems))
    return StackFile(stack=stack, values=values, secret_keys=secret_keys, encrypted=encrypted)


def with_offline_secrets(stack_file: StackFile) -> tuple[StackFile, list[str]]:
    """Stand-ins for the secrets this config needs and the file cannot give offline (missing or encrypted).

    Only the offline plan's explicit `--offline-secrets` and the test harness call this. Returns the new stack
    file and the stood-in keys (also in `StackFile.stood_in`)."""
    missing = missing_secret_keys(stack_file.values, set(stack_file.secret_keys))
    stood_in = sorted(set(stack_file.encrypted) | {f"{PROJECT}:{k}" for k in missing})
    values = dict(stack_file.values)
    secret_keys = list(stack_file.secret_keys)
    for full in stood_in:
        values[full] = STAND_IN_PREFIX + full.split(":", 1)[1]
        if full not in secret_keys:
            secret_keys.append(full)
    return replace(stack_file, values=values, secret_keys=secret_keys, stood_in=stood_in), stood_in


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
    return replace(stack_file, values=values, secret_keys=secret_keys)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

