"""The scoring monitor's CBPE estimate depends on the events in order, not on when the learner's calibrator reaches
the worker: the same stream gives the same alerts whether the calibrator is fitted and the reload check runs early or
late against the monitor's progress (real broker and Redis, the worker's own learner, ordered monitor and reload
check)."""

from __future__ import annotations

import asyncio
import gc

import numpy as np
import pytest

from driftline.contract.records import Label
from driftline.contract.settings import Settings
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.feature_columns import prepare_columns
from driftline.models.registry import ModelRegistry
from driftline.monitoring.cbpe import SUMMARY_FIELD, Calibrator
from driftline.monitoring.monitor import Monitor
from driftline.streams.app import Worker
from driftline.streams.feed_merge import Released, Run
from driftline.streams.learning_stage import JoinRecord
from driftline.streams.model_cache import ModelCache
from driftline.streams.ordered_monitor import OrderedMonitors

pytestmark = pytest.mark.integration

CHUNK = 500
CHUNKS = 24
#: The stream's events from this chunk on are scored by version 2, the first the learner registers after fitting
#: its calibrator.
V2_FROM = 4
#: The model's confidence falls from this chunk on (what the CBPE estimate must notice, once).
DROP_FROM = 12


def scores(rng: np.random.Generator) -> np.ndarray:
    """Positive-class scores of the stream: confident, then much less so from ``DROP_FROM``."""
    high = rng.uniform(0.8, 1.0, DROP_FROM * CHUNK)
    low = rng.uniform(0.5, 0.7, (CHUNKS - DROP_FROM) * CHUNK)
    return np.concatenate([high, low])


async def learn_and_snapshot(worker: Worker, name: str, rng: np.random.Generator, ts: int) -> None:
    """The learner's own path: 2,000 labelled outcomes of version 1 (its monitor fits the CBPE calibrator on
    them), then the snapshot that registers version 2."""
    state = await worker.learning.store.load(name)
    assert state is not None and state.base_version == 1
    for batch in range(2):
        learned = []
        for i in range(1000):
            s = float(rng.uniform(0.5, 1.0))
            join = JoinRecord({"salary": 50_000.0}, True, {"False": 1 - s, "True": s}, s, 1, 10**13)
            label = Label(event_id=f"l{batch}-{i}", label=bool(rng.random() < s**3), ts=ts + batch * 1000 + i)
            learned.append((label, join, label.label))
        labels, joins, targets = (list(column) for column in zip(*learned, strict=True))
        await worker.learning._observe(state, labels, joins, targets, [True] * len(learned))
    assert worker.learning.watch.monitors[name].calibrator is not None, "the learning monitor fitted one"
    await worker.learning.store.snapshot(state)
    assert state.base_version == 2


async def scenario(
    settings: Settings, name: str, learn_at: int, reload_at: int
) -> tuple[list[tuple], tuple[int | None, bool]]:
    """The alerts of the scoring monitor of ``name`` over the stream, the learner fitting and registering before
    chunk ``learn_at`` (never after the first event version 2 scored) and the reload check running before chunk
    ``reload_at``; and the version whose calibrator the monitor ends with, and whether it is the learner's."""
    worker = Worker(settings.model_copy(update={"model_name": name}), settings.broker_url, settings.redis_url)
    events = [e for e, _ in synthetic_stream(CHUNKS * CHUNK, drift_at=CHUNKS * CHUNK, seed=3)]
    ts = [int(e["ts"]) for e in events]
    columns, errors = prepare_columns(worker_schema(worker, name), [e["features"] for e in events])
    assert not errors
    s = scores(np.random.default_rng(5))
    fired: list[tuple] = []
    await worker.start()
    try:
        monitor = await worker.monitoring._monitor(name)
        assert monitor is not None
        for chunk in range(CHUNKS):
            if chunk == learn_at:
                await learn_and_snapshot(worker, name, np.random.default_rng(11), ts[0])
            if chunk == reload_at:
                await worker.reload_check()
            part = slice(chunk * CHUNK, (chunk + 1) * CHUNK)
            run = Run(
                2 if chunk >= V2_FROM else 1,
                [e["event_id"] for e in events[part]],
                ts[part],
                columns.take(range(part.start, part.stop)),
                [bool(v >= 0.5) for v in s[part]],
                [{False: 1 - float(v), True: float(v)} for v in s[part]],
            )
            alerts = await worker.monitoring._observe(monitor, Released([run]))
            fired += [(a.kind, a.detector, a.feature, a.event_id, a.statistic, a.threshold) for a in alerts]
        fitted = worker.learning.watch.monitors[name].calibrator
        applied = (getattr(monitor, "calibration_version", None), fitted is not None and monitor.calibrator == fitted)
    finally:
        await worker.stop()
        gc.unfreeze()  # start() froze what it loaded: the rest of the session must not keep it
    return fired, applied


