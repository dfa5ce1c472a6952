"""Reference point for `bench pipeline`: a Faust agent that only counts the events of a topic.

Run as ``python -m driftline.bench.faust_consume BROKER TOPIC N OUT``; writes ``{"faust_consume_eps": ...}`` to OUT
when N were counted, then stops (Faust redirects stdout to its log, hence the file).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import faust


def main(broker: str, topic_name: str, n: int, out: str) -> None:
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{broker}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6,
        broker_heartbeat_interval=0.5,
    )
    topic = app.topic(topic_name, value_serializer="raw")
    state = {"count": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream: faust.StreamT) -> None:
        async for _ in stream:
            if state["count"] == 0:
                state["first"] = time.perf_counter()
            state["count"] += 1
            if state["count"] == n:
                elapsed = time.perf_counter() - state["first"]
                Path(out).write_text(json.dumps({"faust_consume_eps": round((n - 1) / elapsed, 1)}))
                os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel=os.environ.get("BENCH_FAUST_LOGLEVEL", "error"), quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
