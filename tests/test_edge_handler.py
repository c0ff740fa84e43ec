"""The edge handler on real CloudFront origin-request events, with the model in S3 (a moto server).

Everything below runs the function's own code: settings file, its signed S3 GET (s3get.py, over HTTP to the moto
server) into a /tmp stand-in, SHA-256 check, tokenizer.json, ONNX Runtime, pooling, trace header, EMF. Only AWS is
simulated (moto).
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from edge_inference import emf, events, handler, trace
from edge_inference.digest import file_sha256
from edge_inference.events import float_array_json, response
from edge_inference.handler import App

from infra.artifacts.edge_model import ensure_model, library_max_tokens
from infra.artifacts.edge_probe import origin_request_event
from infra.tools import daemons

BUCKET = "akidb-test-edge-models"
KEY = "models/all-minilm-l6-v2/test/model.int8.onnx"
MODEL_NAME = "all-MiniLM-L6-v2-INT8"
NAMESPACE = "AkiDB/EdgeTest"
TRACE_RE = r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]$"


@pytest.fixture(scope="module")
def model():
    return ensure_model(quiet=True)


def write_settings(folder: Path, model, **changes: Any) -> Path:
    shutil.copyfile(model.tokenizer, folder / "tokenizer.json")
    meta = model.meta
    settings = {"bucket": BUCKET, "bucket_region": "us-east-1", "model_key": KEY, "model_sha256": model.sha256,
                "model_name": MODEL_NAME, "namespace": NAMESPACE, "tokenizer_file": "tokenizer.json",
                "max_tokens": meta["max_tokens"], "dimension": meta["dimension"], "normalize": meta["normalize"],
                **changes}
    (folder / "settings.json").write_text(json.dumps(settings))
    return folder / "settings.json"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with daemons.moto_server() as server:
        yield server.url


@pytest.fixture
def s3(model, moto_url, monkeypatch):
    """The model in a fresh bucket; the function's environment as Lambda gives it (role credentials)."""
    for name, value in daemons.aws_env(moto_url).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url)
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(model.onnx_int8), BUCKET, KEY)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


