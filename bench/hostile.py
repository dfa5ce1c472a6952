"""Poison pills at scale through the public path: ``driftline demo`` (embedded stack, a real worker process) on a
stream where a fraction of the events and of the labels carry one hostile value each, every kind in turn.

Valid events must all be scored exactly once, hostile ones all dead-lettered, valid labels all learned, hostile
labels all dead-lettered, the worker must not crash, and its RSS and ``/metrics`` series must stay bounded (sampled
every half second from ``/proc`` and the worker's ``/metrics`` while the demo runs).

While a backlog is in flight the worker's RSS follows the backlog (fetched batches, pending produce requests, the
merge's buffers), and a Python process keeps the memory it reached. With ``rounds`` the stream goes in that many
parts, each published once the one before came out, and RSS is also read after each part, with nothing in flight:
bounded state shows as the same RSS after every part, growth per message as a rise from part to part.

>>> events, labels, hostile = messages(40, fraction=0.25)
>>> len(events), hostile["events"], len(labels), hostile["labels"]
(40, 10, 40, 10)
>>> sorted(hostile["event_kinds"])[:3]
['feature_400_digits', 'model_colon', 'model_space']
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from driftline.models.bootstrap import synthetic_stream

YEAR_9226_MS = 228_455_942_400_000
DAY_MS = 86_400_000


def _hostile_event(kind: str, event: dict[str, Any]) -> bytes:
    """``event`` with one hostile value of ``kind`` (each refused by an explicit check)."""
    e = json.loads(json.dumps(event))
    features = e["features"]
    changes: dict[str, Any] = {
        "model_space": {"model": "bad name"},
        "model_colon": {"model": "a:b"},
        "model_unicode": {"model": "modèle"},
        "model_too_long": {"model": "m" * 129},
        "ts_1e300": {"ts": 1e300},
        "ts_10e25": {"ts": 10**25},
        "ts_year_9226": {"ts": YEAR_9226_MS},
        "ts_two_days_ahead": {"ts": e["ts"] + 2 * DAY_MS},
        "ts_negative": {"ts": -1},
        "feature_400_digits": {"features": {**features, "salary": 10**400}},
        "feature_nested": {"features": {**features, "age": {"a": 1}}},
        "feature_wrong_type": {"features": {**features, "age": "forty"}},
        "event_id_long": {"event_id": "x" * 300},
        "event_id_empty": {"event_id": ""},
        "unknown_model": {"model": "no-such-model"},
    }
    if kind == "not_json":
        return b'{"event_id": "' + e["event_id"].encode() + b'", "ts": '
    if kind == "nan_token":
        return json.dumps(e).replace('"features": {', '"features": {"nan_feature": NaN, ', 1).encode()
    return json.dumps({**e, **changes[kind]}).encode()


EVENT_KINDS = (
    "model_space",
    "model_colon",
    "model_unicode",
    "model_too_long",
    "ts_1e300",
    "ts_10e25",
    "ts_year_9226",
    "ts_two_days_ahead",
    "ts_negative",
    "feature_400_digits",
    "feature_nested",
    "feature_wrong_type",
    "event_id_long",
    "event_id_empty",
    "unknown_model",
    "not_json",
    "nan_token",
)
LABEL_KINDS = ("model_space", "ts_year_9226", "label_400_digits", "label_nested", "label_null", "ts_1e300")


def _hostile_label(kind: str, label: dict[str, Any]) -> bytes:
    changes: dict[str, Any] = {
        "model_space": {"model": "bad name"},
        "ts_year_9226": {"ts": YEAR_9226_MS},
        "label_400_digits": {"label": 10**400},
        "label_nested": {"label": [True]},
        "label_null": {"label": None},
        "ts_1e300": {"ts": 1e300},
    }
    return json.dumps({**label, **changes[kind]}).encode()


def messages(n: int, fraction: float = 0.1, seed: int = 7) -> tuple[list[bytes], list[bytes], dict[str, Any]]:
    """``n`` events and ``n`` labels, of which every ``1/fraction``-th is hostile (kinds in turn); the valid ones
    are River's Agrawal stream with its labels. Returns events, labels and what was made hostile."""
    every = max(1, round(1 / fraction))
    valid_n = n - n // every
    pairs = list(synthetic_stream(valid_n, drift_at=valid_n, seed=seed))
    events: list[bytes] = []
    labels: list[bytes] = []
    event_kinds: dict[str, int] = {}
    label_kinds: dict[str, int] = {}
    valid = iter(pairs)
    for i in range(n):
        if i % every == every - 1:
            kind = EVENT_KINDS[(i // every) % len(EVENT_KINDS)]
            template = {**pairs[i % len(pairs)][0], "event_id": f"hostile-{i}"}
            events.append(_hostile_event(kind, template))
            event_kinds[kind] = event_kinds.get(kind, 0) + 1
            source, y = pairs[i % len(pairs)]
            lkind = LABEL_KINDS[(i // every) % len(LABEL_KINDS)]
            labels.append(_hostile_label(lkind, {"event_id": source["event_id"], "label": y, "ts": source["ts"]}))
            label_kinds[lkind] = label_kinds.get(lkind, 0) + 1
        else:
            event, y = next(valid)
            events.append(json.dumps(event).encode())
            labels.append(json.dumps({"event_id": event["event_id"], "label": y, "ts": event["ts"]}).encode())
    hostile = {
        "events": sum(event_kinds.values()),
        "labels": sum(label_kinds.values()),
        "event_kinds": event_kinds,
        "label_kinds": label_kinds,
    }
    return events, labels, hostile


class _Sampler:
    """Reads the worker's pid and /metrics URL from the demo's console, then samples its RSS and series count."""

    WORKER = re.compile(r"worker pid (\d+), metrics (\S+/metrics)")

    def __init__(self) -> None:
        self.text = io.StringIO()
        self.samples: list[tuple[float, float, int]] = []  # (seconds, RSS MiB, /metrics series)
        self.parts: list[tuple[int, float]] = []  # per part drained: (samples taken by then, RSS MiB)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def write(self, data: str) -> int:
        sys.stderr.write(data)
        return self.text.write(data)

    def flush(self) -> None:
        sys.stderr.flush()

    def _worker(self) -> tuple[int, str] | None:
        found = self.WORKER.search(self.text.getvalue())
        return (int(found.group(1)), found.group(2)) if found else None

    def _run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(0.5):
            worker = self._worker()
            if worker is None:
                continue
            try:
                rss = _rss_mib(worker[0])
                with urllib.request.urlopen(worker[1], timeout=2) as response:  # noqa: S310 - the worker's loopback
                    series = sum(1 for line in response.read().decode().splitlines() if line and line[0] != "#")
            except (OSError, AttributeError):
                continue
            self.samples.append((round(time.monotonic() - start, 1), round(rss, 1), series))

    def drained(self, part: int) -> None:
        """Part ``part`` of the stream came out: the worker's RSS now, and the highest sampled during the part."""
        worker = self._worker()
        if worker is not None:
            self.parts.append((len(self.samples), round(_rss_mib(worker[0]), 1)))

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        quarters = [self.samples[min(len(self.samples) - 1, int(len(self.samples) * q))] for q in (0.25, 0.5, 0.75)]
        last = self.samples[-1]
        bounds = [0, *(end for end, _ in self.parts)]
        return {
            "samples": len(self.samples),
            "rss_mib_at_25_50_75_100pct": [s[1] for s in quarters] + [last[1]],
            "rss_mib_max": max(s[1] for s in self.samples),
            "rss_mib_drained_after_each_part": [rss for _, rss in self.parts],
            "rss_mib_max_in_each_part": [
                max((s[1] for s in self.samples[a:b]), default=None) for a, b in itertools.pairwise(bounds)
            ],
            "metrics_series_at_25_50_75_100pct": [s[2] for s in quarters] + [last[2]],
        }


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def run(
    events: int = 100_000, fraction: float = 0.1, label_delay: int = 500, timeout: float = 1200.0, rounds: int = 1
) -> dict:
    """Write the stream to files, run ``driftline demo --events FILE --labels FILE`` on them (in ``rounds`` parts,
    each published once the one before came out), check every count."""
    from rich.console import Console

    from driftline.embedded.demo import run_demo

    event_lines, label_lines, hostile = messages(events, fraction)
    sampler = _Sampler()
    with tempfile.TemporaryDirectory() as directory:
        events_path, labels_path = Path(directory) / "events.jsonl", Path(directory) / "labels.jsonl"
        events_path.write_bytes(b"\n".join(event_lines) + b"\n")
        labels_path.write_bytes(b"\n".join(label_lines) + b"\n")
        sampler.thread.start()
        try:
            summary = asyncio.run(
                run_demo(
                    events_path,
                    labels_path,
                    label_delay,
                    events,
                    timeout,
                    Console(file=sampler),
                    "binary",
                    rounds=rounds,
                    on_drained=sampler.drained,
                )
            )
        finally:
            sampler.stop.set()
            sampler.thread.join()
    valid_events, valid_labels = events - hostile["events"], len(label_lines) - hostile["labels"]
    return {
        "events": events,
        "rounds": rounds,
        "hostile_events": hostile["events"],
        "hostile_event_kinds": len(hostile["event_kinds"]),
        "valid_scored_pct": round(100 * summary["scored"] / valid_events, 3),
        "duplicate_predictions": summary["duplicate_predictions"],
        "hostile_dead_lettered_pct": round(100 * summary["dead_lettered"] / hostile["events"], 3),
        "labels": len(label_lines),
        "hostile_labels": hostile["labels"],
        "valid_labels_learned_pct": round(100 * summary["learned"] / valid_labels, 3),
        "hostile_labels_dead_lettered_pct": round(100 * summary["labels_dead_lettered"] / hostile["labels"], 3),
        "events_per_second": summary["eps"],
        "worker": sampler.summary(),
    }
