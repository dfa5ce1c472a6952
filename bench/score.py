"""`driftline bench score`: wall time and peak memory of `driftline score` on a large CSV, and on a file a tenth
of its size, in one run: memory bounded by the chunk means the two peaks are about equal.

Both runs are the public command in a child process (``python -m driftline score --json``) against a real
redis-server (the embedded one) holding the bootstrap model and a reference profile; each child's peak resident
memory is its own (``os.wait4``). The CSV holds Agrawal-like rows (the bootstrap model's features) with one row in
a thousand carrying a text where a number belongs, so the side file is written too.

Examples
--------
>>> frame = synthetic_rows(5, start=10, seed=1)
>>> frame["event_id"].tolist()[:2], len(frame.columns)
(['ev-00000010', 'ev-00000011'], 10)
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from driftline.bench.offline import _cpus
from driftline.embedded.stack import CHILD_PYTHON, REDIS_USER, start_redis
from driftline.models.bootstrap import bootstrap_model
from driftline.models.reference import ReferenceProfile
from driftline.models.registry import ModelRegistry

BAD_EVERY = 1000
HMAC_KEY = "bench-score"
WRITE_CHUNK = 200_000


def synthetic_rows(n: int, start: int = 0, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of the bootstrap model's nine numeric features (ranges of River's Agrawal generator)."""
    rng = np.random.default_rng(seed + start)
    commission = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(10_000, 75_000, n))
    return pd.DataFrame(
        {
            "event_id": [f"ev-{i:08d}" for i in range(start, start + n)],
            "salary": rng.uniform(20_000, 150_000, n).round(2),
            "commission": commission.round(2),
            "age": rng.integers(20, 81, n).astype(float),
            "elevel": rng.integers(0, 5, n).astype(float),
            "car": rng.integers(1, 21, n).astype(float),
            "zipcode": rng.integers(0, 9, n).astype(float),
            "hvalue": rng.uniform(50_000, 900_000, n).round(2),
            "hyears": rng.integers(1, 31, n).astype(float),
            "loan": rng.uniform(0, 500_000, n).round(2),
        }
    )


def write_csv(path: Path, rows: int) -> None:
    """``rows`` synthetic rows, written a slice at a time; every :data:`BAD_EVERY`-th row has a text loan."""
    for start in range(0, rows, WRITE_CHUNK):
        frame = synthetic_rows(min(WRITE_CHUNK, rows - start), start).astype({"loan": object})
        bad = (np.arange(start, start + len(frame)) % BAD_EVERY) == BAD_EVERY - 1
        frame.loc[bad, "loan"] = "n/a"
        frame.to_csv(path, mode="a" if start else "w", header=start == 0, index=False)


def _score(data: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """One `driftline score` child: its JSON report, wall time and own peak RSS (KiB)."""
    command = [*CHILD_PYTHON, "-m", "driftline", "score", "--data", str(data), "--out", str(out), "--json"]
    logs = out.with_suffix(".log")
    started = time.perf_counter()
    with out.with_suffix(".json").open("w") as stdout, logs.open("w") as stderr:
        child = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # this child's rusage alone (Popen.wait would not give it)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"driftline score failed: {logs.read_text().strip().splitlines()[-1:]}")
    report = json.loads(out.with_suffix(".json").read_text())
    return {"report": report, "wall": wall, "peak_kib": usage.ru_maxrss}


def run(rows: int) -> dict[str, Any]:
    """Score a ``rows``-row CSV and a ``rows // 10``-row one; report time, rows/s, peak RSS of each."""
    with tempfile.TemporaryDirectory(prefix="driftline-bench-score-") as tmp:
        root = Path(tmp)
        password = secrets.token_urlsafe(16)
        server = start_redis(root, password)
        url = f"redis://{REDIS_USER}:{password}@127.0.0.1:{server.port}/0"
        try:
            client = redis.Redis.from_url(url)
            model, schema, task = bootstrap_model()
            reference = ReferenceProfile.from_rows(
                synthetic_rows(5000, seed=99).drop(columns="event_id").to_dict("records")
            )
            ModelRegistry(client, HMAC_KEY.encode()).register(
                "default", model, schema=schema, task=task, reference=reference, note="bench score"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
            env.update(DRIFTLINE_REDIS_URL=url, DRIFTLINE_MODEL_HMAC_KEY=HMAC_KEY)
            figures: dict[str, Any] = {"bench": "score", "cpu_count": _cpus()}
            for label, n in (("small", max(1, rows // 10)), ("large", rows)):
                data = root / f"{label}.csv"
                write_csv(data, n)
                done = _score(data, root / f"{label}.parquet", env)
                report = done["report"]
                figures[label] = {
                    "rows": n,
                    "csv_mib": round(data.stat().st_size / 2**20, 1),
                    "scored": report["scored"],
                    "rejected": report["rejected"],
                    "wall_seconds": round(done["wall"], 1),
                    "scoring_seconds": round(report["seconds"], 1),
                    "rows_per_second": round(n / report["seconds"]),
                    "peak_rss_mib": round(done["peak_kib"] / 1024, 1),
                    "drifted": report["drifted"],
                }
                data.unlink()
        finally:
            server.stop()
    figures["peak_rss_ratio_large_to_small"] = round(
        figures["large"]["peak_rss_mib"] / figures["small"]["peak_rss_mib"], 2
    )
    return figures
