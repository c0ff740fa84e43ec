"""The EMF contract module: one definition for the handler, the alarms and the dashboards."""

from __future__ import annotations

import json

import pytest
from edge_inference import emf as emf_in_zip

from lambdas.edge_inference import emf


def test_contract_shape():
    assert emf.DIMENSION_SETS == [[], ["EdgeRegion"], ["Model"]]
    assert set(emf.METRICS) == {"InferenceLatency", "TotalLatency", "TokenCount", "RequestCount", "CacheHit",
                                "ModelLoadTime", "ErrorCount", "ClientErrorCount"}
    assert set(emf.METRICS.values()) <= {"Milliseconds", "Count"}
    assert set(emf.ALWAYS_EMITTED) <= set(emf.METRICS)
    # Infra imports it as lambdas.edge_inference.emf, the zip as edge_inference.emf: the same definition.
    assert emf_in_zip.METRICS == emf.METRICS and emf_in_zip.DIMENSION_SETS == emf.DIMENSION_SETS


def _doc(**values: float) -> dict:
    return emf.document("AkiDB/Edge", 1_700_000_000_000, emf.dimension_values("eu-west-1", "m"),
                        values or {"RequestCount": 1, "InferenceLatency": 3.5})


def test_document_is_valid_emf_and_lists_only_present_metrics():
    doc = _doc()
    assert emf.problems(doc) == []
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert [m["Name"] for m in directive["Metrics"]] == ["InferenceLatency", "RequestCount"]
    assert directive["Metrics"][0]["Unit"] == "Milliseconds" and doc["EdgeRegion"] == "eu-west-1"
    line = emf.serialise(doc)
    assert "\n" not in line and json.loads(line) == doc


def test_published_metrics_are_one_per_metric_and_dimension_set():
    found = emf.published_metrics(_doc(ErrorCount=0))
    assert found == {("AkiDB/Edge", "ErrorCount", ()), ("AkiDB/Edge", "ErrorCount", (("EdgeRegion", "eu-west-1"),)),
                     ("AkiDB/Edge", "ErrorCount", (("Model", "m"),))}


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="not an EMF metric"):
        _doc(Latency=1.0)


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d.pop("_aws"), "Timestamp"),
    (lambda d: d["_aws"].update(CloudWatchMetrics=[]), "missing or empty"),
    (lambda d: d.pop("EdgeRegion"), "dimension EdgeRegion"),
    (lambda d: d.update(RequestCount="1"), "no numeric value"),
    (lambda d: d.update(RequestCount=True), "no numeric value"),
    (lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1].update(Unit="Seconds"), "unit Seconds"),
    (lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Namespace=""), "no Namespace"),
    (lambda d: d["_aws"]["CloudWatchMetrics"][0]["Dimensions"].append([f"k{i}" for i in range(31)]), "30 keys"),
    (lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Metrics=[]), "0 metrics"),
])
def test_problems_catch_invalid_documents(mutate, expected):
    doc = json.loads(json.dumps(_doc()))
    mutate(doc)
    assert any(expected in p for p in emf.problems(doc)), emf.problems(doc)


def test_published_metrics_refuses_a_non_emf_record():
    with pytest.raises(ValueError, match="not an EMF document"):
        emf.published_metrics({"message": "hello"})