def worker_schema(worker: Worker, name: str):  # noqa: ANN201 - the registry's FeatureSchema
    from driftline.streams.app import ensure_default_model  # noqa: PLC0415

    ensure_default_model(worker.registry, name)
    return worker.registry.get(name, 1).feature_schema()


def test_the_cbpe_alerts_do_not_depend_on_when_the_calibrator_reaches_the_scoring_monitor(settings, redis_client):
    """Before, the scoring monitor took the calibrator on the worker's reload check (a 1 s timer), and the first
    one learnt the estimate's reference again there: wherever the monitor happened to be in the stream. Now the
    calibrator comes with the version the learner registers after fitting it, and applies from that version's
    first event in the ordered stream."""
    moments = [(0, 0), (0, 17), (2, 9), (V2_FROM, V2_FROM + 1), (V2_FROM, 0)]
    results = [asyncio.run(scenario(settings, f"m{i}", *at)) for i, at in enumerate(moments)]
    performance = [a for a in results[0][0] if a[0] == "performance"]
    assert len(performance) == 1, results[0][0]  # the drop, found once
    assert int(performance[0][3].rsplit("-", 1)[1]) >= DROP_FROM * CHUNK
    for at, (fired, _) in zip(moments[1:], results[1:], strict=True):
        assert fired == results[0][0], f"learner at chunk {at[0]}, reload check at chunk {at[1]}"
    assert [applied for _, applied in results] == [(2, True)] * len(moments), "version 2's calibrator, applied"


def test_a_version_s_calibrator_that_is_refused_or_gone_keeps_the_one_in_use(settings, redis_client) -> None:
    """A calibrator that is no increasing map into [0, 1] is refused and a version pruned from the registry has
    none: the scoring monitor keeps estimating with the calibrator it had (each version read once)."""
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    model, schema, task = bootstrap_model(samples=300)
    rng = np.random.default_rng(1)
    s = rng.random(2000)
    fitted = Calibrator.fit(s, rng.random(2000) < s**2)
    summaries = [{SUMMARY_FIELD: fitted.to_json()}, {SUMMARY_FIELD: fitted.to_json().replace('"y": [', '"y": [2.0, ')}]
    for parent, summary in enumerate(summaries + [{}], start=0):
        registry.register("m", model, schema=schema, task=task, parent=parent or None, data_summary=summary)
    monitors = OrderedMonitors(settings, None, ModelCache(registry, print), registry, None, None, None)  # type: ignore[arg-type]
    monitor = Monitor("m", schema, task, None)
    reads: list[tuple] = []
    get = ModelRegistry.get

    async def look(version: int) -> None:
        assert monitor.calibration_due(version)
        found, calibrator = await monitors._calibrator("m", version)
        assert found
        monitor.use_calibration(calibrator, version)
        assert not monitor.calibration_due(version)

    async def scenario() -> None:
        for version in (1, 2, 3, 9, 1, 2):  # refused (2), none registered (3), no such version (9)
            await look(version)
            assert monitor.calibrator == fitted, version

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModelRegistry, "get", lambda self, *args: reads.append(args) or get(self, *args))
        asyncio.run(scenario())
    assert reads == [("m", 1), ("m", 2), ("m", 3), ("m", 9)], "each version read once"
