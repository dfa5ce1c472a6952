"""/healthz and /readyz tell the truth, and a worker whose scoring service crashes exits non-zero (real stack)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from driftline.embedded.stack import free_port, stop_process
from driftline.streams.health import Health
from driftline.streams.metrics import probes_app
from tests.harness import busy_cores, event, probe, publish, read_until, settings_env

#: A worker whose scoring handler raises on one poison record: a fault no message-level guard catches (the
#: handler itself fails), standing for any bug that stops a hot-path service.
FAULTY_WORKER = """
from driftline.streams import app

original = app.Worker.score


async def score(self, records):
    if any(record.value == b"CRASH" for record in records):
        raise RuntimeError("injected fault")
    return await original(self, records)


app.Worker.score = score
from driftline.cli import main

main(["worker"])
"""


def _call(app, path: str) -> tuple[str, bytes]:
    answer: list[str] = []
    body = b"".join(app({"PATH_INFO": path}, lambda status, headers: answer.append(status)))
    return answer[0], body


def test_probes_answer_503_with_the_reason_and_everything_else_goes_to_the_metrics_app() -> None:
    health = Health()
    app = probes_app(health, metrics=lambda environ, start: start("200 OK", []) or [b"metrics"])
    assert _call(app, "/readyz") == (
        "503 Service Unavailable",
        b'{"ready":false,"checks":{},"failing":["readiness not checked yet"]}',
    )
    health.service("BatchSource[score]", "running")
    for check in ("partitions", "broker", "redis", "model"):
        health.check(check, True, "ok")
    assert _call(app, "/healthz")[0] == "200 OK" and _call(app, "/readyz")[0] == "200 OK"
    assert _call(app, "/metrics") == ("200 OK", b"metrics")
    health.crashed("BatchSource[score]", "RuntimeError('x')")
    status, body = _call(app, "/healthz")
    assert status.startswith("503") and b"BatchSource[score] crashed: RuntimeError('x')" in body
    assert _call(app, "/readyz")[0].startswith("503")


@pytest.mark.integration
def test_a_worker_whose_scoring_service_crashes_reports_it_on_healthz_and_exits_non_zero_within_5s(
    settings, tmp_path
) -> None:
    port = free_port()
    log_path = tmp_path / "worker.log"
    env = settings_env(settings, DRIFTLINE_METRICS_PORT=str(port))
    with busy_cores(), log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", FAULTY_WORKER], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while (answer := probe(port, "/readyz")) is None or answer[0] != 200:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    f"never ready: {answer}\n{log_path.read_text()}"
                )
                time.sleep(0.05)
            assert probe(port, "/healthz")[0] == 200
            ready = answer[1]
            assert ready["checks"]["model"]["detail"] == "default v1" and ready["checks"]["broker"]["ok"]
            proc.send_signal(signal.SIGQUIT)  # every thread's stack and every task's to the log; the worker goes on
            while "end of asyncio tasks" not in log_path.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            dump = log_path.read_text()
            assert "(most recent call first)" in dump and "in _consume" in dump, "the threads, then what tasks await"

            asyncio.run(publish(settings, "events", [(b"k", event(i)) for i in range(20)]))
            asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= 20))
            asyncio.run(publish(settings, "events", [(b"k", b"CRASH")]))

            reported = body = None
            while reported is None and proc.poll() is None:  # it must report the crash before it is gone
                answer = probe(port, "/healthz")
                if answer is not None and answer[0] == 503:
                    reported, body = time.time(), answer[1]
                time.sleep(0.02)
            proc.wait(timeout=60)
            exited = time.time()
        finally:
            stop_process(proc)
    output = log_path.read_text()
    assert reported is not None, f"/healthz never reported the crash:\n{output}"
    crashed = re.search(r"\[([0-9: ,-]+)\] \[\d+\] \[CRITICAL\] BatchSource\[score\] crashed", output)
    assert crashed is not None, output
    crashed_at = datetime.strptime(crashed.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # the log's local time
    print(f"crash -> /healthz 503 {reported - crashed_at:.2f} s -> exit {exited - crashed_at:.2f} s", flush=True)
    assert body["failing"] == ["BatchSource[score] crashed: RuntimeError('injected fault')"]
    assert proc.returncode == 1, output
    assert exited - crashed_at < 5.0, f"exited {exited - crashed_at:.1f} s after the crash"
    assert "BatchSource[score] crashed: RuntimeError('injected fault'); the worker stops (exit 1)" in output
