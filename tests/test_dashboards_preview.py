"""The preview renders every kind of widget/panel into a PNG whose size follows the dashboard's grid."""

from __future__ import annotations

import json
import shutil

import matplotlib.image as mpimg

from infra.core.paths import DASHBOARDS_DIR
from infra.dashboard_defs import preview


def _png_size(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    return img.shape[1], img.shape[0]


def test_preview_draws_cloudwatch_and_grafana_dashboards(tmp_path):
    source = tmp_path / "dashboards"
    picks = ["grafana/golden-signals.json", "staging/cloudwatch/akidb-staging-slo.json"]
    for rel in picks:
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DASHBOARDS_DIR / rel, source / rel)
    out = tmp_path / "png"
    written = preview.preview_all(source, out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(
        r.replace(".json", ".png") for r in picks)
    for rel, png in zip(sorted(picks), sorted(written), strict=True):
        doc = json.loads((source / rel).read_text())
        width, height = _png_size(png)
        if "grafana" in rel:
            rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in doc["panels"])
            unit = preview.ROW_IN["grafana"]
        else:
            rows = max(w["y"] + w["height"] for w in doc["widgets"])
            unit = preview.ROW_IN["cloudwatch"]
        assert width == round((24 * preview.COL_IN + 0.45) * 80)
        assert abs(height - (rows * unit + 0.5) * 80) <= 2
        # Not blank: a rendered dashboard has plenty of non-white pixels (lines, text, threshold markers).
        img = mpimg.imread(png)
        assert (img[..., :3].sum(axis=2) < 2.5).mean() > 0.01


def test_sample_series_cross_the_lowest_threshold_only_during_the_incident():
    s = preview.sample_series("t", "p95", 0, [100.0], share=False)
    inside = s[preview.INCIDENT]
    outside = s[: preview.INCIDENT.start]
    assert inside.min() > 100 and outside.max() < 100
    share = preview.sample_series("t", "cache-hit", 0, [], share=True)
    assert share.min() >= 0 and share.max() <= 1 and share[preview.INCIDENT].mean() < share[:50].mean()
