"""Run the real edge handler offline: CloudFront origin-request events in, responses and EMF documents out.

Used by the plan-time alarm check (`infra/validation/edge.py`), the tests and the benchmark. The only thing
replaced is S3: `LocalModelStore` serves the model file from build/models, so the download, hash check, ONNX
session, tokenizer, inference and EMF all run the function's own code.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from infra.artifacts.edge_model import MODELS_DIR
from infra.core.paths import LAMBDAS_DIR

# The handler imports the shared code its zip holds at the root (include.txt: logshape); the runtime has that
# root on sys.path, lambdas/ stands for it here.
if str(LAMBDAS_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDAS_DIR))

from lambdas.edge_inference import emf
from lambdas.edge_inference.handler import App

SAMPLE_TEXT = "AkiDB serves vector search at the edge."
# Varied inputs for the accuracy check against sentence-transformers (tests/test_edge_model.py) and the
# benchmark's cosine: short and long, several scripts, code, logs, emoji, padding spaces.
REFERENCE_SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A monkey is playing drums.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Vector databases index embeddings for approximate nearest-neighbour search.",
    "HNSW graphs trade memory for query latency.",
    "ERROR 503: upstream connect error or disconnect/reset before headers",
    "p95 latency rose from 12 ms to 48 ms after the 14:05 UTC deploy",
    "¿Dónde está la biblioteca?",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。",
    "I love this product!!! 😍😍",
    "ok",
    "SELECT * FROM vectors WHERE id = 42;",
    "def add(a, b): return a + b",
    "The quick brown fox jumps over the lazy dog.",
    "Lambda@Edge replicas run in the region closest to the viewer.",
    "   leading and trailing spaces   ",
    "UPPER CASE TEXT IS LOWERCASED BY THE TOKENIZER",
    "How many replicas does the search tier run in each availability zone?",
    "The recall of the approximate index dropped to 0.91 after the compaction job.",
    "Please cancel my subscription and refund the last invoice.",
    "Il pleut depuis trois jours et la rivière a débordé ce matin.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "机器学习模型需要大量的数据来训练。",
    "한국어 문장도 임베딩할 수 있습니다.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",  # noqa: RUF001 (Greek, on purpose)
    "kubectl get pods -n search -o wide | grep CrashLoopBackOff",
    "Traceback (most recent call last): File \"app.py\", line 12, in <module> KeyError: 'vector'",
    "2026-12-07T03:14:15Z WARN shard=7 heap=93% gc_pause_ms=412 node=ip-10-0-5-22",
    "Is it safe to eat raw cookie dough?",
    "The orchestra rehearsed the second movement until midnight.",
    "Remind me to water the tomatoes on Thursday.",
    "🚀🚀 launch day 🎉",
    "x",
    "A",
    "$ curl -s -X POST https://edge.example.com/embed -d '{\"text\": \"hello\"}'",
    "Mean pooling averages the token vectors; normalisation scales the result to unit length.",
    "Customers in Sydney see 40 ms lower latency since the edge replicas went live.",
    "The patient reported mild headaches and dizziness after the second dose.",
    "Our team won the regional hackathon with a tool that summarises incident timelines.",
    "CREATE INDEX idx_embedding ON documents USING hnsw (embedding vector_cosine_ops);",
    "What's the difference between precision and recall?",
    "She left the keys under the mat, as promised, before catching the early train.",
    # Longer than 128 tokens (the package's tokenizer.json limit) and shorter than 256 (the library's).
    " ".join(["Observability means metrics, logs and traces that explain an incident quickly."] * 10),
    " ".join([
        "On the morning of the launch the operations team gathered in the small room next to the kitchen, where",
        "the coffee machine had been broken for a week and nobody had found the time to call the repair service.",
        "The dashboards showed steady traffic from Europe, a slow rise in Asia as the working day began there, and",
        "a handful of errors from a client that still sent requests in the old format. The lead engineer read the",
        "runbook aloud, step by step, while the others checked each alarm and each region in turn. By noon the new",
        "version served every request, the error budget was untouched, and someone finally fixed the coffee machine.",
    ]),
    "def search(index, query, k=10):\n    vec = embed(query)\n    hits = index.knn(vec, k)\n    "
    "return [h.id for h in hits if h.score > 0.5]\n" * 4,
    # Longer than 256 tokens: the library truncates there (sentence_bert_config.json), and so does the function.
    " ".join([
        "Vector search systems turn text, images and audio into embeddings, points in a space of a few hundred",
        "dimensions where distance stands for difference in meaning. Building such a system involves choosing",
        "an embedding model, deciding how documents are split into passages, and picking an index structure",
        "that answers nearest-neighbour queries quickly. Graph indexes such as HNSW keep a layered graph of",
        "neighbours and walk it greedily from an entry point; inverted-file indexes cluster the vectors and search",
        "only the closest clusters; product quantisation compresses each vector into a few bytes so that billions",
        "fit in memory. Each choice trades recall for latency, memory or build time, and the right balance",
        "depends on the workload: a support chatbot needs answers in tens of milliseconds, while an offline",
        "deduplication job can scan for hours. Operating the system adds more questions. How are embeddings",
        "refreshed when the model changes? What happens to queries while the index is rebuilt? Which metrics",
        "show that recall has silently dropped? Teams that answer these questions early spend their nights",
        "sleeping instead of debugging, and their users notice only that search results are good and fast.",
        "Later sections cover monitoring, alerting, capacity planning, cost, and the failure modes we met.",
    ]),
    "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。" * 12,
    " ".join(f"12:0{i % 10}:{i:02d} ERROR request_id={i * 7919:08x} upstream=search-{i % 3} status=503 "
             f"retry={i % 4} message=\"connection reset by peer\"" for i in range(14)),
]


def origin_request_event(body: Any = None, *, raw: bytes | None = None, method: str = "POST", uri: str = "/embed",
                         headers: dict[str, str] | None = None, truncated: bool = False,
                         encoding: str = "base64", include_body: bool = True,
                         request_id: str = "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
                         ) -> dict[str, Any]:
    """A CloudFront origin-request event as Lambda@Edge receives it (AWS "Lambda@Edge event structure")."""
    if raw is None:
        raw = b"" if body is None else json.dumps(body).encode()
    all_headers = {"host": "d111111abcdef8.cloudfront.net", "user-agent": "Amazon CloudFront",
                   "content-type": "application/json", **(headers or {})}
    request: dict[str, Any] = {
        "clientIp": "203.0.113.178",
        "headers": {k.lower(): [{"key": k, "value": v}] for k, v in all_headers.items()},
        "method": method,
        "origin": {"custom": {"customHeaders": {}, "domainName": "api.akidb.example", "keepaliveTimeout": 5,
                              "path": "", "port": 443, "protocol": "https", "readTimeout": 30,
                              "sslProtocols": ["TLSv1.2"]}},
        "querystring": "",
        "uri": uri,
    }
    if include_body:
        data = base64.b64encode(raw).decode() if encoding == "base64" else raw.decode()
        request["body"] = {"action": "read-only", "data": data, "encoding": encoding, "inputTruncated": truncated}
    return {"Records": [{"cf": {"config": {"distributionDomainName": "d111111abcdef8.cloudfront.net",
                                           "distributionId": "EDFDVBD6EXAMPLE", "eventType": "origin-request",
                                           "requestId": request_id},
                                "request": request}}]}


class LocalModelStore:
    """Stands in for the S3 client: `download_file` copies a model built in build/models."""

    def __init__(self, model_file: Path):
        self.model_file = model_file
        self.calls = 0

    def download_file(self, Bucket: str, Key: str, Filename: str) -> None:
        self.calls += 1
        shutil.copyfile(self.model_file, Filename)


def model_file_for(sha256: str) -> Path | None:
    """The built ONNX file whose hash the settings name, if it is in build/models."""
    for meta_file in sorted(MODELS_DIR.glob("*/model.json")):
        if json.loads(meta_file.read_text()).get("sha256") == sha256:
            return meta_file.parent / "model.int8.onnx"
    return None


@dataclass
class Unpacked:
    """The function's baked files (settings.json, tokenizer.json) extracted from its zip."""

    folder: Path
    settings: dict[str, Any]

    @property
    def settings_path(self) -> Path:
        return self.folder / "settings.json"


