"""``report.html``: one self-contained page (inline CSS, plots as embedded PNG) that opens without a server.

It shows the framing card, the verdict, the test metric with its interval against the baseline, the CV
comparison of every candidate, the confusion matrix (or residuals), ROC and precision-recall curves for a
binary task, the worst slices of the error analysis and the feature distributions of the reference profile.

Examples
--------
>>> fig = figure_cv([{"name": "majority", "cv_mean": 0.5, "cv_std": 0.0}, {"name": "linear", "cv_mean": 0.8,
...                  "cv_std": 0.02}], "accuracy")
>>> png_data_uri(fig).startswith("data:image/png;base64,")
True
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from driftline.models.reference import CategoricalProfile, NumericProfile, ReferenceProfile  # noqa: E402
from driftline.offline.evaluate import cost_curve  # noqa: E402

MAX_FEATURE_PLOTS = 48
MAX_IMPORTANCE_BARS = 25
MAX_SLICES_SHOWN = 20
MAX_SCATTER_POINTS = 5000
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f5f5f5}.go{background:#1b873f;color:#fff}.nogo{background:#c62828;color:#fff}
.badge{display:inline-block;padding:.3rem .8rem;border-radius:4px;font-weight:bold}
img{max-width:100%}.muted{color:#666;font-size:.9rem}
"""


@dataclass
class ReportInputs:
    """What the report draws: metrics.json's content plus the test outputs and the reference profile."""

    metrics: dict[str, Any]
    card: dict[str, Any]
    y_test: np.ndarray
    outputs: Mapping[str, np.ndarray]
    labels: Sequence[Any]
    reference: ReferenceProfile


def png_data_uri(fig: Figure) -> str:
    """The figure as an inline PNG data URI (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def figure_cv(candidates: Sequence[Mapping[str, Any]], metric: str) -> Figure:
    """Mean CV score of each candidate with one standard deviation."""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(candidates)))
    names = [c["name"] for c in candidates]
    means = [_finite(c["cv_mean"]) for c in candidates]
    stds = [_finite(c["cv_std"]) for c in candidates]
    ax.barh(names, means, xerr=stds, color="#4c72b0", capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel(f"cross-validated {metric}")
    return fig


def figure_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[Any]) -> Figure:
    """Confusion matrix of the chosen model on the test set (rows true, columns predicted)."""
    values = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(labels), 1.2 + 0.6 * len(labels)))
    ax.imshow(values, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, [str(v) for v in labels], rotation=45)
    ax.set_yticks(ticks, [str(v) for v in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            ax.text(
                j,
                i,
                str(values[i, j]),
                ha="center",
                va="center",
                color="white" if values[i, j] > values.max() / 2 else "black",
            )
    return fig


def figure_residuals(y: np.ndarray, pred: np.ndarray) -> Figure:
    """Residuals against predictions (at most 5000 points drawn), and the histogram of all of them."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    residual = y - pred
    shown = np.random.default_rng(0).permutation(len(y))[:MAX_SCATTER_POINTS]
    left.scatter(pred[shown], residual[shown], s=4, alpha=0.4)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_xlabel("prediction")
    left.set_ylabel("true - prediction")
    right.hist(residual, bins=40, color="#4c72b0")
    right.set_xlabel("residual")
    return fig


