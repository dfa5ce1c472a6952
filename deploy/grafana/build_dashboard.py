"""Build the driftline Grafana dashboard (``dashboards/driftline.json``) from a short list of panels.

Every query uses only metric names the code defines (``tests/deploy/test_dashboard.py`` checks it) and the
provisioned Prometheus data source. Edit the panels here, then run::

    python deploy/grafana/build_dashboard.py

Examples
--------
>>> board = dashboard()
>>> board["uid"], board["panels"][0]["type"], board["panels"][1]["datasource"]["uid"]
('driftline', 'row', 'driftline-prometheus')
>>> rate("driftline_events_scored_total", "model")
'sum by (model) (rate(driftline_events_scored_total{model=~"$model"}[$__rate_interval]))'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: uid of the data source in provisioning/datasources/prometheus.yml.
DATASOURCE = {"type": "prometheus", "uid": "driftline-prometheus"}
OUTPUT = Path(__file__).resolve().parent / "dashboards" / "driftline.json"
MODEL = '{model=~"$model"}'
WORKER_JOB = "driftline-worker"


def rate(metric: str, by: str, selector: str = MODEL) -> str:
    """Per-second rate of a counter summed over workers, by the given labels."""
    return f"sum by ({by}) (rate({metric}{selector}[$__rate_interval]))"


def quantile(q: float, metric: str, by: str = "") -> str:
    """A quantile of a histogram over every worker."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket[$__rate_interval])))"


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    """One panel: title, what it means and what to do (shown as its description), queries, unit and kind."""

    title: str
    description: str
    targets: list[Target]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, "green")])
    extra: dict[str, Any] = field(default_factory=dict)


ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Throughput and errors",
        [
            Panel(
                "Events scored / s",
                "Events the workers scored per second, by model. Falls to 0 while events keep "
                "arriving: look at Consumer lag and the worker logs.",
                [Target(rate("driftline_events_scored_total", "model"), "{{model}}")],
                unit="ops",
            ),
            Panel(
                "Dead-lettered / s",
                "Messages sent to the dead-letter topic, by stage and reason. A sustained rate: "
                "`driftline dlq inspect`, fix the cause, then `driftline dlq replay` (docs/RUNBOOK.md).",
                [Target(rate("driftline_dead_lettered_total", "stage, reason", ""), "{{stage}}: {{reason}}")],
                unit="ops",
            ),
            Panel(
                "Dead-letter ratio",
                "Dead-lettered / (scored + dead-lettered) over 5 minutes. Above a few percent: "
                "a producer or schema change; compare with deploy times.",
                [
                    Target(
                        "sum(rate(driftline_dead_lettered_total[5m])) / clamp_min(sum(rate("
                        "driftline_events_scored_total[5m])) + sum(rate(driftline_dead_lettered_total[5m])), 1e-9)"
                    )
                ],
                unit="percentunit",
                kind="stat",
                width=4,
                thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
            ),
            Panel(
                "Workers up",
                "Worker replicas Prometheus scrapes successfully (DNS discovery of the `worker` "
                "service). Fewer than you scaled to: `docker compose ps` and the worker logs.",
                [Target(f'sum(up{{job="{WORKER_JOB}"}})', instant=True)],
                kind="stat",
                width=4,
                thresholds=[(None, "red"), (1, "green")],
            ),
        ],
    ),
    (
        "Latency and load",
        [
            Panel(
                "Scoring latency",
                "Event produced -> prediction published, over all workers. p99 rising together "
                "with lag: add workers (up to the partition count) or raise DRIFTLINE_BATCH_SIZE.",
                [
                    Target(quantile(q, "driftline_scoring_latency_seconds"), f"p{round(q * 100)}")
                    for q in (0.5, 0.95, 0.99)
                ],
                unit="s",
            ),
            Panel(
                "Consumer lag",
                "Messages behind the end of the partitions, by topic (the latest report per "
                "partition). Growing steadily: workers cannot keep up, scale out; one partition only: a stuck "
                "worker, restart it.",
                [Target("sum by (topic) (max by (topic, partition) (driftline_consumer_lag))", "{{topic}}")],
            ),
            Panel(
                "Batch size",
                "Mean messages per processed batch, by stage. Always at DRIFTLINE_BATCH_SIZE: the "
                "workers are saturated, scale out. Mostly 1: light load.",
                [
                    Target(
                        "sum by (stage) (rate(driftline_batch_size_sum[$__rate_interval])) / sum by (stage) "
                        "(rate(driftline_batch_size_count[$__rate_interval]))",
                        "{{stage}}",
                    )
                ],
            ),
            Panel(
                "Back-pressure",
                "Join records waiting for Redis, per worker, and the sources that paused consumption (1 while "
                "paused). The scorer pauses while its join buffer is full, so nothing is dropped: a buffer that "
                "stays high with Redis errors means Redis is down or slow; fix Redis and the scorer resumes.",
                [
                    Target("max by (instance) (driftline_join_buffered)", "join buffer {{instance}}"),
                    Target("max by (stage) (driftline_consumption_paused)", "paused {{stage}}"),
                ],
                width=24,
                height=6,
            ),
        ],
    ),
    (
        "Real-time HTTP (V2 inference API)",
        [
            Panel(
                "HTTP requests / s",
                "V2 API requests by route and status over all workers, with rows refused (400: the reason a "
                "dead letter would carry, by stage and reason) and predictions whose copy on the predictions topic "
                "Kafka did not acknowledge. 4xx rising: a client sends what the model's schema refuses; 5xx or "
                "publish failures: the worker log.",
                [
                    Target(rate("driftline_http_requests_total", "route, status", ""), "{{route}} {{status}}"),
                    Target(rate("driftline_http_rejected_rows_total", "stage, reason", ""), "refused {{reason}}"),
                    Target("sum(rate(driftline_http_publish_failures_total[$__rate_interval]))", "not published"),
                ],
                width=12,
            ),
            Panel(
                "HTTP latency",
                "Request received -> answer, by route, over all workers (the goal: p99 under 10 ms for single "
                "rows). Rising with the Kafka path's lag: the worker is saturated, add workers.",
                [
                    Target(quantile(q, "driftline_http_request_seconds", "route"), f"p{round(q * 100)} {{{{route}}}}")
                    for q in (0.5, 0.99)
                ],
                unit="s",
                width=12,
            ),
        ],
    ),
    (
        "Models",
        [
            Panel(
                "Model version in use",
                "Version each worker serves, by model and role. Replicas that disagree "
                "for more than a few seconds after a promote or rollback: check Redis errors.",
                [
                    Target(
                        f"max by (model, role, instance) (driftline_model_version{MODEL})",
                        "{{model}} {{role}} {{instance}}",
                    )
                ],
                unit="none",
            ),
            Panel(
                "Model reloads",
                "Hot reloads of a new current version (promote, rollback, learner snapshot) in 5 minutes, by model.",
                [Target(f"sum by (model) (increase(driftline_model_reloads_total{MODEL}[5m]))", "{{model}}")],
            ),
            Panel(
                "Model integrity failures",
                "Blobs refused by SHA-256/HMAC verification in the selected range. Any: "
                "a blob signed with another key or tampered with; the worker keeps its last good version. "
                "Investigate before promoting anything.",
                [Target(f"sum(increase(driftline_model_integrity_failures_total{MODEL}[$__range]))", instant=True)],
                kind="stat",
                thresholds=[(None, "green"), (1, "red")],
            ),
        ],
    ),
    (
        "Learning, review and Redis",
        [
            Panel(
                "Labels learned / s",
                "Delayed labels joined to their events and learned, by model. 0 while labels "
                "are published: labels arrive after DRIFTLINE_LABEL_TTL_SECONDS or with unknown event ids. "
                "Step failures: a step after learning (outcome monitor, shadow challenger) raised; the labels stay "
                "learned, the worker log names the exception.",
                [
                    Target(rate("driftline_labels_learned_total", "model"), "{{model}}"),
                    Target(rate("driftline_step_failures_total", "model, step"), "{{model}} failed {{step}}"),
                ],
                unit="ops",
            ),
            Panel(
                "Challenger in shadow / s",
                "Events the challenger scored beside the champion, by model; its paired "
                "loss test: `driftline models compare NAME`. 0 while a challenger is set: check Model integrity.",
                [Target(rate("driftline_challenger_scored_total", "model"), "{{model}}")],
                unit="ops",
            ),
            Panel(
                "Review requests / s",
                "Low-confidence predictions sent to the review topic, by model. A jump: "
                "the model is unsure about new data, often the first sign of drift.",
                [Target(rate("driftline_review_requests_total", "model"), "{{model}}")],
                unit="ops",
            ),
            Panel(
                "Redis errors / s",
                "Registry operations that failed and were retried, by operation. Scoring "
                "goes on with the loaded models; fix Redis before promoting or rolling back.",
                [Target(rate("driftline_redis_errors_total", "op", ""), "{{op}}")],
                unit="ops",
            ),
        ],
    ),
    (
        "Monitoring: performance and labels",
        [
            Panel(
                "Prequential metric",
                "The online learner's metric on each joined label, computed from what was "
                "served (cumulative and `_rolling`). A falling rolling metric with concept-drift alerts: the model "
                "is adapting or needs a retrain (`driftline offline retrain`).",
                [Target(f"max by (model, metric) (driftline_prequential_metric{MODEL})", "{{model}} {{metric}}")],
            ),
            Panel(
                "Realised vs estimated metric",
                "Realised metric over the last labels next to the label-free "
                "estimate (CBPE) from predicted probabilities. The estimate moves first when labels are late; a "
                "gap between them means the model's confidence is no longer calibrated.",
                [
                    Target(f"max by (model, metric) (driftline_rolling_metric{MODEL})", "realised {{metric}}"),
                    Target(f"max by (model, metric) (driftline_estimated_metric{MODEL})", "estimated {{metric}}"),
                ],
            ),
            Panel(
                "Label lag and coverage",
                "Median delay from event to joined label, and coverage: labels learned / events "
                "scored by the whole fleet over the last hour (about 1 in steady state; it lags a change of rate by "
                "the label delay). Falling well below 1: labels stopped, or arrive after the TTL (dead-letter "
                "LateLabel).",
                [
                    Target(f"max by (model) (driftline_label_lag_seconds{MODEL})", "lag {{model}}"),
                    Target(
                        f"sum by (model) (increase(driftline_labels_learned_total{MODEL}[1h])) / clamp_min(sum by "
                        f"(model) (increase(driftline_events_scored_total{MODEL}[1h])), 1)",
                        "coverage {{model}}",
                    ),
                ],
            ),
            Panel(
                "Exactly-once window",
                "Learned label ids the learner remembers to refuse duplicates, and ids forgotten before "
                "DRIFTLINE_EXACTLY_ONCE_WINDOW_SECONDS of label time had passed (DRIFTLINE_MAX_LEARNED_IDS reached). "
                "Forgotten early > 0: a duplicate label that late would be learned again; raise the cap.",
                [
                    Target(f"max by (model) (driftline_learned_ids{MODEL})", "remembered {{model}}"),
                    Target(rate("driftline_learned_ids_forgotten_early_total", "model"), "forgotten early/s {{model}}"),
                ],
            ),
        ],
    ),
    (
        "Monitoring: drift and alerts",
        [
            Panel(
                "Alerts / hour",
                "Typed alerts raised, by kind and severity (deduplicated across workers). Read "
                "them with `driftline alerts tail`; each names the detector, feature and the event that fired it.",
                [Target("sum by (kind, severity) (increase(driftline_alerts_total[1h]))", "{{kind}} {{severity}}")],
            ),
            Panel(
                "Monitor feed: order",
                "Events of each model's one ordered monitor since its checkpoint began: buffered (waiting for the "
                "watermark: a scorer behind), out_of_order (watched after a later event), forced (released by the "
                "buffer's cap before the watermark) and duplicates (re-read after a rebalance, dropped). Rising "
                "out_of_order or forced: windows mix events from both sides of a change; look for a stuck scorer.",
                [Target(f"max by (model, state) (driftline_monitor_feed_events{MODEL})", "{{state}} {{model}}")],
            ),
            Panel(
                "Drift score by detector",
                "Evidence relative to each detector's budget-corrected threshold (1 = "
                "at the threshold). Which feature and which test moved tells data drift from prediction drift.",
                [
                    Target(
                        f"max by (kind, feature, detector) (driftline_drift_score{MODEL})",
                        "{{kind}} {{feature}} {{detector}}",
                    )
                ],
            ),
            Panel(
                "Drift statistic and p-value",
                "Raw statistics (PSI, KS, chi-square, Wasserstein, ...) and "
                "p-values of the windowed tests, for a closer look at one feature.",
                [
                    Target(
                        f"max by (feature, detector) (driftline_drift_statistic{MODEL})", "{{feature}} {{detector}}"
                    ),
                    Target(
                        f"min by (feature, detector) (driftline_drift_p_value{MODEL})", "p {{feature}} {{detector}}"
                    ),
                    Target(
                        f"max by (feature, detector) (driftline_drift_threshold{MODEL})",
                        "threshold {{feature}} {{detector}}",
                    ),
                ],
            ),
            Panel(
                "Data quality",
                "Rolling missing, out-of-range, unseen-category and schema-violation rates next to "
                "the reference rates. A check far above its reference: fix the producer, then replay the dead "
                "letters.",
                [
                    Target(f"max by (feature, check) (driftline_quality_rate{MODEL})", "{{feature}} {{check}}"),
                    Target(
                        f"max by (feature, check) (driftline_quality_reference_rate{MODEL})",
                        "reference {{feature}} {{check}}",
                    ),
                ],
                unit="percentunit",
            ),
            Panel(
                "Monitor health",
                "Events the scoring monitor and labelled outcomes the learning monitor observed (label stage), "
                "the per-test level after the false-alarm budget, alerts suppressed as duplicates, local dedup "
                "fallbacks while Redis was down, and webhook deliveries.",
                [
                    Target(f"max by (model, stage) (driftline_monitor_events{MODEL})", "{{stage}} events {{model}}"),
                    Target(f"max by (model, stage) (driftline_false_alarm_alpha{MODEL})", "{{stage}} alpha {{model}}"),
                    Target(rate("driftline_alerts_deduplicated_total", "model"), "deduplicated {{model}}"),
                    Target(rate("driftline_alert_dedup_fallbacks_total", "model"), "dedup fallback {{model}}"),
                    Target(rate("driftline_webhook_deliveries_total", "outcome", ""), "webhook {{outcome}}"),
                ],
            ),
        ],
    ),
]


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for value, color in panel.thresholds]
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": t.expr,
                "legendFormat": t.legend,
                "instant": t.instant,
                "range": not t.instant,
            }
            for i, t in enumerate(panel.targets)
        ],
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
    }
    if panel.kind == "timeseries":
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        body["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value",
        }
    body.update(panel.extra)
    return body


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (rows laid out top to bottom, panels left to right)."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, row in ROWS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        next_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": "driftline",
        "title": "driftline",
        "description": "Streaming scoring, dead letters, latency, lag and models of every driftline worker. "
        "What each panel means and what to do: docs/RUNBOOK.md, 'Read the dashboard'.",
        "tags": ["driftline"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "model",
                    "label": "model",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(driftline_events_scored_total, model)", "refId": "model"},
                    "definition": "label_values(driftline_events_scored_total, model)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1,
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    """The dashboard JSON exactly as stored in ``dashboards/driftline.json``."""
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
