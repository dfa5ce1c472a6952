"""Producer/replay client: read events from JSONL or CSV and publish them to ``events``.

JSONL lines are published byte-for-byte (an invalid line still goes out, so the worker dead-letters it).
CSV rows become events: ``event_id``, ``ts`` and ``model`` columns are taken as such, every other column is a
feature (numbers parsed, empty cells null).

Examples
--------
>>> csv_row_to_event({"event_id": "a", "x": "1.5", "c": "red", "n": ""}, 0)
{'event_id': 'a', 'ts': 0, 'features': {'x': 1.5, 'c': 'red', 'n': None}}
>>> message_key(b'{"event_id": "e7", "ts": 1, "features": {}}')
b'e7'
>>> message_key(b'not json') is None
True
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from driftline.streams.publisher import Publisher

RESERVED_COLUMNS = ("event_id", "ts", "model")


def _parse_cell(text: str) -> float | int | str | None:
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def csv_row_to_event(row: dict[str, str], ts: int) -> dict[str, Any]:
    """One CSV row as an event of the contract."""
    event: dict[str, Any] = {"event_id": row["event_id"], "ts": _parse_cell(row.get("ts") or "") or ts}
    if row.get("model"):
        event["model"] = row["model"]
    event["features"] = {k: _parse_cell(v) for k, v in row.items() if k not in RESERVED_COLUMNS}
    return event


def read_messages(path: Path) -> Iterator[bytes]:
    """Messages of a JSONL file (raw lines) or a CSV file (one event per row)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "event_id" not in reader.fieldnames:
                raise ValueError(f"{path}: a CSV of events needs an 'event_id' column")
            now = int(time.time() * 1000)
            for i, row in enumerate(reader):
                yield json.dumps(csv_row_to_event(row, now + i)).encode()
        return
    with path.open("rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


def message_key(value: bytes, field: str = "event_id") -> bytes | None:
    """The partitioning key of a message: its ``event_id`` (labels: model), or None when unreadable."""
    try:
        parsed = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get(field), str):
        return parsed[field].encode()
    return None


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
    rate: float | None = None,
    on_sent: Callable[[int], None] | None = None,
    chunk: int = 1000,
) -> int:
    """Publish ``(key, value)`` pairs, at most ``rate`` per second when given; returns how many were sent."""
    publisher = Publisher(producer)
    started = time.monotonic()
    sent = 0
    for key, value in messages:
        await publisher.send(topic, value, key)
        sent += 1
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                await publisher.flush()
                await asyncio.sleep(ahead)
        if sent % chunk == 0:
            await publisher.flush()
            if on_sent:
                on_sent(chunk)
    await publisher.flush()
    if on_sent and sent % chunk:
        on_sent(sent % chunk)
    return sent
