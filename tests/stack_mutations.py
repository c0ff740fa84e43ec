"""Mutations of a stack file (drop, rename, retype, NaN/Inf, huge, unicode, newline, duplicate key; a project section
moved under a provider's namespace, a typo of a provider key; a value the receiving service refuses, from the
REFUSED catalogue) and the judge of one outcome: exit 0 (accepted), exit 2 naming the key (clean rejection), or a
finding (crash, silent drop, accepted nonsense). Shared by the Hypothesis property test and the fuzz pass
(tests/fuzz_stack_config.py)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

PROJECT = "akidb-observability"
PROVIDER_NAMESPACES = ("pulumi:", "aws:", "kubernetes:", "pagerduty:")
# Free-form maps: their keys are data, so renaming one is a legitimate edit, not a typo to catch.
FREE_FORM = ("prometheusRuleLabels",)
# A mutation whose acceptance is always a finding (the value is nonsense whatever the key).
NONSENSE = ("rename", "namespace", "nan", "inf", "newline", "duplicate", "huge_number", "bad_tag",
            "provider_namespace", "provider_typo", "refused")
# Kinds whose acceptance means a setting was silently not applied.
DROPS = ("rename", "namespace", "duplicate", "provider_namespace", "provider_typo")
BAD_TAGS = ("!!int abc", "!!bool maybe", "!!float x1", "!!null 3", "!!int 1.5", "!!bool yes")

Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class Mutation:
    kind: str
    path: Path_  # ("akidb-observability:xray", "samplingRules", 0, "serviceName")
    text: str  # the mutated stack file

    @property
    def key(self) -> str:
        """The mutated key the way problems spell it: `akidb-observability:xray.samplingRules[0].serviceName`."""
        out = str(self.path[0]) if self.path else ""
        for part in self.path[1:]:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out

    @property
    def leaf(self) -> str:
        named = [p for p in self.path if isinstance(p, str)]
        return named[-1].split(":")[-1] if named else ""


def paths(doc: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key path of the `config:` tree (maps and list items)."""
    out: list[Path_] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*prefix, k))
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((*prefix, i))
            out += paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _typo(word: str, rnd: Chooser) -> str:
    i = rnd.randrange(len(word))
    choice = rnd.randrange(3)
    if choice == 0:
        return word[:i] + word[i + 1:] if len(word) > 1 else word + "x"
    if choice == 1:
        return word[:i] + rnd.choice("aeioux") + word[i:]
    j = min(i + 1, len(word) - 1)
    swapped = word[:i] + word[j] + word[i] + word[j + 1:]
    return swapped if swapped != word else word + "s"


ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))
UNICODE_VARIANTS: tuple[Callable[[str], str], ...] = (
    lambda s: s.translate(ARABIC_INDIC_DIGITS) if any(c.isdigit() for c in s) else s + "\u0663",
    lambda s: s + "\u200b",  # zero-width space
    lambda s: "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48" + s,
    lambda s: s + "\u00e9",
    lambda s: "\U0001f525" + s,
)
RETYPES: tuple[Callable[[Any], Any], ...] = (
    lambda v: str(v),
    lambda v: 7,
    lambda v: -1,
    lambda v: 0,
    lambda v: 0.5,
    lambda v: True,
    lambda v: None,
    lambda v: [v],
    lambda v: {"x": v},
    lambda v: "",
    lambda v: "yes",
    lambda v: "123",
    lambda v: "true",
)


KINDS = ("drop", "rename", "namespace", "retype", "nan", "inf", "huge_string", "huge_number", "unicode", "newline",
         "empty", "duplicate", "text", "bad_tag", "provider_namespace", "provider_typo", "refused")

