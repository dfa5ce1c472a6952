"""The live drift report: one self-contained HTML page (inline CSS, plots as embedded PNG) of a running model.

It draws what :func:`driftline.monitoring.live_view.report_data` read from the monitors' checkpoints: per
feature, the reference and the current window's distributions with each test's statistic and p-value, and the
p-values over time; prediction and confidence drift; the label-free performance estimate beside the realised
metric with 95% bands; data-quality rates; the alert timeline with each alert's triggering event; the served
and challenger versions.

Examples
--------
>>> page = render_live_report({"model": "m", "versions": {"served": 2, "challenger": None}, "task": "binary",
...     "counts": {"events": 0}, "features": [], "prediction": None, "performance": {}, "quality": [],
...     "concept": {"tests": [], "history": {"ts": [], "series": {}}}, "alerts": []})
>>> page.startswith("<!DOCTYPE html>"), "served version 2" in page
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from driftline.offline.report import CSS, _e, _fmt, _table, png_data_uri

REFERENCE_COLOUR, WINDOW_COLOUR = "#4c72b0", "#dd8452"
LIVE_CSS = CSS + ".drifted{border-left:4px solid #c62828;padding-left:.6rem}.feature{margin:1.2rem 0}"


def _times(ts: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000, tz=UTC) for t in ts]


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.tick_params(axis="x", labelsize=7)


def _values(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def _distribution_axes(bars: Axes, cdf: Axes | None, distribution: Mapping[str, Any], subject: str) -> None:
    """Reference vs window: fractions per PSI bin (or category) and, for numbers, both empirical CDFs."""
    if "categories" in distribution:
        labels = [str(c)[:12] for c in distribution["categories"]]
    else:
        edges = distribution["edges"]
        labels = [f"≤{_short(edges[0])}" if edges else "all"]
        labels += [f"{_short(a)}–{_short(b)}" for a, b in zip(edges, edges[1:], strict=False)]
        labels += [f">{_short(edges[-1])}"] if edges else []
    x = np.arange(len(labels))
    bars.bar(x - 0.2, distribution["reference"], 0.4, label="reference", color=REFERENCE_COLOUR)
    bars.bar(x + 0.2, distribution["window"], 0.4, label="current window", color=WINDOW_COLOUR)
    bars.set_xticks(x, labels, rotation=60, fontsize=7, ha="right")
    bars.set_ylabel("fraction")
    bars.set_title(f"{subject}: reference vs current", fontsize=9)
    bars.legend(fontsize=7)
    if cdf is not None and "grid" in distribution:
        grid = distribution["grid"]
        cdf.step(grid, distribution["reference_cdf"], where="post", label="reference", color=REFERENCE_COLOUR)
        cdf.step(grid, distribution["window_cdf"], where="post", label="current window", color=WINDOW_COLOUR)
        cdf.set_ylabel("cumulative fraction")
        cdf.set_title("empirical CDFs (KS distance = largest gap)", fontsize=9)
        cdf.legend(fontsize=7)


def _short(value: float) -> str:
    return f"{value:.3g}"


def _p_value_axes(ax: Axes, history: Mapping[str, Any], alpha: float | None, alert_ts: Sequence[int]) -> None:
    """Each test's p-value per window over (event) time, log scale, with the corrected level and the alerts."""
    times = _times(history["ts"])
    drawn = False
    for name, values in sorted(history["series"].items()):
        if name.endswith("|p_value") and times:
            ax.plot(times, np.clip(_values(values), 1e-16, 1), marker=".", label=name.removesuffix("|p_value"))
            drawn = True
    if alpha:
        ax.axhline(alpha, color="#c62828", linestyle=":", label=f"level {alpha:.2g}")
    for t in _times(alert_ts):
        ax.axvline(t, color="#c62828", alpha=0.5)
    ax.set_yscale("log")
    ax.set_ylabel("p-value per window")
    ax.set_title("tests over time (red lines: alerts)", fontsize=9)
    if drawn:
        ax.legend(fontsize=7)
    _time_axis(ax)


def figure_feature(feature: Mapping[str, Any], alpha: float | None, alert_ts: Sequence[int]) -> Figure:
    """One feature: reference vs current window, the CDFs (numeric), the p-values over time."""
    numeric = feature["kind"] == "numeric"
    fig, axes = plt.subplots(1, 3 if numeric else 2, figsize=(13 if numeric else 9, 3.2))
    if feature["distribution"] is not None:
        _distribution_axes(axes[0], axes[1] if numeric else None, feature["distribution"], feature["name"])
    else:
        axes[0].text(0.5, 0.5, "no reference yet", ha="center")
    _p_value_axes(axes[-1], feature["history"], alpha, alert_ts)
    fig.tight_layout()
    return fig


