"""Alert I/O: webhook delivery with retries, the ``alerts`` topic consumer behind ``driftline alerts tail``, and
the one-line human summary of an alert.

The webhook never raises: a delivery is retried with exponential backoff on connection errors, timeouts and
5xx/429 answers, and its final outcome is counted (``delivered`` / ``failed``). Every POST carries an
``X-Driftline-Signature`` header (:func:`driftline.contract.signing.sign_alert` of the body, as GitHub and Stripe
webhooks do), and ``tail_alerts`` with ``verify`` refuses alerts whose Kafka signature header does not check out.

Examples
--------
>>> alert = Alert(alert_id="a1", kind="data_drift", severity="critical", model="fraud", model_version=3,
...               feature="amount", detector="ks", statistic=0.31, threshold=0.13, window=500, event_id="e42",
...               ts=1767225600000, message="ks 0.31 over 500 values", action="none")
>>> print(summary(alert))  # doctest: +ELLIPSIS
2026-01-01T00:00:00Z CRITICAL data_drift fraud v3 amount ks=0.31 (threshold 0.13) at event e42 action=none: ks 0.31 ...
>>> backoff_delays(retries=3, base=0.5)
[0.5, 1.0, 2.0]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer

from driftline.contract.records import Alert
from driftline.contract.signing import ALERT_SIGNATURE_HEADER, IntegrityError, Keyring, sign_alert, verify_alert

log = logging.getLogger(__name__)


def summary(alert: Alert) -> str:
    """One line for a person reading alerts."""
    when = datetime.fromtimestamp(alert.ts / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    version = f" v{alert.model_version}" if alert.model_version is not None else ""
    feature = f" {alert.feature}" if alert.feature else ""
    value = f" {alert.detector}"
    if alert.statistic is not None:
        value += f"={alert.statistic:.4g}"
        if alert.threshold is not None:
            value += f" (threshold {alert.threshold:.4g})"
    where = f" at event {alert.event_id}" if alert.event_id else ""
    return (
        f"{when} {alert.severity.upper()} {alert.kind} {alert.model}{version}{feature}{value}{where} "
        f"action={alert.action}: {alert.message}"
    )


#: Severities from least to most severe (``--severity warning`` shows warning and critical).
SEVERITY_ORDER = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts ``alerts tail`` shows: any of ``kinds`` and of ``models`` (empty: all), at least ``severity``.

    >>> a = Alert(alert_id="a", kind="data_drift", severity="warning", model="fraud", detector="ks", ts=0, message="")
    >>> AlertFilter().accepts(a), AlertFilter(kinds=("concept_drift",)).accepts(a)
    (True, False)
    >>> AlertFilter(models=("fraud", "churn"), severity="warning").accepts(a)
    True
    >>> AlertFilter(severity="critical").accepts(a)
    False
    """

    kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    severity: str | None = None

    def accepts(self, alert: Alert) -> bool:
        if self.kinds and alert.kind not in self.kinds:
            return False
        if self.models and alert.model not in self.models:
            return False
        return self.severity is None or SEVERITY_ORDER.index(alert.severity) >= SEVERITY_ORDER.index(self.severity)


def decode_alert(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None, verify: Keyring | None) -> Alert:
    """The alert of a message of the alerts topic; with ``verify`` (the alert keys), only when its signature header
    checks out. Raises :class:`ValueError` (not an alert) or :class:`IntegrityError` (unsigned, forged, foreign).

    >>> from driftline.contract.signing import Keyring
    >>> body = Alert(alert_id="a", kind="data_drift", severity="warning", model="m", detector="ks", ts=0,
    ...              message="").model_dump_json().encode()
    >>> decode_alert(body, [], None).kind
    'data_drift'
    >>> decode_alert(body, [], Keyring(b"k"))
    Traceback (most recent call last):
    driftline.contract.signing.IntegrityError: alert has no signature header (not published by a driftline worker)
    """
    if verify is not None:
        signature = dict(headers or ()).get(ALERT_SIGNATURE_HEADER) or b""
        verify_alert(verify, value or b"", signature.decode("ascii", "replace"))
    return Alert.model_validate_json(value or b"")


def backoff_delays(retries: int, base: float) -> list[float]:
    """Seconds to wait before each retry: ``base * 2**i``."""
    return [base * 2**i for i in range(retries)]


