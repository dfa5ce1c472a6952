"""`driftline bench offline`: wall time and peak memory of `driftline offline train` with the default candidates
on a synthetic binary table (numeric and categorical features, 2% missing values, written as Parquet).

The training runs in a child process (``python -m driftline offline train``), so its peak resident memory is
measured alone (``getrusage(RUSAGE_CHILDREN).ru_maxrss``), without the data generation.

Examples
--------
>>> df = synthetic_table(200, 6, seed=1)
>>> df.shape, sorted(df["label"].unique().tolist())
((200, 7), [0, 1])
>>> sorted(df.columns)[:3], int(df["c3"].isna().sum()) > 0
(['c3', 'label', 'x0'], True)
"""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.embedded.stack import CHILD_PYTHON
from driftline.offline.framing import card_to_toml, draft_card

#: Every fourth feature is categorical.
CATEGORICAL_EVERY = 4
MISSING_RATE = 0.02


def synthetic_table(rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    """``features`` columns (every fourth categorical with 5 levels) and a binary ``label`` that depends on
    some of them non-linearly; about 2% of the values of each feature are missing."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    logit = np.zeros(rows)
    for j in range(features):
        if j % CATEGORICAL_EVERY == CATEGORICAL_EVERY - 1:
            codes = rng.integers(0, 5, rows)
            logit += np.array([-0.8, -0.2, 0.0, 0.3, 0.9])[codes] * (1 if j % 2 else 0.5)
            values: Any = np.array(["a", "b", "c", "d", "e"], dtype=object)[codes]
            name = f"c{j}"
        else:
            values = rng.normal(size=rows)
            logit += values * (1.0 / (1 + j)) + (0.5 * np.sin(2 * values) if j % 3 == 0 else 0.0)
            name = f"x{j}"
        missing = rng.random(rows) < MISSING_RATE
        values = pd.Series(values).mask(missing)
        columns[name] = values
    columns["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(columns)


def run(rows: int, features: int) -> dict[str, Any]:
    """Generate the table, train on it in a child process, and report time, memory and the headline scores."""
    with tempfile.TemporaryDirectory(prefix="driftline-bench-offline-") as tmp:
        root = Path(tmp)
        data = root / "history.parquet"
        generated = time.perf_counter()
        df = synthetic_table(rows, features)
        df.to_parquet(data, index=False)
        card = draft_card(df, "label", "bench: synthetic binary decision")
        (root / "framing.toml").write_text(card_to_toml(card))
        generate_seconds = time.perf_counter() - generated
        del df
        command = [
            *CHILD_PYTHON,
            "-m",
            "driftline",
            "offline",
            "train",
            "--data",
            str(data),
            "--framing",
            str(root / "framing.toml"),
            "--out",
            str(root / "out"),
            "--json",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"offline train failed: {done.stderr.strip().splitlines()[-1:]}")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        metrics = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "bench": "offline",
        "rows": rows,
        "features": features,
        "candidates": [c["name"] for c in metrics["candidates"]],
        "chosen": metrics["chosen"]["name"],
        "search_rows": metrics["search"]["rows"],
        "river_replayed_rows": metrics["online_model"]["replayed_rows"],
        "test_rows": metrics["test"]["rows"],
        "metric": metrics["primary_metric"],
        "test_value": round(metrics["test"]["value"], 4),
        "test_ci": [round(metrics["test"]["ci_low"], 4), round(metrics["test"]["ci_high"], 4)],
        "verdict": metrics["verdict"]["decision"],
        "train_wall_seconds": round(wall, 1),
        "train_peak_rss_mib": round(peak_kib / 1024, 1),
        "steps_seconds": metrics["timings_seconds"],
        "data_generation_seconds": round(generate_seconds, 1),
        "cpu_count": _cpus(),
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