def figure_performance(performance: Mapping[str, Any]) -> Figure:
    """Label-free estimate and realised metric over time, each with its 95% band."""
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for key, label, colour in (
        ("estimated_history", "estimated (label-free)", WINDOW_COLOUR),
        ("realised_history", "realised (labels)", REFERENCE_COLOUR),
    ):
        series = performance.get(key) or {}
        times = _times(series.get("ts", []))
        if not times:
            continue
        ax.plot(times, _values(series["value"]), label=label, color=colour)
        if series.get("low"):
            ax.fill_between(times, _values(series["low"]), _values(series["high"]), color=colour, alpha=0.2)
    if performance.get("estimated_reference") is not None:
        ax.axhline(performance["estimated_reference"], color="grey", linestyle=":", label="estimate's reference")
    ax.set_ylabel(performance.get("metric") or "metric")
    ax.set_title(f"rolling {performance.get('metric')} over {performance.get('window')} outcomes", fontsize=9)
    ax.legend(fontsize=7)
    _time_axis(ax)
    fig.tight_layout()
    return fig


#: CBPE metrics drawn per window, when the learning monitor has them.
CBPE_METRICS = ("accuracy", "f1", "roc_auc")


def figure_cbpe(windows: Sequence[Mapping[str, Any]]) -> Figure:
    """CBPE per window of labelled outcomes: each metric estimated from the scores alone (with its band) beside the
    metric realised from the labels."""
    fig, axes = plt.subplots(1, len(CBPE_METRICS), figsize=(13, 3.2))
    x = np.arange(1, len(windows) + 1)
    for ax, metric in zip(axes, CBPE_METRICS, strict=True):
        estimated = _values([w["estimated"].get(metric) for w in windows])
        band = _values([(w["estimated"].get("bands") or {}).get(metric) for w in windows])
        ax.plot(x, estimated, marker=".", color=WINDOW_COLOUR, label="estimated (CBPE, no labels)")
        ax.fill_between(x, estimated - band, estimated + band, color=WINDOW_COLOUR, alpha=0.2)
        ax.plot(
            x,
            _values([w["realised"].get(metric) for w in windows]),
            marker=".",
            color=REFERENCE_COLOUR,
            label="realised (labels)",
        )
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("window of labelled outcomes", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_quality(quality: Sequence[Mapping[str, Any]]) -> Figure:
    """Data-quality rates over time (the checks that were ever above 0)."""
    fig, ax = plt.subplots(figsize=(10, 3))
    for row in quality:
        values = _values(row["history"]["value"])
        if values.size and np.nanmax(values, initial=0.0) > 0:
            ax.plot(_times(row["history"]["ts"]), values, label=f"{row['check']} {row['feature']}".strip())
    ax.set_ylabel("rate over the window")
    ax.set_title("data-quality rates", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _time_axis(ax)
    fig.tight_layout()
    return fig


def figure_alerts(alerts: Sequence[Mapping[str, Any]]) -> Figure:
    """Alert timeline: one row per alert kind, a mark per alert (red critical, orange warning)."""
    kinds = sorted({a["kind"] for a in alerts})
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.4 * max(len(kinds), 1)))
    for a in alerts:
        colour = "#c62828" if a["severity"] == "critical" else "#ef8f00"
        ax.scatter(_times([a["ts"]]), [kinds.index(a["kind"])], color=colour, s=40)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    _time_axis(ax)
    fig.tight_layout()
    return fig


