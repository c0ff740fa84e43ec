"""Property tests of the edge handler (Hypothesis, derandomized, fixed budget): what a caller sends never pages.

Any method, path, headers and body a client can put into a CloudFront origin-request gets a 2xx or a 4xx with a
JSON reason, counted as ClientErrorCount, never ErrorCount (the metric of the P1 alarm). Only our own faults
(model unavailable, an encoder that raises, an event that is not a CloudFront request) answer 5xx and count
ErrorCount. The handler, tokenizer, ONNX model and EMF are the real ones; S3 is a local copy of the model.

The budget is fixed so the suite stays fast; `EDGE_FUZZ_EXAMPLES=5000` runs a longer fuzz pass of the same
properties (same derandomized generator, more cases).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.artifacts.edge_model import EdgeModel, ensure_model, library_max_tokens
from infra.artifacts.edge_probe import LocalModelStore, origin_request_event
from infra.components.emf_edge import baked_settings
from infra.config import EmfEdgeConfig
from lambdas.edge_inference.events import EMBED_PATH, MAX_TEXT_CHARS
from lambdas.edge_inference.handler import App
from lambdas.edge_inference.model import ModelUnavailable

EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "150"))
PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def model() -> EdgeModel:
    return ensure_model(quiet=True)


@pytest.fixture(scope="module")
def app(model: EdgeModel, tmp_path_factory: pytest.TempPathFactory) -> App:
    folder = tmp_path_factory.mktemp("edge-props")
    shutil.copyfile(model.tokenizer, folder / "tokenizer.json")
    (folder / "settings.json").write_text(json.dumps(baked_settings(EmfEdgeConfig(), "bucket", "us-east-1", model)))
    the_app = App(settings_path=folder / "settings.json", s3_factory=lambda _s: LocalModelStore(model.onnx_int8),
                  tmp_dir=folder, out=io.StringIO())
    the_app.warm()
    assert the_app.encoder is not None
    return the_app


def call(app: App, event: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(status, parsed body, EMF document of this request)."""
    out = io.StringIO()
    app.out = out
    resp = app.handle(event, None)
    docs = [json.loads(ln) for ln in out.getvalue().splitlines() if ln.startswith('{"_aws"')]
    assert len(docs) == 1, "exactly one EMF document per request"
    assert resp["headers"]["content-type"][0]["value"] == "application/json"
    return int(resp["status"]), json.loads(resp["body"]), docs[0]


# -------------------------------------------------------------------------------------------------- strategies
# Text with everything JSON can carry, lone surrogates included (Hypothesis leaves those out by default).
any_text = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(min_codepoint=0xD700, max_codepoint=0xE000, exclude_categories=()), max_size=8),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "   ", "東京は日本の首都です。" * 50, "word " * 300]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
payloads = st.one_of(
    st.fixed_dictionaries({"text": any_text}),
    st.fixed_dictionaries({"text": json_values}),
    st.dictionaries(any_text, json_values, max_size=4),
    json_values,
)


def _encoded(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \\u escapes, as a client's JSON library would send them.
    return json.dumps(value).encode()


raw_bodies = st.one_of(
    payloads.map(_encoded),
    st.binary(max_size=80),
    st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth),
    st.integers(min_value=1, max_value=3000).map(lambda depth: b'{"text":' * depth),
    st.sampled_from([b"", b"  ", b'{"text": "\\ud800"}', b'{"text": "unterminated', b"\xff\xfe",
                     b'{"text": "x"}' * 3, b'{"text": 1e999999}', b'{"text": ' + b"9" * 5000 + b"}"]),
)
header_names = st.one_of(st.sampled_from(["Content-Type", "content-type", "X-Amzn-Trace-Id", "Accept",
                                          "Content-Length"]),
                         st.text(min_size=1, max_size=20))
header_values = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain",
                     "", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", "Root=garbage;;;", "a" * 600]),
    any_text,
)