_P = PROJECT + ":"
_OTHER_ACCOUNT = "999999999999"
# Values the service that receives them refuses (or that can never work), each at the key that holds it: every
# one must be refused by the stack check. `only` limits an entry to one environment (prod's safety switches).
REFUSED: tuple[tuple[tuple[Any, ...], Any, str | None], ...] = (
    ((_P + "anomaly", "prometheusUrl"), "https://...", None),
    ((_P + "anomaly", "prometheusUrl"), "https://prometheus.akidb.internal:0", None),
    ((_P + "anomaly", "prometheusUrl"), "https://prometheus.akidb.internal:99999", None),
    ((_P + "anomaly", "prometheusUrl"), "http://0.0.0.0:9090", None),
    ((_P + "anomaly", "prometheusUrl"), "https://aps-workspaces.us-east-1.amazonaws.com/", None),
    ((_P + "anomaly", "prometheusUrl"), "http://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1", None),
    ((_P + "anomaly", "metrics"), [{"name": "lat", "source": "cloudwatch", "query": "AkiDB/Edge|Latency|p101"}], None),
    ((_P + "anomaly", "metrics"), [{"name": "lat", "source": "cloudwatch", "query": "AkiDB/Edge|Latency|Bogus"}], None),
    ((_P + "anomaly", "metrics"), [{"name": "lat", "source": "cloudwatch",
                                    "query": "AkiDB/Edge|Latency|Average|FunctionName"}], None),
    ((_P + "anomaly", "metrics"), [{"name": "lat", "source": "prometheus", "query": "sum(rate(x[5m])"}], None),
    ((_P + "anomaly", "metrics"), [{"name": "lat", "source": "prometheus", "query": "rate(x[5q])"}], None),
    ((_P + "anomaly", "trainSchedule"), "cron(0 3 31 2 ? *)", None),
    ((_P + "anomaly", "trainSchedule"), "cron(0 3 ? * SUN 2020)", None),
    ((_P + "anomaly", "trainSchedule"), "cron(0 3 29 2 ? *)", None),
    ((_P + "anomaly", "trainSchedule"), "cron(0 3 1 * ? *)", None),
    ((_P + "anomaly", "detectSchedule"), "cron(0/5 * 30 2 ? *)", None),
    ((_P + "emfEdge", "alarms"), {"periodS": 86400, "evaluationPeriods": 8, "datapointsToAlarm": 1}, None),
    ((_P + "emfEdge", "alarms"), {"periodS": 300, "evaluationPeriods": 300, "datapointsToAlarm": 1}, None),
    ((_P + "emfEdge", "alarms"), {"inferenceLatencyP95Ms": 20000}, None),
    ((_P + "emfEdge", "namespace"), "AWS/Edge", None),
    ((_P + "synthetics",), {"evaluationPeriods": 30, "schedule": "rate(1 hour)", "datapointsToAlarm": 2}, None),
    ((_P + "synthetics",), {"maxLatencyMs": 60000, "timeoutS": 60}, None),
    ((_P + "synthetics",), {"edgeUrl": "https://..."}, None),
    ((_P + "synthetics",), {"restUrl": "https://127.0.0.1"}, None),
    ((_P + "synthetics",), {"embedText": "   "}, None),
    ((_P + "synthetics",), {"embedText": "probe \ud800 text"}, None),
    ((_P + "alertingPath",), {"webhookP99Ms": 5000}, None),
    ((_P + "sloAlerting", "ticketWebhookUrl"), "https://tickets.akidb.internal:0/alertmanager", None),
    ((_P + "sloAlerting", "heartbeatWebhookUrl"), "https://169.254.169.254/latest", None),
    ((_P + "synthetics",), {"restUrl": "https://api.akidb.internal:0"}, None),
    ((_P + "service",), "sthree", None),
    ((_P + "service",), "xn--akidb", None),
    ((_P + "service",), "amzn-s3-demo", None),
    ((_P + "aws", "assumeRoleArn"), f"arn:aws:iam::{_OTHER_ACCOUNT}:role/akidb-observability-deployer", None),
    ((_P + "kubernetes", "oidcProviderArn"),
     f"arn:aws:iam::{_OTHER_ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/0A1B", None),
    ((_P + "environment",), "staging", "prod"),
    ((_P + "environment",), "prod", "staging"),
    ((_P + "sloAlerting", "pagingEnabled"), False, "prod"),
    ((_P + "sloAlerting", "pagingDisabledReason"), "no on-call yet", "staging"),
    ((_P + "sloAlerting", "runbooks"), {"dryRun": True}, "prod"),
    ((_P + "sloAlerting", "runbooks"), {"dryRunReason": "first week in prod"}, "staging"),
    ((_P + "sloAlerting", "runbooks"), {"dryRunReason": "first week in prod"}, "prod"),
    ((_P + "sloAlerting", "maintenanceWindows"),
     [{"service": "akidb-rest", "weekdays": ["monday:sunday"], "start": "02:00", "end": "03:00"}], None),
    ((_P + "sloAlerting", "maintenanceWindows"),
     [{"service": "akidb-rest", "weekdays": ["friday:monday"], "start": "02:00", "end": "03:00"}], None),
    ((_P + "sloAlerting", "maintenanceWindows"),
     [{"service": "akidb-rest", "weekdays": ["tuesday"], "start": "23:00", "end": "24:30"}], None),
    ((_P + "sloAlerting", "maintenanceWindows"),
     [{"service": "akidb-rest", "weekdays": ["tuesday"], "start": "04:00", "end": "03:00"}], None),
    (("aws:region",), "us-east-7", None),
    (("aws:region",), "eu-west-1", None),
    (("pulumi:disable-default-providers",), "*", None),
    (("pulumi:disable-default-providers",), ["awz"], None),
)
# Characters a careless edit (or a paste) brings in: ASCII, blanks and controls, look-alikes, non-BMP.
ALPHABET = (*tuple("az09-_./:@*? "), "\n", "\t", "\r", "\x00", "\u00e9", "\u0663", "\uff10", "\u200b", "\ud7ff",
            "\U0001f525", "\\", '"')