def _when(ts: int | None) -> str:
    if ts is None:
        return "n/a"
    return datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _img(fig: Figure, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='{png_data_uri(fig)}'>"


def _tests_table(tests: Mapping[str, Mapping[str, Any]]) -> str:
    return _table(
        ["test", "statistic", "p-value", "threshold"],
        [[name, _fmt(t["statistic"]), _fmt(t["p_value"]), _fmt(t["threshold"])] for name, t in sorted(tests.items())],
    )


def render_live_report(data: Mapping[str, Any]) -> str:
    """The HTML page of :func:`driftline.monitoring.live_view.report_data`'s dict."""
    counts, versions = data["counts"], data["versions"]
    alerts = data["alerts"]
    alpha = counts.get("alpha")
    challenger = versions.get("challenger")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>driftline live report: {_e(data['model'])}</title>",
        f"<style>{LIVE_CSS}</style></head><body>",
        f"<h1>{_e(data['model'])}: live drift report</h1>",
        f"<p>served version {_e(versions.get('served'))}; challenger "
        f"{_e('none' if challenger is None else f'version {challenger}')}; task {_e(data.get('task'))}</p>",
        _table(
            ["events scored", "invalid (dead-lettered)", "labels learned", "label coverage", "label lag (s)"],
            [
                [
                    _fmt(counts.get("events")),
                    _fmt(counts.get("invalid")),
                    _fmt(counts.get("outcomes")),
                    _fmt(counts.get("label_coverage")),
                    _fmt(counts.get("label_lag_seconds")),
                ]
            ],
        ),
        f"<p class='muted'>Each test runs at the corrected level {_fmt(alpha)} "
        f"({_fmt(counts.get('detectors_budgeted'))} detectors share the false-alarm budget). "
        "Statistics are the monitors' checkpointed state; times (UTC) are when a monitor observed a batch.</p>",
    ]
    if counts.get("learning_reference"):
        parts.append("<p><b>The monitor is still learning its reference from the first events.</b></p>")
    parts.append(f"<h2>Alerts ({len(alerts)})</h2>")
    if alerts:
        parts += [
            _img(figure_alerts(alerts), "alert timeline"),
            _table(
                [
                    "time",
                    "severity",
                    "kind",
                    "feature",
                    "detector",
                    "statistic",
                    "threshold",
                    "triggering event",
                    "version",
                    "action",
                    "message",
                ],
                [
                    [
                        _when(a["ts"]),
                        a["severity"],
                        a["kind"],
                        a.get("feature") or "",
                        a["detector"],
                        _fmt(a.get("statistic")),
                        _fmt(a.get("threshold")),
                        a.get("event_id") or "",
                        _fmt(a.get("model_version")),
                        a.get("action"),
                        a.get("message"),
                    ]
                    for a in alerts
                ],
            ),
        ]
    else:
        parts.append("<p>No alert on the alerts topic for this model.</p>")
    parts.append("<h2>Data drift per feature</h2>")
    if not data["features"]:
        parts.append("<p>No scoring monitor checkpoint yet.</p>")
    by_id = {a["alert_id"]: a for a in alerts}
    for feature in data["features"]:
        fired = [by_id[i] for i in feature["alerts"] if i in by_id]
        css = "feature drifted" if fired else "feature"
        note = f" — {len(fired)} alert(s)" if fired else ""
        parts += [
            f"<div class='{css}' id='feature-{_e(feature['name'])}'>",
            f"<h3>{_e(feature['name'])} <span class='muted'>({feature['kind']}){_e(note)}</span></h3>",
            _tests_table(feature["tests"]),
            _img(figure_feature(feature, alpha, [a["ts"] for a in fired]), f"{feature['name']} distributions"),
            "</div>",
        ]
    prediction = data.get("prediction")
    if prediction is not None:
        parts.append("<h2>Prediction and confidence drift</h2>")
        if prediction["tests"]:
            parts.append(_tests_table(prediction["tests"]))
        if prediction["distribution"] is not None:
            subject = {**prediction, "name": prediction["subject"], "kind": "numeric"}
            if "categories" in prediction["distribution"]:
                subject["kind"] = "categorical"
            ts = [a["ts"] for a in alerts if a["kind"] == "prediction_drift"]
            parts.append(_img(figure_feature(subject, alpha, ts), "prediction distributions"))
        else:
            parts.append("<p class='muted'>The prediction reference is still being learned.</p>")
    performance = data.get("performance") or {}
    if performance.get("metric"):
        parts += [
            "<h2>Estimated vs realised performance</h2>",
            f"<p>Latest estimate (mean top-class confidence, no labels needed): "
            f"{_fmt(performance.get('estimated'))} (reference {_fmt(performance.get('estimated_reference'))}); "
            f"realised {_e(performance['metric'])} on labelled outcomes: {_fmt(performance.get('realised'))}. "
            "Bands: 95% binomial intervals over the window.</p>",
            _img(figure_performance(performance), "estimated and realised performance"),
        ]
    windows = performance.get("cbpe_windows") or []
    if windows:
        last = windows[-1]
        parts += [
            "<h3>CBPE: estimated from the scores alone vs realised from the labels, per window</h3>",
            f"<p class='muted'>{len(windows)} windows of {last['estimated'].get('n', '?')} labelled outcomes; the "
            "estimate uses calibrated scores only (the calibrator was fitted before each window), the band is 3 "
            "standard errors. Last window ending at event "
            f"{_e(last.get('end_event_id'))}: estimated accuracy {_fmt(last['estimated'].get('accuracy'))}, "
            f"realised {_fmt(last['realised'].get('accuracy'))}.</p>",
            _img(figure_cbpe(windows), "CBPE per window"),
        ]
    concept = data.get("concept") or {}
    if concept.get("tests"):
        parts += [
            "<h2>Concept drift (error stream)</h2>",
            _table(
                ["detector", "statistic", "threshold"],
                [[d["detector"], _fmt(d["statistic"]), _fmt(d["threshold"])] for d in concept["tests"]],
            ),
        ]
    if data.get("quality"):
        parts += [
            "<h2>Data quality</h2>",
            _img(figure_quality(data["quality"]), "data-quality rates"),
            _table(
                ["check", "feature", "rate", "reference rate"],
                [[q["check"], q["feature"], _fmt(q["rate"]), _fmt(q["reference_rate"])] for q in data["quality"]],
            ),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)
