"""Lambda@Edge origin-request handler for POST /embed: real MiniLM embeddings, one EMF document per request.

Lifecycle: in a Lambda container the module import (init phase) reads the baked settings and loads the model
from S3 into /tmp once; every request then reuses it. The first request a container serves after a load is the
cold one (CacheHit 0, ModelLoadTime); later ones are warm (CacheHit 1). If loading failed, each request retries
it and answers 503 until it works.

Answers: 200 with the embedding; 4xx with a reason for bad input (ClientErrorCount); 5xx with a generic reason
for our own faults (ErrorCount) - internals and tracebacks go to the log only, never to the caller.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import logshape  # at the zip's root (include.txt), as the runtime imports it

from . import emf, trace
from .events import BadEvent, ClientError, EdgeRequest, float_array_json, parse_event, read_text, response
from .model import TMP_DIR, Encoder, ModelUnavailable, S3Getter
from .s3get import S3Http
from .settings import SETTINGS_FILE, Settings, SettingsError, load

UNCONFIGURED_MODEL = "unconfigured"
SERVICE = "edge-inference"
# Redaction the stack adds to logshape's defaults: baked beside the settings (Lambda@Edge has no environment).
LOG_SHAPE_FILE = SETTINGS_FILE.with_name(logshape.BAKED_FILE)
MAX_PROPERTY_CHARS = 8_000  # a 20-frame traceback fits


def _default_s3(settings: Settings) -> S3Getter:
    # One signed GET with the standard library: boto3's import and client were most of a cold start (s3get.py).
    return S3Http(settings.bucket_region)


class App:
    """One container's state: settings, encoder, whether the cold request was already reported."""

    def __init__(self, settings_path: Path = SETTINGS_FILE,
                 s3_factory: Callable[[Settings], S3Getter] = _default_s3,
                 tmp_dir: Path = TMP_DIR, out: TextIO | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings_path = settings_path
        self.s3_factory = s3_factory
        self.tmp_dir = tmp_dir
        self.out = out
        self.clock = clock
        self.settings: Settings | None = None
        self.encoder: Encoder | None = None
        self.load_ms: float | None = None
        self._load_reported = False
        self.shape = logshape.Shape(SERVICE, logshape.redactor_from(baked=LOG_SHAPE_FILE))

    # ------------------------------------------------------------------------------------------------ lifecycle
    def warm(self) -> None:
        """Load settings and model now (the init phase); failures are retried on the next request."""
        try:
            self._ensure_encoder()
        except (SettingsError, ModelUnavailable) as exc:
            self._log({"level": "ERROR", "message": "init: model not loaded", "error": str(exc)})

    def _ensure_settings(self) -> Settings:
        if self.settings is None:
            self.settings = load(self.settings_path)
        return self.settings

    def _ensure_encoder(self) -> Encoder:
        if self.encoder is None:
            settings = self._ensure_settings()
            self.encoder, self.load_ms = Encoder.load(settings, self.s3_factory(settings), self.tmp_dir)
            self._load_reported = False
        return self.encoder

    # ------------------------------------------------------------------------------------------------- requests
    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        started = time.perf_counter()
        self.shape.context = {"request_id": getattr(context, "aws_request_id", None)}
        values: dict[str, float] = {"RequestCount": 1, "ErrorCount": 0, "ClientErrorCount": 0}
        props: dict[str, Any] = {}
        raw: dict[str, str] = {}  # body fields already encoded as JSON
        req: EdgeRequest | None = None
        trace_header = trace.propagate(None)
        try:
            req = parse_event(event)
            trace_header = trace.propagate(req.headers.get(trace.HEADER))
            props["RequestId"] = req.request_id
            text = read_text(req)
            encoder = self._ensure_encoder()
            t0 = time.perf_counter()
            encoded = encoder.encode(text)
            values["InferenceLatency"] = (time.perf_counter() - t0) * 1000.0
            values["TokenCount"] = encoded.token_count
            raw["embedding"] = float_array_json(encoded.embedding.tolist())
            status, body, headers = 200, {
                "model": encoder.settings.model_name,
                "dimensions": int(encoded.embedding.shape[0]),
                "tokens": encoded.token_count,
                "truncated": encoded.truncated,
            }, {}
        except ClientError as exc:
            values["ClientErrorCount"] = 1
            status, body, headers = exc.status, {"error": exc.reason}, exc.headers
        except (SettingsError, ModelUnavailable) as exc:
            values["ErrorCount"] = 1
            status, body, headers = 503, {"error": "embedding model unavailable; retry later"}, {}
            props["Error"] = str(exc)
        except BadEvent as exc:
            values["ErrorCount"] = 1
            status, body, headers = 500, {"error": "internal error"}, {}
            props["Error"] = str(exc)
        except Exception as exc:  # last resort: never a traceback to the caller
            values["ErrorCount"] = 1
            status, body, headers = 500, {"error": "internal error"}, {}
            props["Error"] = f"{type(exc).__name__}: {exc}"
            props["Traceback"] = traceback.format_exc(limit=20)
        values["CacheHit"] = 1 if (self.encoder is not None and self._load_reported) else 0
        if self.encoder is not None and not self._load_reported and self.load_ms is not None:
            values["ModelLoadTime"] = self.load_ms
            self._load_reported = True
        total_ms = (time.perf_counter() - started) * 1000.0
        values["TotalLatency"] = total_ms
        if status == 200:
            body["latency_ms"] = round(total_ms, 3)
        if status >= 400:
            props["Reason"] = body["error"]
        props["Status"] = status
        props["TraceId"] = trace_header
        self.emit(values, props)
        return response(status, body, trace_header, headers, raw if status == 200 else None)

    # ---------------------------------------------------------------------------------------------------- output
    def emf_document(self, values: dict[str, float], props: dict[str, Any]) -> dict[str, object]:
        settings = self.settings
        namespace = settings.namespace if settings else emf.DEFAULT_NAMESPACE
        model = settings.model_name if settings else UNCONFIGURED_MODEL
        # AWS_REGION is where this replica executes: the region whose CloudWatch receives these metrics.
        dims = emf.dimension_values(os.environ.get("AWS_REGION", "unknown"), model)
        now = self.clock()
        doc = emf.document(namespace, int(now * 1000), dims, values)
        # Properties may carry exception text (a fault's message, a traceback): bounded so the EMF line stays far
        # below CloudWatch Logs' 1 MB event limit, past which the request's metrics would be lost.
        doc.update({k: v[:MAX_PROPERTY_CHARS] if isinstance(v, str) else v for k, v in props.items()})
        # The EMF document is also the request's log line: the stack's one shape, redacted (logshape).
        status = int(props.get("Status", 200))
        level = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
        self.shape.context["trace_id"] = logshape.trace_id(props.get("TraceId"))
        return self.shape.emf(level, f"POST /embed {status}", doc, at=now)

    def emit(self, values: dict[str, float], props: dict[str, Any]) -> None:
        self._write(emf.serialise(self.emf_document(values, props)))

    def _log(self, record: dict[str, Any]) -> None:
        level, message = str(record.pop("level", "INFO")), str(record.pop("message", ""))
        self._write(self.shape.line(level, message, record))

    def _write(self, line: str) -> None:
        out = self.out or sys.stdout
        out.write(line + "\n")
        out.flush()


_APP = App()
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # set by the Lambda runtime itself (not a user variable)
    _APP.warm()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _APP.handle(event, context)