class WebhookSender:
    """POSTs alerts as JSON to a URL, with retries; counts outcomes, never raises.

    Parameters
    ----------
    url
        Webhook URL.
    retries
        Retries after the first attempt.
    backoff
        First retry delay in seconds (doubles each retry).
    alert_keys
        Keys signing the body (:func:`driftline.contract.signing.alert_keyring`), sent as ``X-Driftline-Signature``.
    timeout
        Seconds per attempt.
    on_outcome
        Called with True (delivered) or False (failed after all retries), e.g.
        :meth:`driftline.streams.metrics_drift.DriftMetrics.count_webhook`.
    """

    def __init__(
        self,
        url: str,
        alert_keys: Keyring,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        on_outcome: Callable[[bool], None] | None = None,
    ):
        self.url, self.retries, self.backoff = url, retries, backoff
        self.alert_keys = alert_keys
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.on_outcome = on_outcome
        self.delivered = 0
        self.failed = 0
        self.attempts = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, alert: Alert) -> bool:
        """Deliver one alert; True when the receiver answered 2xx."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = alert.model_dump_json().encode()
        headers = {"Content-Type": "application/json", "X-Driftline-Signature": sign_alert(self.alert_keys, body)}
        delays = [0.0, *backoff_delays(self.retries, self.backoff)]
        for attempt, delay in enumerate(delays):
            if delay:
                await asyncio.sleep(delay)
            self.attempts += 1
            try:
                async with self._session.post(self.url, data=body, headers=headers) as response:
                    if 200 <= response.status < 300:
                        return self._outcome(True)
                    if response.status < 500 and response.status != 429:
                        log.warning("webhook refused alert %s: HTTP %s", alert.alert_id, response.status)
                        return self._outcome(False)
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = exc.__class__.__name__
            log.warning(
                "webhook attempt %d/%d for alert %s failed: %s", attempt + 1, len(delays), alert.alert_id, reason
            )
        return self._outcome(False)

    def _outcome(self, delivered: bool) -> bool:
        if delivered:
            self.delivered += 1
        else:
            self.failed += 1
        if self.on_outcome is not None:
            with contextlib.suppress(Exception):
                self.on_outcome(delivered)
        return delivered


async def tail_alerts(
    topic: str,
    kafka_kwargs: dict[str, Any],
    on_alert: Callable[[Alert], Awaitable[None] | None],
    from_beginning: bool = False,
    max_alerts: int | None = None,
    timeout: float | None = None,
    on_invalid: Callable[[bytes | None, Exception], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    only: AlertFilter | None = None,
    verify: Keyring | None = None,
) -> int:
    """Consume ``topic`` and call ``on_alert`` for each alert ``only`` accepts; returns how many were seen.

    Stops after ``max_alerts`` (accepted) alerts, after ``timeout`` seconds without a new alert, or when cancelled.
    Messages that are not alerts, and with ``verify`` (the alert keys) alerts whose signature header fails, go
    to ``on_invalid`` (skipped by default); ``on_ready`` is called once the consumer's starting offsets are
    fixed (alerts published after it are seen).
    """
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_kwargs,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    seen = 0
    try:
        await consumer.start()
        await _wait_for_assignment(consumer)
        if on_ready is not None:
            on_ready()
        while max_alerts is None or seen < max_alerts:
            batches = await consumer.getmany(timeout_ms=int((timeout if timeout is not None else 1.0) * 1000))
            if not batches:
                if timeout is not None:
                    break
                continue
            for messages in batches.values():
                for message in messages:
                    try:
                        alert = decode_alert(message.value, message.headers, verify)
                    except (ValueError, IntegrityError) as exc:
                        if on_invalid is not None:
                            on_invalid(message.value, exc)
                        continue
                    if only is not None and not only.accepts(alert):
                        continue
                    result = on_alert(alert)
                    if asyncio.iscoroutine(result):
                        await result
                    seen += 1
                    if max_alerts is not None and seen >= max_alerts:
                        return seen
    finally:
        await consumer.stop()
    return seen


async def _wait_for_assignment(consumer: AIOKafkaConsumer, seconds: float = 10.0) -> None:
    """Resolve "latest" offsets now, so alerts published after this call are not skipped."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not consumer.assignment() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    for partition in consumer.assignment():
        await consumer.position(partition)
