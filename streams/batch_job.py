"""``driftline score``: score a CSV or Parquet file with a registered model version, chunk by chunk.

The file is read in chunks (pandas ``chunksize`` for CSV, pyarrow ``iter_batches`` for Parquet), so memory is
bounded by the chunk, not the file. Each chunk goes through the stream's stage (:mod:`.file_scoring`);
predictions are appended to a Parquet file, rejected rows with their reasons to a JSON-lines side file, and the
valid rows are counted into a :class:`~driftline.monitoring.batch_drift.BatchDrift` against the version's
reference profile.

Output columns: ``row`` (0-based row of the input), ``event_id``, ``model``, ``model_version``, ``prediction``,
``probabilities`` (class -> probability, classifiers), ``score`` (positive-class probability or predicted value),
``confidence``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from driftline.contract import keys
from driftline.contract.records import now_ms
from driftline.contract.settings import Settings
from driftline.models.registry import ModelRegistry
from driftline.monitoring.batch_drift import BatchDrift, FeatureDrift
from driftline.streams.file_scoring import ScoredChunk, chunk_records, csv_columns, score_chunk
from driftline.streams.scoring_stage import LoadedModel, ScoringPolicy

#: Rows per chunk: memory grows with it (measured ~12 KB a row in flight), speed hardly (the stream's batch is 500).
DEFAULT_CHUNK_ROWS = 2_000
FORMATS = (".csv", ".parquet", ".pq")
#: Rows per row group of the output.
ROW_GROUP_ROWS = 20_000


class BatchInputError(ValueError):
    """The input file cannot be scored (the message says why)."""


@dataclass
class BatchResult:
    """What a run did: counts, where it wrote, the drift summary (empty without a reference profile)."""

    model: str
    version: int
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    seconds: float = 0.0
    out: Path | None = None
    rejected_path: Path | None = None
    threshold: float | None = None
    drift: list[FeatureDrift] = field(default_factory=list)
    has_reference: bool = False


#: Progress callback: (units done since the last call, total units); units are bytes (CSV) or rows (Parquet).
Progress = Callable[[int, int], None]


def rejected_path_for(out: Path) -> Path:
    """The default side file of rejected rows, beside the output.

    >>> rejected_path_for(Path("/data/out/scored.parquet"))
    PosixPath('/data/out/scored.rejected.jsonl')
    """
    return out.with_name(out.stem + ".rejected.jsonl")


def _csv_chunks(
    path: Path, chunk_rows: int, progress: Progress, numeric: Collection[str]
) -> Iterator[dict[str, list[Any]]]:
    total = path.stat().st_size
    with path.open("rb") as handle:
        reader = pd.read_csv(
            handle, chunksize=chunk_rows, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8"
        )
        done = 0
        for frame in reader:
            yield csv_columns(frame, numeric)
            position = min(handle.tell(), total)
            progress(position - done, total)
            done = position


def _parquet_chunks(path: Path, chunk_rows: int, progress: Progress) -> Iterator[dict[str, list[Any]]]:
    parquet = pq.ParquetFile(path)
    total = parquet.metadata.num_rows
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield {name: batch.column(i).to_pylist() for i, name in enumerate(batch.schema.names)}
        progress(batch.num_rows, total)


def read_chunks(
    path: Path, chunk_rows: int, progress: Progress, numeric: Collection[str] = ()
) -> Iterator[dict[str, list[Any]]]:
    """Column lists of ``chunk_rows`` rows at a time of a CSV or Parquet file (``numeric``: see ``csv_columns``)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise BatchInputError(f"{path}: expected a .csv or .parquet file, got '{suffix or path.name}'")
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            yield from _csv_chunks(path, chunk_rows, progress, numeric)
        else:
            yield from _parquet_chunks(path, chunk_rows, progress)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise BatchInputError(f"{path}: cannot read it: {type(exc).__name__}: {exc}") from None


def load_for_batch(registry: ModelRegistry, name: str, version: int | None) -> tuple[LoadedModel, float | None]:
    """The model version to score with (the served one by default) and, for the served version, the decision
    threshold the stream applies to it (set by an ``adjust_threshold`` action)."""
    meta, model = registry.load(name, version)
    threshold = None
    if registry.current_version(name) == meta.version:
        raw = registry.client.get(keys.threshold(registry.prefix, name))
        threshold = float(raw) if raw is not None else None
    return LoadedModel(meta, model), threshold