class Harness:
    def __init__(self, tmp: Path, model, **settings_changes: Any):
        self.out = io.StringIO()
        self.tmp = tmp
        self.downloads = 0

        def s3_factory(settings):
            self.downloads += 1
            return handler._default_s3(settings)  # the function's own S3 getter

        self.app = App(settings_path=write_settings(tmp, model, **settings_changes), s3_factory=s3_factory,
                       tmp_dir=tmp, out=self.out)

    def call(self, event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(response, parsed body, the EMF document of this request)."""
        before = len(self.docs())
        resp = self.app.handle(event, None)
        docs = self.docs()
        assert len(docs) == before + 1, "exactly one EMF document per request"
        return resp, json.loads(resp["body"]), docs[-1]

    def docs(self) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in self.out.getvalue().splitlines() if ln.startswith('{"_aws"')]


def embed_event(text: Any, **kw: Any) -> dict[str, Any]:
    return origin_request_event({"text": text}, **kw)


def header(resp: dict[str, Any], name: str) -> str:
    return resp["headers"][name][0]["value"]


def test_embeds_and_reports_cold_then_warm(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    resp, body, doc = h.call(embed_event("The edge returns a sentence embedding."))
    assert resp["status"] == "200" and header(resp, "content-type") == "application/json"
    vec = np.asarray(body["embedding"])
    assert vec.shape == (384,) and abs(np.linalg.norm(vec) - 1.0) < 1e-3
    assert body["model"] == MODEL_NAME and body["latency_ms"] > 0 and body["truncated"] is False
    assert emf.problems(doc) == []
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[], ["EdgeRegion"], ["Model"]]
    # The executing region (AWS_REGION), never the distribution id of the event.
    assert doc["EdgeRegion"] == "eu-west-1" and "EDFDVBD6EXAMPLE" not in json.dumps(doc["_aws"])
    assert doc["Model"] == MODEL_NAME
    assert doc["CacheHit"] == 0 and doc["ModelLoadTime"] > 0 and doc["RequestCount"] == 1
    assert doc["ErrorCount"] == 0 and doc["ClientErrorCount"] == 0
    assert doc["TokenCount"] == body["tokens"] > 2 and doc["InferenceLatency"] > 0
    assert doc["TotalLatency"] >= doc["InferenceLatency"]

    _resp2, body2, doc2 = h.call(embed_event("The edge returns a sentence embedding."))
    assert doc2["CacheHit"] == 1 and "ModelLoadTime" not in doc2
    assert "ModelLoadTime" not in {m["Name"] for m in doc2["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert np.allclose(body2["embedding"], body["embedding"])
    assert h.downloads == 1


def test_embedding_in_the_body_reads_back_to_the_encoders_exact_float32_values(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    text = "Nine significant digits hold every float32."
    _resp, body, _doc = h.call(embed_event(text))
    assert h.app.encoder is not None
    direct = h.app.encoder.encode(text).embedding
    assert direct.dtype == np.float32
    assert np.array_equal(np.asarray(body["embedding"], dtype=np.float32), direct)
    assert set(body) == {"embedding", "model", "dimensions", "tokens", "truncated", "latency_ms"}


def test_float_array_json_round_trips_float32_of_every_magnitude():
    rng = np.random.default_rng(3)
    values = (rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 38, 5000)).astype(np.float32)
    values[:6] = [0.0, -0.0, 1.0, -1.0, np.finfo(np.float32).max, np.finfo(np.float32).tiny]
    text = float_array_json(values.tolist())
    back = np.asarray(json.loads(text), dtype=np.float32)
    assert np.array_equal(back, values)  # -0.0 reads back as 0 (JSON "-0" is an integer): equal, sign aside
    assert float_array_json([]) == "[]"


def test_raw_json_fields_are_appended_to_the_body_object():
    assert json.loads(response(200, {"a": 1}, "t", raw_json={"v": "[1,2]"})["body"]) == {"a": 1, "v": [1, 2]}
    assert json.loads(response(200, {}, "t", raw_json={"v": "[]"})["body"]) == {"v": []}
    assert response(200, {"a": 1}, "t")["body"] == '{"a":1}'


def test_model_file_is_reused_from_tmp_by_a_new_container_state(s3, model, tmp_path):
    first = Harness(tmp_path, model)
    first.call(embed_event("warm up"))
    s3.delete_object(Bucket=BUCKET, Key=KEY)  # a second download would now fail
    second = Harness(tmp_path, model)
    resp, _, doc = second.call(embed_event("reuse /tmp"))
    assert resp["status"] == "200" and doc["CacheHit"] == 0 and "ModelLoadTime" in doc


def test_long_input_is_truncated_where_sentence_transformers_truncates(s3, model, tmp_path):
    limit = library_max_tokens()  # sentence_bert_config.json's max_seq_length (256), not tokenizer.json's 128
    h = Harness(tmp_path, model)
    resp, body, doc = h.call(embed_event(" ".join(f"token{i}" for i in range(400))))
    assert resp["status"] == "200" and body["tokens"] == limit and body["truncated"] is True
    assert doc["TokenCount"] == limit


def test_trace_header_is_kept_passed_on_returned_and_logged(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    incoming = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    resp, _, doc = h.call(embed_event("traced", headers={"X-Amzn-Trace-Id": incoming}))
    returned = header(resp, "x-amzn-trace-id")
    assert returned.startswith("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=")
    assert "53995c3f42cd8ad8" not in returned  # this hop is the new parent
    assert doc["TraceId"] == returned
    resp, _, doc = h.call(embed_event("no header"))
    assert re.match(TRACE_RE, header(resp, "x-amzn-trace-id")) and doc["TraceId"] == header(resp, "x-amzn-trace-id")


@pytest.mark.parametrize("value", ["garbage", "Root=2-abc", "Root=1-5759e988-bd86;Sampled=1",
                                   "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=7", "x" * 600])
def test_malformed_trace_header_is_replaced(value):
    out = trace.propagate(value)
    assert re.match(TRACE_RE, out) and value not in out


def test_trace_sampled_decision_is_kept():
    out = trace.propagate("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")
    assert out.startswith("Root=1-5759e988-bd862e3fe1be46a994272793;") and out.endswith("Sampled=0")


BAD_INPUTS = [
    ("malformed JSON", origin_request_event(raw=b'{"text": "unterminated'), 400, "not valid JSON"),
    ("missing text", origin_request_event({"query": "x"}), 400, "unknown field"),
    ("empty object", origin_request_event({}), 400, "missing field 'text'"),
    ("text is a number", embed_event(42), 400, "must be a string"),
    ("text is a list", embed_event(["a"]), 400, "must be a string"),
    ("text is null", embed_event(None), 400, "must be a string"),
    ("empty text", embed_event(""), 400, "empty"),
    ("blank text", embed_event("   \n\t"), 400, "empty"),
    ("JSON array body", origin_request_event(["text"]), 400, "JSON object"),
    ("empty body", origin_request_event(raw=b""), 400, "empty body"),
    ("truncated body", embed_event("x" * 10, truncated=True), 413, "truncated"),
    ("GET", embed_event("x", method="GET"), 405, "use POST"),
    ("wrong path", embed_event("x", uri="/search"), 404, "POST /embed"),
    ("wrong content type", embed_event("x", headers={"Content-Type": "text/plain"}), 415, "application/json"),
    ("text too long", embed_event("word " * 30000), 413, "at most"),
    # Reproducers of issue 12: both answered 500 and counted ErrorCount (the P1 alarm's metric).
    ("1,000 nested arrays", origin_request_event(raw=b"[" * 1000), 400, "nests too deeply"),
    ("deeply nested text", origin_request_event(raw=b'{"text":' * 100_000), 400, "nests too deeply"),
    ("lone surrogate", origin_request_event(raw=b'{"text": "\\ud800"}'), 400, "unpaired surrogate"),
    # Found by the fuzz pass: a text the tokenizer drops entirely embedded [CLS] [SEP] as if it were content.
    ("only control characters", embed_event("\x00\u200b\x7f"), 400, "nothing the model reads"),
    # Client data echoed in a reason is bounded (a 500,000-character key gave a 3.5 MB answer: CloudFront's limit
    # for a generated response is 1 MB).
    ("a huge unknown key", origin_request_event({"k" * 500_000: 1, "text": "x"}), 400, "unknown field"),
    ("many unknown keys", origin_request_event({f"k{i}": 1 for i in range(1000)}), 400, "and 995 more"),
    ("a huge path", embed_event("x", uri="/" + "p" * 100_000), 404, "POST /embed"),
]


def _structural(data: str, encoding: str) -> dict[str, Any]:
    event = embed_event("x", encoding=encoding)
    event["Records"][0]["cf"]["request"]["body"]["data"] = data
    return event


# What CloudFront never sends (it base64-encodes every body): our fault or a proxy's, never the caller's.
STRUCTURAL_FAULTS = [
    ("invalid base64", _structural("not*base64!", "base64")),
    ("lone surrogate in a text body", _structural('{"text": "a\udfffb"}', "text")),
]


@pytest.mark.parametrize(("case", "event"), STRUCTURAL_FAULTS, ids=[c[0] for c in STRUCTURAL_FAULTS])
def test_a_structural_fault_is_our_error_not_the_callers(s3, model, tmp_path, case, event):
    h = Harness(tmp_path, model)
    resp, body, doc = h.call(event)
    assert resp["status"] == "500" and body == {"error": "internal error"}, (case, body)
    assert doc["ErrorCount"] == 1 and doc["ClientErrorCount"] == 0 and emf.problems(doc) == []
    assert "body.data" in doc["Error"]


@pytest.mark.parametrize(("case", "event", "status", "reason"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_a_4xx_with_a_reason_and_counted_as_client_error(s3, model, tmp_path, case, event, status,
                                                                       reason):
    h = Harness(tmp_path, model)
    resp, body, doc = h.call(json.loads(json.dumps(event)))
    assert resp["status"] == str(status), (case, body)
    assert reason in body["error"], (case, body)
    assert len(body["error"]) <= events.MAX_REASON_CHARS and len(json.dumps(resp)) < 4096, case
    assert set(body) == {"error"} and header(resp, "content-type") == "application/json"
    assert doc["ClientErrorCount"] == 1 and doc["ErrorCount"] == 0 and doc["RequestCount"] == 1
    assert "InferenceLatency" not in doc and emf.problems(doc) == []
    assert doc["Status"] == status and doc["Reason"] == body["error"]
    if status == 405:
        assert header(resp, "allow") == "POST"


def _assert_no_internals(body: dict[str, Any]) -> None:
    text = json.dumps(body)
    for leak in ("Traceback", "File \"", "Error:", "botocore", "onnxruntime", BUCKET, KEY, "/tmp"):
        assert leak not in text, (leak, text)


def test_missing_model_object_is_a_503_without_internals(s3, model, tmp_path):
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    h = Harness(tmp_path, model)
    resp, body, doc = h.call(embed_event("hello"))
    assert resp["status"] == "503" and body == {"error": "embedding model unavailable; retry later"}
    _assert_no_internals(body)
    assert doc["ErrorCount"] == 1 and doc["ClientErrorCount"] == 0 and doc["CacheHit"] == 0
    assert "download failed" in doc["Error"]
    # The model comes back: the next request loads it (no permanent failure state).
    s3.upload_file(str(model.onnx_int8), BUCKET, KEY)
    resp, _, doc = h.call(embed_event("hello"))
    assert resp["status"] == "200" and doc["CacheHit"] == 0 and "ModelLoadTime" in doc


def test_model_with_wrong_hash_is_refused(s3, model, tmp_path):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"not an onnx model")
    h = Harness(tmp_path, model)
    resp, _body, doc = h.call(embed_event("hello"))
    assert resp["status"] == "503" and doc["ErrorCount"] == 1 and "SHA-256" in doc["Error"]
    assert not list(tmp_path.glob("edge-model-*"))  # nothing unverified is kept in /tmp


def test_model_without_the_pooled_output_is_refused(s3, model, tmp_path):
    """A valid ONNX file that is not this build's encoder (e.g. an unpooled export) is a 503, not wrong vectors."""
    from onnx import TensorProto, helper

    other = tmp_path / "other.onnx"
    graph = helper.make_graph([helper.make_node("Cast", ["input_ids"], ["last_hidden_state"], to=TensorProto.FLOAT)],
                              "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "s"])],
                              [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, "s"])])
    other.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
                      .SerializeToString())
    s3.upload_file(str(other), BUCKET, KEY)
    h = Harness(tmp_path, model, model_sha256=file_sha256(other))
    resp, body, doc = h.call(embed_event("hello"))
    assert resp["status"] == "503" and body == {"error": "embedding model unavailable; retry later"}
    assert doc["ErrorCount"] == 1 and "no 'pooled' output of 384 values" in doc["Error"]