class Chooser(Protocol):
    """What mutate() draws from: random.Random for the fuzz pass, a Hypothesis adapter for the property test."""

    def choice(self, seq: Sequence[Any]) -> Any: ...

    def randrange(self, stop: int) -> int: ...


def mutate(original: dict[str, Any], rnd: Chooser) -> Mutation:
    """One random mutation of a parsed stack file (`{"config": {...}}`), dumped back to YAML text."""
    doc = copy.deepcopy(original)
    config = doc["config"]
    every = paths(config)
    kind = rnd.choice(KINDS)
    if kind == "provider_namespace":
        # A project section written under a provider's namespace (`kubernetes:sloAlerting:`).
        top = [k for k in config if k.startswith(_P)]
        key = rnd.choice(top)
        ns = rnd.choice(PROVIDER_NAMESPACES)
        config[ns + key.split(":", 1)[1]] = config.pop(key)
        return Mutation(kind, (key,), yaml.safe_dump(doc, sort_keys=False))
    if kind == "provider_typo":
        top = [k for k in config if k.startswith(PROVIDER_NAMESPACES)]
        key = rnd.choice(top)
        ns, name = key.split(":", 1)
        new = f"{ns}:{_typo(name, rnd)}"
        config[new if new not in config else new + "x"] = config.pop(key)
        return Mutation(kind, (key,), yaml.safe_dump(doc, sort_keys=False))
    if kind == "refused":
        environment = str(config.get(_P + "environment"))
        path, refused, _ = rnd.choice([r for r in REFUSED if r[2] in (None, environment)])
        parent = config
        for part in path[:-1]:
            parent = parent.setdefault(part, {})
        if isinstance(refused, dict) and isinstance(parent.get(path[-1]), dict):
            parent[path[-1]] = {**parent[path[-1]], **copy.deepcopy(refused)}
        else:
            parent[path[-1]] = copy.deepcopy(refused)
        return Mutation(kind, path, yaml.safe_dump(doc, sort_keys=False))
    if kind == "namespace":
        top = [k for k in config if k.startswith(PROJECT + ":")]
        key = rnd.choice(top)
        bad = rnd.choice(("akidb-observabilty", "akidb", "akidb-observability-", "Akidb-observability"))
        config[bad + ":" + key.split(":", 1)[1]] = config.pop(key)
        return Mutation(kind, (key,), yaml.safe_dump(doc, sort_keys=False))
    if kind == "duplicate":
        top = [k for k in config if k.startswith(PROJECT + ":") and not isinstance(config[k], dict)]
        key = rnd.choice(top)
        text = yaml.safe_dump(doc, sort_keys=False)
        text = text.replace("config:\n", f"config:\n  {key}: {yaml.safe_dump(config[key]).splitlines()[0]}\n", 1)
        return Mutation(kind, (key,), text)
    if kind == "rename":
        candidates = [p for p in every if isinstance(p[-1], str) and not any(f in p[:-1] for f in FREE_FORM)
                      and (len(p) > 1 or p[0].startswith(PROJECT + ":"))]
        path = rnd.choice(candidates)
        parent = _get(config, path[:-1])
        old = path[-1]
        if ":" in old:
            ns, name = old.split(":", 1)
            new = f"{ns}:{_typo(name, rnd)}"
        else:
            new = _typo(old, rnd)
        if new in parent:
            new += "x"
        parent[new] = parent.pop(old)
        return Mutation(kind, path, yaml.safe_dump(doc, sort_keys=False))
    project_paths = [p for p in every if str(p[0]).startswith(PROJECT + ":")]
    if kind == "drop":
        path = rnd.choice(project_paths)
        parent = _get(config, path[:-1])
        del parent[path[-1]]
        return Mutation(kind, path, yaml.safe_dump(doc, sort_keys=False))
    scalars = [p for p in project_paths if not isinstance(_get(config, p), (dict, list))]
    strings = [p for p in scalars if isinstance(_get(config, p), str)]
    numbers = [p for p in scalars
               if isinstance(_get(config, p), (int, float)) and not isinstance(_get(config, p), bool)]
    if kind in ("nan", "inf", "huge_number"):
        path = rnd.choice(numbers)
        value: Any = {"nan": math.nan, "inf": rnd.choice((math.inf, -math.inf)),
                      "huge_number": rnd.choice((10 ** 30, 1e300, -10 ** 19))}[kind]
    elif kind == "retype":
        path = rnd.choice(project_paths)
        value = rnd.choice(RETYPES)(_get(config, path))
    elif kind == "huge_string":
        path = rnd.choice(strings)
        value = _get(config, path) + "a" * rnd.choice((300, 5000, 100_000))
    elif kind == "unicode":
        path = rnd.choice(strings)
        value = rnd.choice(UNICODE_VARIANTS)(_get(config, path))
    elif kind == "text":
        path = rnd.choice(strings)
        value = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(12)))
    elif kind == "newline":
        path = rnd.choice(strings)
        value = _get(config, path) + rnd.choice(("\n", " ", "\t", "\r\n", " \n"))
    elif kind == "bad_tag":
        # An explicit core-schema tag whose content is not of its form (`!!int abc`): written as text, since a
        # dumper never produces it.
        path = rnd.choice(scalars)
        _get(config, path[:-1])[path[-1]] = "BAD-TAG-SENTINEL"
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        return Mutation(kind, path, text.replace("BAD-TAG-SENTINEL", rnd.choice(BAD_TAGS), 1))
    else:  # empty
        path = rnd.choice(strings)
        value = ""
    _get(config, path[:-1])[path[-1]] = value
    return Mutation(kind, path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


@dataclass(frozen=True)
class Outcome:
    verdict: str  # "accepted", "rejected", "crash", "silent_drop", "nonsense_accepted", "rejected_unnamed"
    detail: str


def judge(mutation: Mutation, run: Callable[[Path], tuple[int, str]], tmp: Path, stack: str = "fuzz") -> Outcome:
    """Write the mutated file as `Pulumi.<stack>.yaml` (the stack a runner reads from the name: stack_of), run it
    (exit code, output), and classify the outcome."""
    path = tmp / f"Pulumi.{stack}.yaml"
    path.write_text(mutation.text, encoding="utf-8")
    code, output = run(path)
    if code not in (0, 2):
        return Outcome("crash", output[-300:])
    if code == 0:
        if mutation.kind in DROPS:
            return Outcome("silent_drop", mutation.key)
        if mutation.kind in NONSENSE:
            return Outcome("nonsense_accepted", mutation.key)
        return Outcome("accepted", mutation.key)
    named = mutation.leaf and mutation.leaf in output
    parent_named = any(isinstance(p, str) and p.split(":")[-1] in output.replace(f"{PROJECT}:", " ")
                       for p in mutation.path[:-1])
    if named or parent_named or (mutation.kind == "drop" and "required" in output):
        return Outcome("rejected", output.splitlines()[0][:200] if output else "")
    return Outcome("rejected_unnamed", f"{mutation.key}: {output[:300]}")


def stack_of(path: Path) -> str:
    """The stack a `Pulumi.<stack>.yaml` file is for."""
    return path.name.split(".")[1]


def load_original(root: Path, stack: str) -> dict[str, Any]:
    doc = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
    assert isinstance(doc, dict)
    return doc
