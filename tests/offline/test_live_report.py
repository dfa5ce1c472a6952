"""The live report page: self-contained (no external resource), a plot per feature, names escaped."""

from __future__ import annotations

import re

from driftline.monitoring.live_view import report_data
from driftline.offline.live_report import render_live_report
from tests.monitoring.test_live_view import run_monitors


def test_the_page_has_a_plot_per_feature_every_alert_and_loads_nothing_from_outside() -> None:
    scoring, learning, alerts = run_monitors()
    data = report_data("m", scoring, learning, alerts, {"served": 3, "challenger": None})
    data["features"][0]["name"] = "<script>alert(1)</script>"
    page = render_live_report(data)
    images = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,", page)
    assert len(images) == len(data["features"]) + 5  # + alerts, prediction, performance, CBPE, data quality
    assert "CBPE: estimated from the scores alone" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)
    assert all(a.event_id in page for a in alerts if a.event_id)
    assert "challenger none" in page and "served version 3" in page