def test_bad_settings_are_a_5xx_in_the_default_namespace(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    (tmp_path / "settings.json").write_text(json.dumps({"bucket": BUCKET}))
    resp, body, doc = h.call(embed_event("hello"))
    assert resp["status"] == "503" and doc["ErrorCount"] == 1 and "missing keys" in doc["Error"]
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == emf.DEFAULT_NAMESPACE
    _assert_no_internals(body)


def test_body_not_included_is_our_fault_not_the_callers(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    resp, body, doc = h.call(embed_event("x", include_body=False))
    assert resp["status"] == "500" and body == {"error": "internal error"}
    assert doc["ErrorCount"] == 1 and "include body" in doc["Error"]


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": [{"cf": {}}]}, None, "text"])
def test_non_cloudfront_event_is_a_500(s3, model, tmp_path, event):
    h = Harness(tmp_path, model)
    resp, body, doc = h.call(event)
    assert resp["status"] == "500" and body == {"error": "internal error"} and doc["ErrorCount"] == 1
    assert "x-amzn-trace-id" in resp["headers"]


def test_unexpected_exception_is_a_500_with_the_traceback_only_in_the_log(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    h.call(embed_event("load the model"))

    def explode(text: str):
        raise RuntimeError("secret internal detail /opt/model")

    h.app.encoder.encode = explode
    resp, body, doc = h.call(embed_event("boom"))
    assert resp["status"] == "500" and body == {"error": "internal error"}
    _assert_no_internals(body)
    assert "secret internal detail" not in resp["body"]
    assert doc["ErrorCount"] == 1 and "RuntimeError" in doc["Error"] and "Traceback" in doc["Traceback"]
    assert doc["CacheHit"] == 1


def test_module_entry_point_uses_the_container_app(s3, model, tmp_path, monkeypatch):
    h = Harness(tmp_path, model)
    monkeypatch.setattr(handler, "_APP", h.app)
    resp = handler.handler(embed_event("entry point"), None)
    assert resp["status"] == "200" and len(h.docs()) == 1


def test_warm_at_init_loads_once_and_reports_the_load_on_the_first_request(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    h.app.warm()
    assert h.app.encoder is not None and h.downloads == 1
    _, _, doc = h.call(embed_event("first"))
    assert doc["CacheHit"] == 0 and doc["ModelLoadTime"] == pytest.approx(h.app.load_ms)
    _, _, doc = h.call(embed_event("second"))
    assert doc["CacheHit"] == 1 and h.downloads == 1


def test_warm_failure_is_logged_and_retried(s3, model, tmp_path):
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    h = Harness(tmp_path, model)
    h.app.warm()
    assert h.app.encoder is None and "init: model not loaded" in h.out.getvalue()


def test_text_body_encoding_is_accepted(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    resp, body, _ = h.call(origin_request_event({"text": "plain text body"}, encoding="text"))
    assert resp["status"] == "200" and len(body["embedding"]) == 384


def test_response_is_a_valid_cloudfront_generated_response(s3, model, tmp_path):
    h = Harness(tmp_path, model)
    resp, _, _ = h.call(embed_event("shape"))
    assert set(resp) == {"status", "statusDescription", "headers", "body", "bodyEncoding"}
    assert len(resp["body"].encode()) < 1024 * 1024  # generated-response body limit (origin-request)
    for name, values in resp["headers"].items():
        assert name == name.lower() and values[0]["key"].lower() == name
    assert resp["bodyEncoding"] == "text"