def unpack_baked(zip_path: Path, dest: Path, function: str = "edge_inference") -> Unpacked:
    with zipfile.ZipFile(zip_path) as zf:
        for name in ("settings.json", "tokenizer.json"):
            (dest / name).write_bytes(zf.read(f"{function}/{name}"))
    return Unpacked(dest, json.loads((dest / "settings.json").read_text()))


@contextmanager
def region(name: str) -> Iterator[None]:
    """AWS_REGION as a replica in `name` sees it."""
    old = os.environ.get("AWS_REGION")
    os.environ["AWS_REGION"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AWS_REGION", None)
        else:
            os.environ["AWS_REGION"] = old


def sample_events() -> list[dict[str, Any]]:
    """A cold request, a warm one, a client error: together they exercise every metric the handler can emit."""
    return [origin_request_event({"text": SAMPLE_TEXT}), origin_request_event({"text": SAMPLE_TEXT}),
            origin_request_event(raw=b"{not json")]


def run_sample(zip_path: Path, in_region: str) -> list[dict[str, Any]]:
    """The EMF documents the packaged function emits in `in_region` for `sample_events()`."""
    with tempfile.TemporaryDirectory(prefix="edge-probe-") as tmp:
        unpacked = unpack_baked(zip_path, Path(tmp))
        model_file = model_file_for(str(unpacked.settings.get("model_sha256")))
        if model_file is None:
            raise FileNotFoundError("the model named by settings.json is not in build/models: run `make edge-model`")
        out = io.StringIO()
        app = App(settings_path=unpacked.settings_path, s3_factory=lambda _s: LocalModelStore(model_file),
                  tmp_dir=Path(tmp), out=out)
        with region(in_region):
            for event in sample_events():
                app.handle(event, None)
        return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith('{"_aws"')]


@cache
def emitted_metrics(zip_path: str, zip_sha256: str, in_region: str,
                    ) -> tuple[frozenset[tuple[str, str, tuple[tuple[str, str], ...]]], tuple[str, ...]]:
    """What the packaged function publishes in `in_region` and the EMF problems of its documents (cached per
    package, by its hash, and region: each run loads the real model)."""
    docs = run_sample(Path(zip_path), in_region)
    return frozenset(published(docs)), tuple(p for d in docs for p in emf.problems(d))


def published(docs: list[dict[str, Any]]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    found: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    for doc in docs:
        found |= emf.published_metrics(doc)
    return found