def figure_roc_pr(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> Figure:
    """ROC and precision-recall curves of each model's positive-class probability."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        precision, recall, _ = precision_recall_curve(y, p)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate")
    roc_ax.legend(fontsize=8)
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    pr_ax.legend(fontsize=8)
    return fig


def figure_calibration_and_cost(
    y: np.ndarray, p_positive: np.ndarray, costs: Mapping[str, float] | None, threshold: float | None
) -> Figure:
    """Reliability (mean predicted probability vs observed positive rate per decile of the scores) and, with
    the card's costs, the expected cost per row at every threshold with the chosen one marked."""
    from sklearn.calibration import calibration_curve

    fig, (cal, cost) = plt.subplots(1, 2, figsize=(10, 3.8))
    observed, predicted = calibration_curve(y, p_positive, n_bins=10, strategy="quantile")
    brier = float(np.mean((p_positive - y) ** 2))
    cal.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    cal.plot(predicted, observed, marker="o", label=f"chosen model (Brier {brier:.3f})")
    cal.set_xlabel("mean predicted probability (decile of scores)")
    cal.set_ylabel("observed positive rate")
    cal.legend(fontsize=8)
    if costs:
        grid = np.linspace(0.0, 1.0, 101)
        per_row = cost_curve(y, p_positive, grid, cost_fp=costs["false_positive"], cost_fn=costs["false_negative"])
        cost.plot(grid, per_row, color="#c44e52")
        if threshold is not None:
            cost.axvline(threshold, color="black", linestyle="--", label=f"chosen threshold {threshold:.2f}")
            cost.legend(fontsize=8)
        cost.set_xlabel("decision threshold on P(positive)")
        cost.set_ylabel("expected cost per row (test)")
        cost.set_title(
            f"false positive costs {costs['false_positive']:g}, false negative {costs['false_negative']:g}",
            fontsize=9,
        )
    else:
        cost.set_visible(False)
    fig.tight_layout()
    return fig


def figure_slices(
    slices: Sequence[Mapping[str, Any]], error_name: str, overall: Mapping[str, Any] | None = None
) -> Figure:
    """The slices with the highest error, each with its 95% interval, beside the error over every row."""
    worst = sorted(slices, key=lambda s: -_finite(s[error_name]))[:MAX_SLICES_SHOWN]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.35 * max(len(worst), 1)))
    values = [_finite(s[error_name]) for s in worst]
    low = [v - _finite(s.get("error_ci_low", v)) for v, s in zip(values, worst, strict=True)]
    high = [_finite(s.get("error_ci_high", v)) - v for v, s in zip(values, worst, strict=True)]
    ax.barh(
        [f"{s['feature']} {s['slice']} (n={s['rows']})" for s in worst],
        values,
        xerr=[low, high],
        color="#dd8452",
        capsize=2,
    )
    if overall is not None:
        ax.axvline(overall[error_name], color="black", linestyle="--", label=f"all rows {overall[error_name]:.3g}")
        ax.axvspan(overall["error_ci_low"], overall["error_ci_high"], color="grey", alpha=0.2)
        ax.legend(fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{error_name.replace('_', ' ')} (95% interval)")
    return fig


def figure_importance(ranked: Sequence[Mapping[str, Any]], metric: str) -> Figure:
    """Permutation importance: the drop of the metric when each feature is shuffled, with one standard deviation."""
    shown = list(ranked[:MAX_IMPORTANCE_BARS])
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.3 * max(len(shown), 1)))
    ax.barh([r["feature"] for r in shown], [r["mean"] for r in shown], xerr=[r["std"] for r in shown], color="#4c72b0")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(f"drop of test {metric} when the feature is shuffled")
    return fig


