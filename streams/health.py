"""What a worker's probes answer: liveness (``/healthz``) and readiness (``/readyz``), pure state.

The event loop records what it knows (services started or crashed, the loop's heartbeat, the outcome of the
readiness checks); the metrics server's thread reads it and answers the probes. Liveness fails when a service
crashed or the event loop stopped beating (a stuck loop); readiness also needs every check to pass (partitions
assigned, broker and Redis reachable, model loaded).

>>> clock = iter([0.0, 1.0, 2.0, 100.0]).__next__
>>> health = Health(stall_seconds=30, clock=clock)  # beat at 0.0
>>> health.service("BatchSource[score]", "running")
>>> health.check("broker", True, "3 brokers")
>>> health.check("redis", False, "ConnectionError: refused")
>>> health.liveness()  # at 1.0
(True, {'live': True, 'services': {'BatchSource[score]': 'running'}, 'loop_silent_seconds': 1.0})
>>> ok, body = health.readiness()  # at 2.0
>>> ok, body["failing"]
(False, ['redis: ConnectionError: refused'])
>>> health.crashed("BatchSource[score]", "ValueError('bad name')")
>>> ok, body = health.liveness()  # at 100.0: crashed, and the loop has been silent for 100 s
>>> ok, body["failing"]
(False, ["BatchSource[score] crashed: ValueError('bad name')", 'event loop silent for 100.0 s'])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: Seconds without a heartbeat of the event loop after which the worker is not live (a blocked loop).
LOOP_STALL_SECONDS = 60.0


class Health:
    """Thread-safe state behind ``/healthz`` and ``/readyz``."""

    def __init__(self, stall_seconds: float = LOOP_STALL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.stall_seconds = stall_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._services: dict[str, str] = {}
        self._checks: dict[str, tuple[bool, str]] = {}
        self._crash: str | None = None
        self._last_beat = clock()

    @property
    def crash(self) -> str | None:
        """``"SERVICE crashed: REASON"`` once a service crashed, else None."""
        return self._crash

    def beat(self) -> None:
        """The event loop is alive (called by a timer on the loop)."""
        self._last_beat = self.clock()

    def service(self, name: str, state: str) -> None:
        """Record a service's state (``starting``, ``running``, ``stopped``)."""
        with self._lock:
            if not self._services.get(name, "").startswith("crashed"):
                self._services[name] = state

    def crashed(self, name: str, reason: str) -> None:
        """A service crashed: liveness fails from now on."""
        with self._lock:
            self._services[name] = f"crashed: {reason}"
            self._crash = self._crash or f"{name} crashed: {reason}"

    def check(self, name: str, ok: bool, detail: str) -> None:
        """Record the outcome of readiness check ``name``."""
        with self._lock:
            self._checks[name] = (ok, detail)

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """(live, JSON body): no service crashed and the loop beat within ``stall_seconds``."""
        silent = round(self.clock() - self._last_beat, 1)
        with self._lock:
            services = dict(self._services)
        failing = [f"{name} {state}" for name, state in services.items() if state.startswith("crashed")]
        if silent > self.stall_seconds:
            failing.append(f"event loop silent for {silent} s")
        body: dict[str, Any] = {"live": not failing, "services": services, "loop_silent_seconds": silent}
        if failing:
            body["failing"] = failing
        return not failing, body

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, JSON body): live, and every readiness check recorded and passing."""
        live, body = self.liveness()
        with self._lock:
            checks = dict(self._checks)
        failing = list(body.get("failing", []))
        failing += [f"{name}: {detail}" for name, (ok, detail) in checks.items() if not ok]
        if not checks:
            failing.append("readiness not checked yet")
        ready = live and not failing
        out = {"ready": ready, "checks": {name: {"ok": ok, "detail": d} for name, (ok, d) in checks.items()}}
        if failing:
            out["failing"] = failing
        return ready, out
