"""The encoder: the model's own tokenizer -> ONNX Runtime (INT8 encoder + mean pooling) -> L2 normalisation.

The ONNX file is not in the zip (it deflates to 19.5 MiB: with the 36 MiB of code, libraries and bytecode the zip
would pass the 50 MB Lambda@Edge allows an origin-request function): it is fetched from S3 once per container
into /tmp, checked against the SHA-256 baked at build time, and reused while the container lives.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from .digest import file_sha256
from .events import ClientError
from .pooling import l2_normalise
from .settings import Settings

TMP_DIR = Path("/tmp")
# First tokenizer window, in characters per kept token. English runs 4-6 characters a token (the benchmark's
# 128-token text has 658), CJK 1: at 6 a 128-token English text is tokenized in one pass (at 4 it took two, 0.7 ms
# instead of 0.35), while a long CJK text pays for 768 characters (~1.4 ms) instead of 512.
_FIRST_WINDOW_TOKENS_TO_CHARS = 6
_SPECIAL_TOKENS = 2  # [CLS] and [SEP]
# The graph's output: the mean of the token vectors (sentence-transformers' Pooling(mean) of one unpadded text),
# computed in ONNX Runtime - in numpy it cost 0.2-0.3 ms per request, its code and data cold after each run.
POOLED_OUTPUT = "pooled"


class ModelUnavailable(Exception):
    """The model could not be fetched or loaded (5xx: the caller did nothing wrong)."""


class S3Getter(Protocol):
    def download_file(self, Bucket: str, Key: str, Filename: str) -> Any: ...


@dataclass(frozen=True)
class Encoded:
    embedding: npt.NDArray[np.float32]
    token_count: int
    truncated: bool


def fetch_model(settings: Settings, s3: S3Getter, tmp_dir: Path = TMP_DIR) -> Path:
    """The model file in /tmp: reused when its hash matches (container kept its /tmp), else downloaded."""
    target = tmp_dir / f"edge-model-{settings.model_sha256[:16]}.onnx"
    if target.exists() and file_sha256(target) == settings.model_sha256:
        return target
    partial = target.with_suffix(f".part{os.getpid()}")
    try:
        s3.download_file(Bucket=settings.bucket, Key=settings.model_key, Filename=str(partial))
    except Exception as exc:  # botocore raises many types; all mean the same thing here
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(f"model download failed: {type(exc).__name__}") from exc
    digest = file_sha256(partial)
    if digest != settings.model_sha256:
        partial.unlink(missing_ok=True)
        raise ModelUnavailable("model object does not match the SHA-256 baked at build time")
    partial.replace(target)
    return target


def load_tokenizer(settings: Settings) -> Tokenizer:
    tok = Tokenizer.from_file(str(settings.tokenizer_path))
    # One text per request: padding to a fixed 128 (what tokenizer.json asks for batches) would only waste work;
    # truncation at max_tokens, sentence-transformers' limit (256), not tokenizer.json's 128.
    tok.no_padding()
    tok.enable_truncation(max_length=settings.max_tokens)
    return tok


def new_session(model_path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # One request at a time per container: one intra-op thread avoids oversubscribing Lambda's fractional vCPU.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])


class Encoder:
    def __init__(self, settings: Settings, tokenizer: Tokenizer, session: ort.InferenceSession):
        self.settings = settings
        self.tokenizer = tokenizer
        self.session = session
        outputs = {o.name: o.shape for o in session.get_outputs()}
        if outputs.get(POOLED_OUTPUT, [None])[-1] != settings.dimension:
            raise ModelUnavailable(f"model has no {POOLED_OUTPUT!r} output of {settings.dimension} values "
                                   f"(outputs: {sorted(outputs)}): not a build of infra/artifacts/edge_model.py")

    @classmethod
    def load(cls, settings: Settings, s3: S3Getter, tmp_dir: Path = TMP_DIR) -> tuple[Encoder, float]:
        """Fetch + load; returns the encoder and the load time in ms (download included)."""
        started = time.perf_counter()
        path = fetch_model(settings, s3, tmp_dir)
        try:
            session = new_session(path)
        except Exception as exc:  # onnxruntime raises its own C++ exception types
            raise ModelUnavailable(f"model could not be loaded: {type(exc).__name__}") from exc
        encoder = cls(settings, load_tokenizer(settings), session)
        return encoder, (time.perf_counter() - started) * 1000.0

    def tokenize(self, text: str) -> tuple[Encoding, bool]:
        """The first `max_tokens` tokens of `text` (and whether it had more), tokenizing only a prefix of it.

        Tokenizing costs time per token of the whole input (a 100,000-character CJK text: ~1.2 s) although only
        `max_tokens` are embedded. So a window of the text is tokenized, doubled until it is the whole text or
        the kept tokens all belong to words that end before the window's last (possibly cut) word: then they
        are exactly the whole text's first tokens (the tokenizer normalises and splits words independently).
        """
        window = _FIRST_WINDOW_TOKENS_TO_CHARS * self.settings.max_tokens
        while True:
            part = text[:window]
            enc = self.tokenizer.encode(part)
            if len(part) == len(text):
                return enc, bool(enc.overflowing)
            if enc.overflowing:
                kept_last = max((w for w in enc.word_ids if w is not None), default=-1)
                part_last = max((w for o in enc.overflowing for w in o.word_ids if w is not None), default=-1)
                if kept_last < part_last:
                    return enc, True
            window *= 2

    def encode(self, text: str) -> Encoded:
        enc, truncated = self.tokenize(text)
        if len(enc.ids) <= _SPECIAL_TOKENS:  # e.g. only control or format characters, which the tokenizer drops
            raise ClientError(400, "field 'text' has nothing the model reads (only control or format characters); "
                                   "send words")
        # One unpadded text: every token is attended to and pooled, token type 0 (the graph's constants).
        (vec,) = self.session.run([POOLED_OUTPUT], {"input_ids": np.asarray([enc.ids], dtype=np.int64)})
        if self.settings.normalize:
            vec = l2_normalise(vec)
        return Encoded(embedding=vec[0], token_count=len(enc.ids), truncated=truncated)