def _grid(panels: int, columns: int, row_height: float) -> tuple[Figure, list[Any]]:
    """A figure of ``panels`` small plots, ``columns`` a row (at least one row); the axes to draw on, in order
    (the grid's unused cells are hidden)."""
    rows = max(1, math.ceil(panels / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(12, row_height * rows), squeeze=False)
    cells = list(axes.flat)
    for ax in cells[panels:]:
        ax.set_visible(False)
    return fig, cells[:panels]


def figure_effects(effects: Sequence[Mapping[str, Any]]) -> Figure:
    """Partial dependence of the model's output on each of the top features."""
    fig, axes = _grid(len(effects), columns=3, row_height=2.6)
    for ax, effect in zip(axes, effects, strict=False):
        if effect["kind"] == "numeric":
            ax.plot(effect["values"], effect["mean"], marker=".", color="#dd8452")
        else:
            ax.bar([str(v)[:10] for v in effect["values"]], effect["mean"], color="#dd8452")
            ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.set_title(effect["feature"], fontsize=9)
        ax.set_ylabel(effect["output"], fontsize=8)
    fig.tight_layout()
    return fig


def figure_shap(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Mean absolute SHAP value per feature (tree models)."""
    shown = list(rows[:MAX_IMPORTANCE_BARS])
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.3 * max(len(shown), 1)))
    ax.barh([r["feature"] for r in shown], [r["mean_abs_shap"] for r in shown], color="#55a868")
    ax.invert_yaxis()
    ax.set_xlabel("mean |SHAP value| on test rows")
    return fig


def _explanation_parts(explanations: Mapping[str, Any] | None) -> list[str]:
    if not explanations:
        return []
    ranked = explanations["permutation_importance"]
    if not ranked:
        return []
    repeats, baseline = ranked[0]["repeats"], _fmt(ranked[0]["baseline"])
    parts = [
        "<h2>What the model relies on (test set)</h2>",
        f"<p class='muted'>Permutation importance: each feature's column shuffled {repeats} times on "
        f"{explanations['rows']:,} test rows; the bar is how much test {_e(explanations['metric'])} drops "
        f"(from {baseline}). Near zero or negative: the model does not use it.</p>",
        _img(figure_importance(ranked, explanations["metric"])),
    ]
    if len(ranked) > MAX_IMPORTANCE_BARS:
        rest = ", ".join(f"{r['feature']} ({_fmt(r['mean'])})" for r in ranked[MAX_IMPORTANCE_BARS:])
        parts.append(f"<p class='muted'>Not drawn ({len(ranked) - MAX_IMPORTANCE_BARS}): {_e(rest)}</p>")
    if explanations.get("effects"):
        parts += [
            "<h3>Effects of the top features (partial dependence)</h3>",
            "<p class='muted'>The model's mean output when the feature is set to each value on every test row.</p>",
            _img(figure_effects(explanations["effects"])),
        ]
    if explanations.get("shap"):
        parts += ["<h3>SHAP values (tree model)</h3>", _img(figure_shap(explanations["shap"]))]
    return parts


def figure_features(reference: ReferenceProfile, order: Sequence[str] | None = None) -> Figure:
    """Histograms (numeric) and category frequencies (categorical) of the reference profile: the first
    :data:`MAX_FEATURE_PLOTS` features of ``order`` (default: the profile's order)."""
    names = [n for n in (order or reference.features) if n in reference.features][:MAX_FEATURE_PLOTS]
    fig, axes = _grid(len(names), columns=4, row_height=2.4)
    for ax, name in zip(axes, names, strict=False):
        profile = reference.features[name]
        if isinstance(profile, NumericProfile) and profile.bin_counts:
            edges = np.asarray(profile.bin_edges)
            ax.bar(edges[:-1], profile.bin_counts, width=np.diff(edges), align="edge", color="#4c72b0")
        elif isinstance(profile, CategoricalProfile):
            top = sorted(profile.frequencies.items(), key=lambda kv: -kv[1])[:8]
            ax.bar([k[:10] for k, _ in top], [v for _, v in top], color="#55a868")
            ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.set_title(f"{name} (missing {profile.missing_rate:.1%})", fontsize=9)
    fig.tight_layout()
    return fig


def render_report(inputs: ReportInputs) -> str:
    """The HTML page."""
    m = inputs.metrics
    task, metric = m["task"], m["primary_metric"]
    verdict = m["verdict"]
    badge = "go" if verdict["go"] else "nogo"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>driftline offline report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(m['target'])}: {_e(task)} model report</h1>",
        f"<p class='muted'>{_e(inputs.card['problem'].get('decision', ''))} — unit: "
        f"{_e(inputs.card['problem'].get('unit', ''))}</p>",
        f"<p><span class='badge {badge}'>{_e(verdict['decision'].upper())}</span> "
        f"{_e('; '.join(verdict['reasons']))}</p>",
        f"<p class='muted'>Rule: {_e(m['go_no_go_rule'])}</p>",
        "<h2>Test set (locked, used once)</h2>",
        _table(
            ["model", metric, "95% CI"],
            [
                [name, _fmt(est["value"]), f"[{_fmt(est['ci_low'])}, {_fmt(est['ci_high'])}]"]
                for name, est in m["test_models"].items()
            ],
        ),
        f"<p>Improvement of <b>{_e(m['chosen']['name'])}</b> over the baseline ({_e(m['baseline']['name'])}): "
        f"{_fmt(m['improvement']['value'])} [{_fmt(m['improvement']['ci_low'])}, "
        f"{_fmt(m['improvement']['ci_high'])}]. Test rows: {m['split']['test_rows']:,}; "
        f"sha256 {m['split']['test_sha256'][:16]}…</p>",
    ]
    if m.get("threshold"):
        t = m["threshold"]
        parts.append(
            f"<p>Decision threshold from the card's costs: {t['value']:.2f} (expected cost per row "
            f"{_fmt(t['expected_cost_validation'])} on validation, {_fmt(t['expected_cost_test'])} on test)."
            "</p>"
        )
    parts.append(
        _table(
            ["metric", "value"], [[k, _fmt(v)] for k, v in m["test"]["secondary"].items() if k != "confusion_matrix"]
        )
    )
    parts += [
        "<h2>Candidates (cross-validation)</h2>",
        f"<p class='muted'>{m['search']['rows']:,} training rows, {m['search']['folds']} folds; "
        f"hyperparameters searched on {m['search']['validation_rows']:,} validation rows.</p>",
        _img(figure_cv(m["candidates"], metric)),
        _table(
            ["candidate", "role", "params", "CV mean", "CV std"],
            [
                [c["name"], c["role"], _params(c["params"]), _fmt(c["cv_mean"]), _fmt(c["cv_std"])]
                for c in m["candidates"]
            ],
        ),
    ]
    chosen = inputs.outputs.get(m["chosen"]["name"])
    parts.append("<h2>Errors of the chosen model on the test set</h2>")
    if task == "regression" and chosen is not None:
        parts.append(_img(figure_residuals(inputs.y_test, chosen)))
    elif "confusion_matrix" in m["test"]["secondary"]:
        parts.append(_img(figure_confusion(m["test"]["secondary"]["confusion_matrix"], inputs.labels)))
    if task == "binary":
        scores = {name: out[:, 1] for name, out in inputs.outputs.items()}
        parts.append(_img(figure_roc_pr(inputs.y_test, scores)))
        if chosen is not None:
            t = m.get("threshold") or {}
            parts += [
                "<h3>Calibration and the cost of each threshold (test set)</h3>",
                _img(figure_calibration_and_cost(inputs.y_test, chosen[:, 1], t.get("costs"), t.get("value"))),
            ]
    error_name = "mae" if task == "regression" else "error_rate"
    if m["slices"]:
        worst = sorted(m["slices"], key=lambda s: -_finite(s[error_name]))[:MAX_SLICES_SHOWN]
        overall = m.get("slices_overall")
        rows = [
            [s["feature"], s["slice"], s["rows"], _fmt(s[metric]), _fmt(s[error_name]), _interval(s), _vs(s, overall)]
            for s in worst
        ]
        if overall is not None:
            rows.insert(0, ["all rows", "", overall["rows"], "", _fmt(overall[error_name]), _interval(overall), ""])
        parts += [
            "<h2>Error analysis by slice (out-of-fold, validation data)</h2>",
            "<p class='muted'>Each slice's error with its 95% interval; the dashed line and band are the error over "
            "all rows. A slice differs from the whole only where the intervals do not overlap.</p>",
            _img(figure_slices(m["slices"], error_name, overall)),
            _table(["feature", "slice", "rows", metric, error_name, "95% interval", "vs all rows"], rows),
        ]
    parts += _explanation_parts(m.get("explanations"))
    importance = (m.get("explanations") or {}).get("permutation_importance") or []
    order = [r["feature"] for r in importance] or list(inputs.reference.features)
    shown = order[:MAX_FEATURE_PLOTS]
    note = (
        f"all {len(order)} features"
        if len(order) <= MAX_FEATURE_PLOTS
        else f"the {len(shown)} most important of {len(order)} features; not drawn: {', '.join(order[len(shown) :])}"
    )
    parts += [
        "<h2>Feature distributions (reference profile of the training set)</h2>",
        f"<p class='muted'>{_e(note)}{', most important first' if importance else ''}.</p>",
        _img(figure_features(inputs.reference, order)),
        "<h2>Data</h2>",
        _table(["fact", "value"], [[k, v] for k, v in m["data"].items() if not isinstance(v, dict | list)]),
        "</body></html>",
    ]
    return "\n".join(parts)


def _interval(row: Mapping[str, Any]) -> str:
    if row.get("error_ci_low") is None:
        return "n/a"
    return f"[{_fmt(row['error_ci_low'])}, {_fmt(row['error_ci_high'])}]"


def _vs(row: Mapping[str, Any], overall: Mapping[str, Any] | None) -> str:
    """``higher`` / ``lower`` when the slice's interval and the overall one do not overlap, else ``same``."""
    if overall is None or row.get("error_ci_low") is None:
        return ""
    if row["error_ci_low"] > overall["error_ci_high"]:
        return "higher"
    if row["error_ci_high"] < overall["error_ci_low"]:
        return "lower"
    return "same"


def _img(fig: Figure) -> str:
    return f"<img src='{png_data_uri(fig)}'>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "default"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _finite(value: Any) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else 0.0


def _e(value: Any) -> str:
    return html.escape(str(value))
