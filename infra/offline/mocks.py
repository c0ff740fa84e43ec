"""A recording mock for Pulumi's mock runtime: fills computed outputs per type and records every registration.

What the engine would compute (ARNs, versions, endpoints, autonames) is filled in per type, because an
unfilled output resolves to None and an f-string silently renders "None/..." (Pulumi "Unit testing",
https://www.pulumi.com/docs/iac/concepts/testing/unit/: mocks return what new_resource returns, nothing more).
Every registration is recorded with its parent and provider, so the plan and the tests can inspect the whole
program once it has finished ("collect, then assert").
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from infra.core.archives import recorded_archive
from infra.plan.model import GLOBAL_AWS_PREFIXES, UNKNOWN, UNKNOWN_SECRET

ACCOUNT_ID = "123456789012"
SECRET_SIG_KEY = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = rpc._special_secret_sig  # "1b47061264138c4ac30d75fd1eb44270"

# Resource types that exist once per account, not per region.


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent_urn: str
    provider_ref: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    custom: bool
    # Resource options the engine acts on at delete/replace time (protect, retainOnDelete, deleteBeforeReplace).
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def protect(self) -> bool:
        return bool(self.options.get("protect"))


def _short(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def pagerduty_id(name: str) -> str:
    """A PagerDuty-shaped object id (P and six upper-case letters or digits), deterministic per name."""
    return "P" + hashlib.sha256(name.encode()).hexdigest()[:6].upper()


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    """`preview=True`: what a first `pulumi preview` of a new stack sees. Every resource returns its inputs only
    (no id, no ARN, nothing AWS computes), so with `set_mocks(preview=True)` every computed output is unknown,
    an `apply` over one never runs, and whatever is built from one reaches its resource as unknown. Invokes
    still answer, as they do in a real preview."""

    def __init__(self, home_region: str = "us-east-1", account_id: str | None = None,
                 preview: bool = False) -> None:
        self.home_region = home_region
        self.account_id = account_id or ACCOUNT_ID
        self.preview = preview
        self.provider_regions: dict[str, str] = {}
        self.lock = threading.Lock()
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        # (type, logical name) -> the logical name a moved resource had (RecordingMonitor fills it from aliases).
        self.identity: dict[tuple[str, str], str] = {}

    # ---------------------------------------------------------------------------------------------- resources
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = unwrap_secrets(dict(args.inputs))
        token = args.typ
        name = self.identity.get((token, args.name), args.name)
        outputs: dict[str, Any] = dict(args.inputs)
        if token.startswith("pulumi:providers:"):
            return f"{name}_id", outputs
        if self.preview:
            # An empty id is an unknown id (what the AWS provider answers for a create in a preview).
            return "", outputs
        if token.startswith("kubernetes:"):
            return self._kubernetes(token, name, inputs, outputs)
        if token.startswith("pagerduty:"):
            return self._pagerduty(token, name, inputs, outputs)
        if not token.startswith("aws:"):
            return f"{name}_id", outputs
        region = inputs.get("region") or self.region_of(args.provider)
        outputs.setdefault("region", region)
        module, _, kind = token[len("aws:"):].partition("/")
        type_name = kind.split(":")[-1]
        physical = inputs.get("name") or f"{name}-{_short(name)}"
        rid = physical
        arn_region = "" if token.startswith(GLOBAL_AWS_PREFIXES) or module == "s3" else region
        arn = f"arn:aws:{module}:{arn_region}:{self.account_id}:{type_name.lower()}/{physical}"

        if token == "aws:lambda/function:Function":
            arn = f"arn:aws:lambda:{region}:{self.account_id}:function:{physical}"
            outputs.update(
                qualifiedArn=f"{arn}:1", version="1",
                invokeArn=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
                qualifiedInvokeArn=(f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                                    f"{arn}:1/invocations"),
                sourceCodeSize=0, lastModified="2026-01-01T00:00:00.000+0000")
        elif token == "aws:lambda/alias:Alias":
            arn = f"arn:aws:lambda:{region}:{self.account_id}:function:{inputs.get('functionName')}:{physical}"
            outputs["invokeArn"] = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        elif token == "aws:sns/topic:Topic":
            arn = f"arn:aws:sns:{region}:{self.account_id}:{physical}"
        elif token == "aws:sqs/queue:Queue":
            arn = f"arn:aws:sqs:{region}:{self.account_id}:{physical}"
            outputs["url"] = f"https://sqs.{region}.amazonaws.com/{self.account_id}/{physical}"
        elif token == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{name}-{_short(name)}"
            rid = bucket
            arn = f"arn:aws:s3:::{bucket}"
            outputs.update(bucket=bucket, bucketDomainName=f"{bucket}.s3.amazonaws.com",
                           bucketRegionalDomainName=f"{bucket}.s3.{region}.amazonaws.com")
        elif token == "aws:kms/key:Key":
            rid = f"{_short(name)}-0000-4000-8000-{_short(name + 'k')}00000"
            arn = f"arn:aws:kms:{region}:{self.account_id}:key/{rid}"
            outputs["keyId"] = rid
        elif token == "aws:kms/alias:Alias":
            arn = f"arn:aws:kms:{region}:{self.account_id}:{physical}"
        elif token.startswith("aws:iam/"):
            arn = f"arn:aws:iam::{self.account_id}:{type_name.lower()}/{physical}"
            outputs["uniqueId"] = f"AROA{_short(name).upper()}"
        elif token == "aws:cloudwatch/logGroup:LogGroup":
            arn = f"arn:aws:logs:{region}:{self.account_id}:log-group:{physical}"
        elif token in ("aws:cloudwatch/metricAlarm:MetricAlarm", "aws:cloudwatch/compositeAlarm:CompositeAlarm"):
            arn = f"arn:aws:cloudwatch:{region}:{self.account_id}:alarm:{inputs.get('alarmName') or physical}"
        elif token == "aws:cloudwatch/eventRule:EventRule":
            arn = f"arn:aws:events:{region}:{self.account_id}:rule/{physical}"
        elif token == "aws:cloudwatch/eventBus:EventBus":
            arn = f"arn:aws:events:{region}:{self.account_id}:event-bus/{physical}"
        elif token == "aws:scheduler/schedule:Schedule":
            arn = f"arn:aws:scheduler:{region}:{self.account_id}:schedule/default/{physical}"
        elif token == "aws:cloudwatch/dashboard:Dashboard":
            arn = f"arn:aws:cloudwatch::{self.account_id}:dashboard/{inputs.get('dashboardName') or physical}"
            outputs["dashboardArn"] = arn
        elif token == "aws:apigatewayv2/api:Api":
            rid = _short(name)
            arn = f"arn:aws:apigateway:{region}::/apis/{rid}"
            outputs.update(apiEndpoint=f"https://{rid}.execute-api.{region}.amazonaws.com",
                           executionArn=f"arn:aws:execute-api:{region}:{self.account_id}:{rid}")
        elif token == "aws:apigatewayv2/stage:Stage":
            outputs["invokeUrl"] = f"https://{inputs.get('apiId')}.execute-api.{region}.amazonaws.com/{physical}"
            outputs["executionArn"] = f"arn:aws:execute-api:{region}:{self.account_id}:{inputs.get('apiId')}/{physical}"
        elif token == "aws:cloudfront/distribution:Distribution":
            rid = "E" + _short(name).upper() + "XYZ"
            arn = f"arn:aws:cloudfront::{self.account_id}:distribution/{rid}"
            outputs.update(domainName=f"d{_short(name)}.cloudfront.net", status="Deployed", etag="E1")
        elif token == "aws:xray/group:Group":
            arn = f"arn:aws:xray:{region}:{self.account_id}:group/{inputs.get('groupName')}/{_short(name)}"
        elif token == "aws:xray/samplingRule:SamplingRule":
            arn = f"arn:aws:xray:{region}:{self.account_id}:sampling-rule/{inputs.get('ruleName') or physical}"
        elif token == "aws:fis/experimentTemplate:ExperimentTemplate":
            # FIS picks the id (EXT + alphanumerics); the ARN names it.
            rid = "EXT" + _short(name).upper()
            arn = f"arn:aws:fis:{region}:{self.account_id}:experiment-template/{rid}"
        elif token == "aws:eks/accessEntry:AccessEntry":
            arn = (f"arn:aws:eks:{region}:{self.account_id}:access-entry/{inputs.get('clusterName')}/role/"
                   f"{self.account_id}/{_short(name)}")
            outputs.update(accessEntryArn=arn, createdAt="2026-01-01T00:00:00Z", userName=_short(name))
        elif token == "aws:s3/bucketObjectv2:BucketObjectv2" or token == "aws:s3/bucketObject:BucketObject":
            outputs.update(versionId="v1", etag=_short(name))
        outputs.setdefault("arn", arn)
        outputs.setdefault("name", physical)
        outputs.setdefault("id", rid)
        return rid, outputs

    def _kubernetes(self, token: str, name: str, inputs: dict[str, Any],
                    outputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        meta = dict(inputs.get("metadata") or {})
        meta.setdefault("name", f"{name}-{_short(name)}")
        meta.setdefault("uid", _short(name) + "-uid")
        outputs["metadata"] = meta
        namespace = meta.get("namespace")
        rid = f"{namespace}/{meta['name']}" if namespace else meta["name"]
        return rid, outputs

    @staticmethod
    def _pagerduty(token: str, name: str, inputs: dict[str, Any],
                   outputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """What PagerDuty computes: object ids, integration keys (32 hex characters), a webhook subscription's
        signing secret (returned once, on creation), html URLs. Deterministic per logical name."""
        rid = pagerduty_id(name)
        kind = token.split(":")[-1]
        outputs["id"] = rid
        if kind == "ServiceIntegration":
            outputs["integrationKey"] = hashlib.sha256(f"integration-key:{name}".encode()).hexdigest()[:32]
            outputs["htmlUrl"] = f"https://offline.pagerduty.com/services/{inputs.get('service')}/integrations/{rid}"
        elif kind == "WebhookSubscription":
            methods = [dict(m) for m in inputs.get("deliveryMethods") or []]
            for m in methods:
                m.setdefault("type", "http_delivery_method")
                m["secret"] = hashlib.sha256(f"webhook-secret:{name}".encode()).hexdigest()
                m.setdefault("temporarilyDisabled", False)
            outputs["deliveryMethods"] = methods
        elif kind in ("Service", "Schedule", "EscalationPolicy"):
            outputs["htmlUrl"] = f"https://offline.pagerduty.com/{kind.lower()}/{rid}"
            if kind == "Service":
                outputs.setdefault("status", "active")
        return rid, outputs

    def region_of(self, provider_ref: str | None) -> str:
        if provider_ref:
            urn = provider_ref.split("::")
            urn_key = "::".join(urn[:-1]) if len(urn) > 1 else provider_ref
            with self.lock:
                if urn_key in self.provider_regions:
                    return self.provider_regions[urn_key]
        return self.home_region

    # -------------------------------------------------------------------------------------------------- invokes
    # pulumi's MockMonitor also takes a plain dict (no check failures): pulumi/runtime/mocks.py tests
    # `isinstance(tup, dict)`, though Mocks.call is annotated with the tuple only.
    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        self.invokes.append((token, dict(args.args)))
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": self.account_id, "arn": f"arn:aws:iam::{self.account_id}:user/offline-plan",
                    "userId": "AIDAOFFLINEPLAN", "id": self.account_id}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:index/getRegion:getRegion":
            region = args.args.get("region") or args.args.get("name") or self.home_region
            return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com"}
        if token == "pagerduty:index/getVendor:getVendor":
            vendor = str(args.args.get("name"))
            return {"id": pagerduty_id(f"vendor:{vendor}"), "name": vendor, "type": "vendor"}
        raise NotImplementedError(
            f"the offline plan has no mock for invoke {token}; build the value in Python or add it to "
            "infra/offline/mocks.py")


def _options(request: Any) -> dict[str, Any]:
    """The delete/replace options set on a registration (only those that differ from the default)."""
    out: dict[str, Any] = {}
    for key in ("protect", "retainOnDelete", "deleteBeforeReplace"):
        if getattr(request, key, False):
            out[key] = True
    # additionalSecretOutputs: outputs the engine stores encrypted though the provider does not mark them secret
    # (PagerDuty's integration keys and webhook secret).
    for key in ("ignoreChanges", "replaceOnChanges", "additionalSecretOutputs"):
        values = sorted(getattr(request, key, []) or [])
        if values:
            out[key] = values
    return out


class RecordingMonitor(MockMonitor):
    """Records each registration with the parent and provider the plain mock monitor drops, and the URNs its
    aliases name (the identities `pulumi up` would move to it: `make plan-diff` matches them)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Registration] = []
        self.alias_urns: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def _alias_urns(self, request: Any) -> list[str]:
        """The engine's reading of the alias specs: a spec's parent, name and type default to the resource's; a
        child also inherits each alias of its parent, its name's parent-name prefix following the parent's
        ("Resource option: aliases", https://www.pulumi.com/docs/iac/concepts/options/aliases/)."""
        out: list[str] = []
        for alias in getattr(request, "aliases", []) or []:
            if alias.WhichOneof("alias") == "urn":
                out.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            out.append(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        parent_name = request.parent.rsplit("::", 1)[-1] if request.parent else ""
        for parent_alias in self.alias_urns.get(request.parent, []):
            name = request.name
            if parent_name and name.startswith(parent_name):
                name = parent_alias.rsplit("::", 1)[-1] + name[len(parent_name):]
            out.append(self.make_urn(parent_alias, request.type, name))
        return list(dict.fromkeys(out))

    def RegisterResource(self, request: Any) -> Any:
        # Unannotated in pulumi; untyped_calls_exclude (pyproject) does not cover calls through super().
        aliases = self._alias_urns(request) if request.type != "pulumi:pulumi:Stack" else []
        mocks: RecordingMocks = self.mocks  # type: ignore[assignment]
        if aliases:
            # A moved resource keeps what the cloud named after its old logical name (ids, auto-names).
            with mocks.lock:
                mocks.identity[(request.type, request.name)] = aliases[0].rsplit("::", 1)[-1]
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        state = self.resources[response.urn].state if response.urn in self.resources else {}
        options = _options(request)
        if aliases:
            options["aliases"] = aliases
        reg = Registration(urn=response.urn, type=request.type, name=request.name, parent_urn=request.parent,
                           provider_ref=request.provider or None, inputs=dict(inputs), outputs=dict(state),
                           custom=bool(request.custom), options=options)
        if request.type == "pulumi:providers:aws":
            with mocks.lock:
                mocks.provider_regions[response.urn] = str(inputs.get("region") or mocks.home_region)
        with self._lock:
            self.recorded.append(reg)
            if aliases:
                self.alias_urns[response.urn] = aliases
        return response


def as_plain(value: Any) -> Any:
    """JSON-able form of recorded inputs: assets by path, secrets redacted, unknowns (preview) as UNKNOWN."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE:
            # Unknown-ness is no secret: a preview shows an unknown secret as unknown.
            return UNKNOWN_SECRET if isinstance(value.get("value"), Unknown) else "[secret]"
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_plain(v) for v in value]
    archive = recorded_archive(value, as_plain)
    if archive is not None:
        return archive
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, pulumi.Resource):
        return None
    return json.loads(json.dumps(value, default=lambda o: None))
