"""The coverage map (rules/coverage.yaml) as data, and the edge regions a CloudFront price class needs.

Read by the plan-time rule (infra/validation/coverage.py, also in the policy pack: pyyaml only), by the coverage
component that draws and alarms what the map says (infra/components/coverage.py), and by the config rule that the
edge regions cover the distribution's price class (`price_class_problems`, from infra/config/rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from infra.config.schema import PROJECT, Problem
from infra.config.stack import StackConfig
from infra.core import yamldoc
from infra.core.paths import RULES_DIR

COVERAGE_FILE = RULES_DIR / "coverage.yaml"
WAIVER_TAG = "coverage-waived"  # AWS: tag on the resource; value = why it needs no coverage
WAIVER_ANNOTATION = "akidb.io/coverage-waived"  # Kubernetes: annotation, same meaning
SEVERITIES = ("P0", "P1", "P2")

# The price class of the distribution emf-edge creates (infra/components/emf_edge.py reads it from here).
DISTRIBUTION_PRICE_CLASS = "PriceClass_All"
# Lambda@Edge runs in the Regional Edge Caches, which sit in these AWS Regions; a price class serves viewers from
# the edge locations of its geographies, whose requests run the function in the nearest of them. Geographies per
# class: https://aws.amazon.com/cloudfront/pricing/ ("Price classes"); REC Regions: "Restrictions on Lambda@Edge"
# and https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-cloudwatch-metrics-logging.html
# (a replica logs in the Region where it ran).
_NORTH_AMERICA_EUROPE = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-central-1", "eu-west-1",
                         "eu-west-2")
_ASIA_MIDDLE_EAST_AFRICA = ("ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1")
_SOUTH_AMERICA_OCEANIA = ("sa-east-1", "ap-southeast-2")
PRICE_CLASS_REGIONS: dict[str, tuple[str, ...]] = {
    "PriceClass_100": _NORTH_AMERICA_EUROPE,
    "PriceClass_200": _NORTH_AMERICA_EUROPE + _ASIA_MIDDLE_EAST_AFRICA,
    "PriceClass_All": _NORTH_AMERICA_EUROPE + _ASIA_MIDDLE_EAST_AFRICA + _SOUTH_AMERICA_OCEANIA,
}


class CoverageMapError(ValueError):
    """rules/coverage.yaml is malformed: the message names the entry and what is allowed."""


@dataclass(frozen=True)
class Required:
    namespace: str
    metrics: tuple[str, ...]  # any one of them satisfies the requirement
    severity: str = "P2"

    @property
    def label(self) -> str:
        return f"{self.namespace} {'|'.join(self.metrics)}"


@dataclass(frozen=True)
class TypeCoverage:
    type: str
    waived: str | None = None
    facade: str | None = None
    identity: dict[str, str] = field(default_factory=dict)  # dimension -> inputs.x / outputs.x / =literal
    region: str | None = None  # where the metrics live, when not the resource's Region (CloudFront)
    alarms: tuple[Required, ...] = ()
    widgets: tuple[Required, ...] = ()
    edge_alarms: tuple[Required, ...] = ()
    edge_widgets: tuple[Required, ...] = ()
    dead_letter_alarms: tuple[Required, ...] = ()
    alerts: tuple[str, ...] = ()  # Kubernetes: series a PrometheusRule alert must read


@dataclass(frozen=True)
class CoverageMap:
    types: dict[str, TypeCoverage]
    waivers: dict[tuple[str, str], str]  # (type, logical name) -> reason


_TYPE_KEYS = {"facade", "identity", "region", "alarms", "widgets", "edge", "deadLetter", "alerts", "waived"}


def _required(where: str, items: Any, alarmed: bool) -> tuple[Required, ...]:
    if not isinstance(items, list):
        raise CoverageMapError(f"{where}: expected a list of {{namespace, metric[, severity]}}, got {items!r}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not {"namespace", "metric"} <= set(item) or \
                set(item) - {"namespace", "metric", "severity"}:
            raise CoverageMapError(f"{where}[{i}]: expected keys namespace, metric and (alarms) severity, "
                                   f"got {item!r}")
        metrics = item["metric"] if isinstance(item["metric"], list) else [item["metric"]]
        severity = str(item.get("severity", "P2"))
        if alarmed and severity not in SEVERITIES:
            raise CoverageMapError(f"{where}[{i}].severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
        out.append(Required(str(item["namespace"]), tuple(str(m) for m in metrics), severity))
    return tuple(out)


def parse_coverage_map(doc: Any, source: str = "rules/coverage.yaml") -> CoverageMap:
    if not isinstance(doc, dict) or not isinstance(doc.get("types"), dict):
        raise CoverageMapError(f"{source}: expected a mapping with `types` (type token -> coverage)")
    types: dict[str, TypeCoverage] = {}
    for token, body in doc["types"].items():
        where = f"{source}: types.{token}"
        if not isinstance(body, dict) or not body:
            raise CoverageMapError(f"{where}: expected a mapping (alarms/widgets/alerts, or waived: <reason>)")
        unknown = set(body) - _TYPE_KEYS
        if unknown:
            raise CoverageMapError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_TYPE_KEYS)}")
        if "waived" in body:
            if set(body) != {"waived"} or not str(body["waived"]).strip():
                raise CoverageMapError(f"{where}: `waived` takes a non-empty reason and nothing else")
            types[token] = TypeCoverage(token, waived=str(body["waived"]))
            continue
        edge = body.get("edge") or {}
        dead = body.get("deadLetter") or {}
        identity = {str(k): str(v) for k, v in (body.get("identity") or {}).items()}
        for dim, src in identity.items():
            if not src.startswith(("inputs.", "outputs.", "=")):
                raise CoverageMapError(f"{where}.identity.{dim}: {src!r} must be inputs.<path>, outputs.<path> or "
                                       "=<literal>")
        types[token] = TypeCoverage(
            token, facade=body.get("facade"), identity=identity, region=body.get("region"),
            alarms=_required(f"{where}.alarms", body.get("alarms", []), True),
            widgets=_required(f"{where}.widgets", body.get("widgets", []), False),
            edge_alarms=_required(f"{where}.edge.alarms", edge.get("alarms", []), True),
            edge_widgets=_required(f"{where}.edge.widgets", edge.get("widgets", []), False),
            dead_letter_alarms=_required(f"{where}.deadLetter.alarms", dead.get("alarms", []), True),
            alerts=tuple(str(a) for a in body.get("alerts", [])))
        if (types[token].widgets or types[token].edge_widgets) and \
                any(src.startswith("outputs.") for src in identity.values()):
            raise CoverageMapError(f"{where}: widgets need an identity known at a preview (inputs.* or =literal): a "
                                   "dashboard body built from a computed id is refused (known_at_preview)")
        if (types[token].alarms or types[token].widgets) and not identity:
            raise CoverageMapError(f"{where}: alarms/widgets need an `identity` (the metric dimension naming it)")
    waivers: dict[tuple[str, str], str] = {}
    for i, w in enumerate(doc.get("waivers") or []):
        if not isinstance(w, dict) or set(w) != {"type", "name", "reason"} or not str(w["reason"]).strip():
            raise CoverageMapError(f"{source}: waivers[{i}]: expected type, name and a non-empty reason")
        waivers[(str(w["type"]), str(w["name"]))] = str(w["reason"]).strip()
    return CoverageMap(types=types, waivers=waivers)


@cache
def load_coverage_map(path: Path = COVERAGE_FILE) -> CoverageMap:
    return parse_coverage_map(yamldoc.safe_load(path.read_text(encoding="utf-8")), path.name)


def missing_price_class_regions(price_class: str, edge_regions: list[str]) -> list[str]:
    """Regions where the price class runs replicas but the stack has no log group settings or alarms."""
    if price_class not in PRICE_CLASS_REGIONS:
        raise ValueError(f"unknown price class {price_class!r}; known: {', '.join(PRICE_CLASS_REGIONS)}")
    return [r for r in PRICE_CLASS_REGIONS[price_class] if r not in edge_regions]


def price_class_problems(cfg: StackConfig) -> list[Problem]:
    """With its own distribution, the stack must watch every Region the price class runs replicas in."""
    edge = cfg.emf_edge
    if not (edge.enabled and edge.create_distribution):
        return []
    missing = missing_price_class_regions(DISTRIBUTION_PRICE_CLASS, list(edge.edge_regions))
    if not missing:
        return []
    return [Problem(f"{PROJECT}:emfEdge.edgeRegions", list(edge.edge_regions),
                    f"the distribution's {DISTRIBUTION_PRICE_CLASS} runs Lambda@Edge replicas in "
                    f"{', '.join(missing)} too: add them (replicas there would have no log group settings, metrics "
                    "or alarms), or leave emfEdge.createDistribution off")]