def _drift_values(loaded: LoadedModel, chunk: ScoredChunk) -> list[Any]:
    """What the prediction profile holds: the positive-class score (binary), else the prediction."""
    return chunk.predictions["score" if loaded.task == "binary" else "prediction"]


#: Types of the output columns (``prediction`` takes the type of the model's classes or values).
OUTPUT_TYPES = {
    "row": pa.int64(),
    "event_id": pa.string(),
    "model": pa.string(),
    "model_version": pa.int64(),
    "prediction": None,
    "probabilities": pa.map_(pa.string(), pa.float64()),
    "score": pa.float64(),
    "confidence": pa.float64(),
}


def _table(predictions: dict[str, list[Any]], schema: pa.Schema | None) -> pa.Table:
    columns = {name: predictions.get(name, []) for name in OUTPUT_TYPES}
    columns["probabilities"] = [None if p is None else list(p.items()) for p in columns["probabilities"]]
    if schema is not None:
        return pa.table(columns, schema=schema)
    return pa.table({name: pa.array(values, OUTPUT_TYPES[name]) for name, values in columns.items()})


class _ParquetSink:
    """Appends prediction tables to a Parquet file in row groups of :data:`ROW_GROUP_ROWS` (a row group per chunk
    would make many tiny ones, and the writer keeps every row group's metadata until it closes)."""

    def __init__(self, path: Path):
        self.path = path
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.rows = 0

    def append(self, predictions: dict[str, list[Any]]) -> None:
        schema = self.writer.schema if self.writer is not None else None
        table = _table(predictions, schema or (self.pending[0].schema if self.pending else None))
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table, row_group_size=max(ROW_GROUP_ROWS, table.num_rows))
        self.pending, self.rows = [], 0

    def close(self) -> None:
        self._flush()
        if self.writer is None:  # nothing scored: an empty file with the columns, so readers need no special case
            self.writer = pq.ParquetWriter(self.path, _table({}, None).schema)
        self.writer.close()


def score_file(
    data: Path,
    out: Path,
    loaded: LoadedModel,
    settings: Settings,
    *,
    threshold: float | None = None,
    reference: Any = None,
    rejected_path: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress = lambda done, total: None,
) -> BatchResult:
    """Score ``data`` into ``out`` (Parquet) with ``loaded``; rejected rows go to ``rejected_path`` (JSON lines).

    ``reference`` is the version's :class:`~driftline.models.reference.ReferenceProfile` (None: no drift summary).
    """
    started = time.perf_counter()
    rejected_path = rejected_path or rejected_path_for(out)
    # the worker's own policy (the same ts window too); a file's predictions carry no explanations
    policy = replace(ScoringPolicy.from_settings(settings), explain_top_k=0)
    drift = BatchDrift(reference) if reference is not None else None
    result = BatchResult(loaded.name, loaded.version, out=out, rejected_path=rejected_path, threshold=threshold)
    result.has_reference = drift is not None
    default_ts = now_ms()
    sink = _ParquetSink(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rejected_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with rejected_path.open("wb") as rejected_file:
            for columns in read_chunks(data, chunk_rows, progress, set(loaded.schema.numeric)):
                records = chunk_records(columns, result.rows, loaded.name, default_ts)
                chunk = score_chunk(records, loaded, policy, threshold)
                result.rows += len(records)
                result.scored += len(chunk.kept)
                result.rejected += len(chunk.rejected)
                for row in chunk.rejected:
                    rejected_file.write(orjson.dumps(row) + b"\n")
                if chunk.kept:
                    sink.append(chunk.predictions)
                if drift is not None:
                    kept = chunk.kept
                    if len(kept) < len(records):
                        columns = {name: [values[i] for i in kept] for name, values in columns.items()}
                    drift.update(columns, _drift_values(loaded, chunk))
    finally:
        sink.close()
    result.drift = drift.summary() if drift is not None else []
    result.seconds = time.perf_counter() - started
    return result