@st.composite
def client_events(draw: st.DrawFn) -> dict[str, Any]:
    """Any request a client can make: method, path, headers, body, and how CloudFront passes the body on."""
    raw = draw(raw_bodies)
    encoding = draw(st.sampled_from(["base64", "text"]))
    event = origin_request_event(
        raw=raw if encoding == "base64" else raw.decode("utf-8", "replace").encode(),
        method=draw(st.one_of(st.just("POST"), st.sampled_from(["GET", "PUT", "post", "DELETE"]),
                              st.text(max_size=10))),
        uri=draw(st.one_of(st.just(EMBED_PATH), st.sampled_from(["/", "/embed/", "/EMBED"]), st.text(max_size=30))),
        headers=draw(st.dictionaries(header_names, header_values, max_size=4)),
        truncated=draw(st.booleans()) and draw(st.booleans()),
        encoding=encoding,
    )
    body = event["Records"][0]["cf"]["request"]["body"]
    if encoding == "text" and draw(st.integers(0, 9)) == 0:
        # Any text a client can send, valid UTF-8 (a body that is not base64 or not UTF-8 cannot come from
        # CloudFront: tests/test_edge_handler.py counts those as our faults).
        body["data"] = draw(any_text).encode("utf-8", "replace").decode("utf-8")
    return event


# ---------------------------------------------------------------------------------------------------- properties
@PROPERTY
@given(event=client_events())
def test_any_client_request_gets_2xx_or_4xx_with_a_reason_and_never_counts_as_our_error(app, event):
    status, body, doc = call(app, event)
    assert 200 <= status < 300 or 400 <= status < 500, (status, body)
    assert doc["ErrorCount"] == 0 and doc["RequestCount"] == 1
    if status == 200:
        assert len(body["embedding"]) == 384 and 2 < body["tokens"] <= library_max_tokens()
        assert doc["ClientErrorCount"] == 0
    else:
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"].strip()
        assert doc["ClientErrorCount"] == 1 and doc["Reason"] == body["error"]


class InjectedFault(RuntimeError):
    pass


FAULTS = ["encoder raises", "model unavailable", "not a CloudFront event", "body not included"]


@PROPERTY
@given(text=st.text(min_size=1, max_size=40).filter(str.strip), fault=st.sampled_from(FAULTS))
def test_only_our_own_faults_count_error_count(app, text, fault):
    event: Any = origin_request_event({"text": text})
    encoder = app.encoder
    assert encoder is not None
    original = encoder.encode
    if fault == "encoder raises":
        def explode(_text: str) -> Any:
            raise InjectedFault("injected")
        encoder.encode = explode  # type: ignore[method-assign]
    elif fault == "model unavailable":
        def unavailable(_text: str) -> Any:
            raise ModelUnavailable("injected")
        encoder.encode = unavailable  # type: ignore[method-assign]
    elif fault == "not a CloudFront event":
        event = {"Records": [{"cf": {"config": {}}}]}
    else:
        del event["Records"][0]["cf"]["request"]["body"]
    try:
        status, body, doc = call(app, event)
    finally:
        encoder.encode = original  # type: ignore[method-assign]
    assert status >= 500 and set(body) == {"error"} and "injected" not in json.dumps(body)
    assert doc["ErrorCount"] == 1 and doc["ClientErrorCount"] == 0


@PROPERTY
@given(text=st.one_of(
    st.text(max_size=3000),
    st.lists(st.sampled_from(["word", "東京", "  ", "\n", "é", "e\u0301", "a" * 120, "!", "😍", "naïve"]),
             max_size=1500).map("".join),
))
def test_tokenizing_a_prefix_gives_the_whole_texts_first_tokens(app, text):
    encoder = app.encoder
    assert encoder is not None
    enc, truncated = encoder.tokenize(text)
    whole = encoder.tokenizer.encode(text)
    assert enc.ids == whole.ids and truncated == bool(whole.overflowing)


def test_longest_accepted_cjk_text_is_embedded_from_its_first_tokens(app):
    text = ("東京は日本の首都です。" * (MAX_TEXT_CHARS // 11 + 1))[:MAX_TEXT_CHARS]
    status, body, _doc = call(app, origin_request_event({"text": text}))
    assert status == 200 and body["tokens"] == library_max_tokens() and body["truncated"] is True
    encoder = app.encoder
    assert encoder is not None
    assert encoder.tokenize(text)[0].ids == encoder.tokenizer.encode(text).ids
