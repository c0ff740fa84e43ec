"""`make dashboards-preview`: a PNG per checked-in dashboard, its layout drawn with sample series (matplotlib).

A pull request that changes a dashboard changes a picture reviewers can look at without a cloud account: the
widgets at their grid positions and sizes, titles, legends, threshold lines and alarm lists. The series are
synthetic (seeded, so the images are stable): a quiet baseline and one incident in the same place on every graph,
which shows at a glance which thresholds an incident crosses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from infra.core.paths import BUILD_DIR, DASHBOARDS_DIR

matplotlib.rcParams["text.parse_math"] = False  # titles contain Grafana variables ($slo), not TeX
OUT_DIR = BUILD_DIR / "dashboards-preview"
COL_IN = 0.75  # inches per grid column (24 columns: 18 in)
ROW_IN = {"cloudwatch": 0.42, "grafana": 0.40}  # inches per height unit
POINTS = 120
INCIDENT = slice(int(POINTS * 0.62), int(POINTS * 0.72))
UNIT_NAMES = {"percentunit": "ratio", "reqps": "requests/s", "s": "seconds", "suffix:x": "burn rate (x budget)",
              "h": "hours", "short": ""}
GRAFANA_COLORS = {"green": "#2ca02c", "red": "#d62728", "orange": "#ff7f0e", "yellow": "#bcbd22"}


def _rng(seed_text: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(seed_text.encode()).hexdigest()[:8], 16))


def sample_series(title: str, label: str, index: int, thresholds: Sequence[float], share: bool) -> np.ndarray:
    """A plausible series: baseline under the lowest threshold, an incident that crosses it."""
    rng = _rng(f"{title}/{label}")
    t = np.linspace(0, 4 * np.pi, POINTS)
    lowered = label.lower()
    if "anomalous" in lowered or "firing" in title.lower():  # 0/1 states: one episode, during the incident
        flags = np.zeros(POINTS)
        flags[INCIDENT] = 1
        return flags
    if "forecast age" in title.lower():  # grows, reset by the weekly training run
        return (np.arange(POINTS) * 0.5 + 40 + 15 * index) % 168
    if any(word in lowered for word in ("bound", "predicted", "actual")):
        predicted = 50 * (1 + 0.2 * np.sin(t))  # the same forecast for every line of the widget
        scale = {"upper bound": 1.25, "lower bound": 0.75}.get(lowered, 1.0)
        if lowered != "actual":
            return predicted * scale
        actual = predicted * (1 + rng.normal(0, 0.04, POINTS))
        actual[INCIDENT] = predicted[INCIDENT] * 1.6
        return actual
    if share:
        series = 0.97 - 0.01 * index + 0.01 * np.sin(t) + rng.normal(0, 0.005, POINTS)
        series[INCIDENT] -= 0.25
        return np.clip(series, 0, 1)
    positive = [v for v in thresholds if v > 0]
    base = 0.35 * min(positive) if positive else 10.0 * (index + 1)
    if any(word in lowered for word in ("error", "5xx", "4xx", "throttle", "503", "429")):
        base = 0.35 * min(positive) if positive else 1.0 + index  # errors: a small share of the traffic
    elif any(word in lowered for word in ("request", "invocation", "200")):
        base = 40.0
    factor = {"p95": 1.5, "p99": 2.0, "p50": 1.0}.get(lowered.strip()[:3], 1.0 + 0.1 * index)
    series = base * factor * (1 + 0.15 * np.sin(t + index) + rng.normal(0, 0.05, POINTS))
    series[INCIDENT] *= 3.2 if positive else 1.8
    return np.maximum(series, 0)


# ----------------------------------------------------------------------------------------------- CloudWatch


def _cw_lines(props: dict[str, Any], axis: str = "left") -> list[tuple[str, str | None]]:
    """(label, colour) of each visible line of a metric widget on one y axis."""
    out = []
    for line in props.get("metrics", []):
        opts = line[-1] if isinstance(line[-1], dict) else {}
        if opts.get("visible") is False or opts.get("yAxis", "left") != axis:
            continue
        label = opts.get("label") or (opts.get("expression") or f"{line[1]} {opts.get('stat', '')}")
        out.append((str(label), opts.get("color")))
    return out


def _draw_cw(ax: Axes, widget: dict[str, Any]) -> None:
    props = widget.get("properties", {})
    kind = widget.get("type")
    title = str(props.get("title", ""))
    if kind == "text":
        _text(ax, str(props.get("markdown", "")))
        return
    if kind == "alarm":
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
        names = [a.rsplit(":alarm:", 1)[-1] for a in props.get("alarms", [])]
        for i, name in enumerate(names[:8]):
            y = 0.9 - i * 0.12
            ax.add_patch(Rectangle((0.01, y - 0.04), 0.1, 0.09, color="#2ca02c", transform=ax.transAxes))
            ax.text(0.06, y, "OK", color="white", fontsize=6, ha="center", va="center", transform=ax.transAxes)
            ax.text(0.13, y, name, fontsize=6, va="center", transform=ax.transAxes)
        return
    lines = _cw_lines(props)
    hlines = [h["value"] for h in props.get("annotations", {}).get("horizontal", [])]
    if props.get("view") == "singleValue":
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
        for i, (label, color) in enumerate(lines):
            value = 100 * (0.62 - 0.1 * i)
            ax.text(0.5, 0.6 - 0.35 * i, f"{value:.1f}", fontsize=20, ha="center", color=color or "black",
                    transform=ax.transAxes)
            ax.text(0.5, 0.42 - 0.35 * i, textwrap.fill(label, 30), fontsize=6, ha="center",
                    transform=ax.transAxes)
        return
    y_axis = props.get("yAxis", {}).get("left", {})
    share = y_axis.get("max") == 1
    x = np.arange(POINTS)
    series = [sample_series(title, label, i, hlines, share) for i, (label, _) in enumerate(lines)]
    colors = [c for _, c in lines]
    if props.get("stacked") and series:
        # A None colour is the default colour at run time; matplotlib's stubs do not allow it in `colors`.
        ax.stackplot(x, *series, labels=[lbl for lbl, _ in lines], colors=colors, alpha=0.8)  # type: ignore[arg-type]
    else:
        for s, (label, color) in zip(series, lines, strict=True):
            ax.plot(x, s, label=label, color=color, lw=1)
    for h in props.get("annotations", {}).get("horizontal", []):
        ax.axhline(h["value"], color=h.get("color", "#d62728"), ls="--", lw=0.9, label=h.get("label"))
    if "min" in y_axis or "max" in y_axis:
        ax.set_ylim(y_axis.get("min"), y_axis.get("max"))
    right = _cw_lines(props, "right")
    if right:
        twin = ax.twinx()
        for i, (label, color) in enumerate(right):
            twin.plot(x, sample_series(title, label, i + 3, [], False), color=color, lw=1, ls=":", label=label)
        twin.tick_params(labelsize=5)
        handles, labels = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(handles + more[0], labels + more[1], fontsize=5, loc="upper left", ncol=2, framealpha=0.7)
    _finish(ax, title, y_axis.get("label", ""))


def _finish(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=8, loc="left")
    ax.set_ylabel(ylabel, fontsize=6)
    ax.tick_params(labelsize=5)
    ax.set_xticks([0, POINTS // 2, POINTS - 1], ["-6h", "-3h", "now"])
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0] and ax.get_legend() is None:
        ax.legend(fontsize=5, loc="upper left", ncol=2, framealpha=0.7)


def _text(ax: Axes, markdown: str) -> None:
    ax.axis("off")
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", markdown).replace("`", "")
    lines = text.splitlines()
    head = lines[0].lstrip("# ") if lines else ""
    ax.text(0.0, 0.95, head, fontsize=10, fontweight="bold", va="top", transform=ax.transAxes)
    rest = "\n".join(textwrap.fill(line, 190) for line in lines[1:])
    ax.text(0.0, 0.55, rest, fontsize=7, va="top", transform=ax.transAxes)


# ----------------------------------------------------------------------------------------------- Grafana


def _grafana_thresholds(panel: dict[str, Any]) -> list[tuple[float, str]]:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    return [(float(s["value"]), GRAFANA_COLORS.get(s["color"], s["color"])) for s in steps
            if s.get("value") is not None]


def _draw_grafana(ax: Axes, panel: dict[str, Any]) -> None:
    title = str(panel.get("title", ""))
    kind = panel.get("type")
    if kind == "row":
        ax.axis("off")
        ax.text(0.0, 0.5, title, fontsize=10, fontweight="bold", va="center", transform=ax.transAxes)
        return
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    thresholds = _grafana_thresholds(panel)
    unit = defaults.get("unit", "")
    if kind in ("stat", "gauge"):
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
        # The first target only: several targets of a stat are alternatives (one per SLO, selected by $slo).
        first = panel.get("targets", [{}])[0]
        legends = _legends(str(first.get("legendFormat", "")))[: (4 if kind == "stat" else 1)]
        for i, legend in enumerate(legends):
            value = 0.62 - 0.2 * i if unit == "percentunit" else 96.0 - 30 * i
            color = "#d62728"
            for limit, c in thresholds:
                if value >= limit:
                    color = c
            shown = f"{value:.0%}" if unit == "percentunit" else f"{value:.0f} {unit}"
            x_pos = (i + 0.5) / max(len(legends), 1)
            ax.text(x_pos, 0.45, shown, fontsize=16, ha="center", color=color, transform=ax.transAxes)
            ax.text(x_pos, 0.15, legend, fontsize=6, ha="center", transform=ax.transAxes)
        return
    draw = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off") != "off"
    share = unit == "percentunit" and defaults.get("max") == 1
    x = np.arange(POINTS)
    values = [v for v, _ in thresholds] if draw else []
    labels = [lbl for target in panel.get("targets", []) for lbl in _legends(str(target.get("legendFormat", "")))]
    for i, label in enumerate(labels):
        ax.plot(x, sample_series(title, label, i, values, share), lw=1, label=label)
    if draw:
        for value, color in thresholds:
            ax.axhline(value, color=color, ls="--", lw=0.9)
    _finish(ax, title, UNIT_NAMES.get(unit, unit))


def _legends(legend: str) -> list[str]:
    """Sample series names for a legend template: {{status}} stands for several series."""
    if "{{status}}" in legend:
        return [legend.replace("{{status}}", s) for s in ("200", "429", "503")]
    if "{{" in legend:  # any other label: two sample series
        return [re.sub(r"\{\{\s*(\w+)\s*\}\}", rf"\1-{n}", legend) for n in (1, 2)]
    return [legend]


# ----------------------------------------------------------------------------------------------- pages


def _boxes(kind: str, doc: dict[str, Any]) -> list[tuple[dict[str, Any], int, int, int, int]]:
    if kind == "cloudwatch":
        return [(w, w["x"], w["y"], w["width"], w["height"]) for w in doc.get("widgets", [])]
    return [(p, p["gridPos"]["x"], p["gridPos"]["y"], p["gridPos"]["w"], p["gridPos"]["h"])
            for p in doc.get("panels", [])]


def render(kind: str, doc: dict[str, Any], title: str) -> Figure:
    boxes = _boxes(kind, doc)
    rows = max((y + h for _, _, y, _, h in boxes), default=1)
    row_in = ROW_IN[kind]
    header_in = 0.5
    margin_in = 0.45  # room for the y tick labels of the leftmost widgets
    fig_w, fig_h = 24 * COL_IN + margin_in, rows * row_in + header_in
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=80)
    fig.text(0.005, 1 - 0.3 / fig_h, f"{title}   ({kind}, {len(boxes)} widgets; sample data)", fontsize=12,
             fontweight="bold", va="center")
    pad_x, pad_y = 0.12, 0.12
    for item, x, y, w, h in boxes:
        left = (margin_in + x * COL_IN + pad_x) / fig_w
        top = header_in + y * row_in
        small = w <= 4 or h <= 3
        extra_bottom = 0.0 if small or item.get("type") in ("text", "row", "alarm", "stat", "gauge") else 0.2
        bottom = 1 - (top + h * row_in) / fig_h + (pad_y + extra_bottom) / fig_h
        width = (w * COL_IN - 2 * pad_x) / fig_w
        height = (h * row_in - 2 * pad_y - 0.18 - extra_bottom) / fig_h
        ax = fig.add_axes((left, bottom, width, max(height, 0.01)))
        (_draw_cw if kind == "cloudwatch" else _draw_grafana)(ax, item)
    return fig


def preview_all(source: Path = DASHBOARDS_DIR, out: Path = OUT_DIR) -> list[Path]:
    written = []
    for path in sorted(source.rglob("*.json")):
        rel = path.relative_to(source)
        kind = "grafana" if "grafana" in rel.parts else "cloudwatch"
        doc = json.loads(path.read_text())
        title = doc.get("title") or path.stem
        fig = render(kind, doc, str(title))
        target = out / rel.with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target)
        plt.close(fig)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PNG previews of the checked-in dashboards")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    for path in preview_all(out=args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
