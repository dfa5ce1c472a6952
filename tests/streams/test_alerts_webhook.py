"""Webhook delivery against a real aiohttp server on 127.0.0.1: retries with backoff, outcomes counted, no crash."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

from driftline.contract.records import Alert
from driftline.contract.signing import IntegrityError, Keyring, alert_keyring, verify_alert
from driftline.embedded.stack import free_port
from driftline.streams.alerts_io import WebhookSender

ALERT = Alert(
    alert_id="a1",
    kind="concept_drift",
    severity="critical",
    model="fraud",
    model_version=4,
    detector="cusum",
    statistic=16.2,
    threshold=15.9,
    event_id="e9",
    ts=1,
    message="error rate up",
    action="retrain",
)


KEYS = alert_keyring(Keyring(b"deployment-key"))


async def with_server(statuses: list[int], body: Callable[[WebhookSender], object]) -> tuple[object, list[bytes]]:
    """Serve ``statuses`` in turn (then 200) on a free port; run ``body(sender)``; return its result and bodies
    (each checked against its X-Driftline-Signature header as a receiver would)."""
    received: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        verify_alert(KEYS, received[-1], request.headers.get("X-Driftline-Signature"))
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    outcomes: list[bool] = []
    try:
        async with WebhookSender(
            f"http://127.0.0.1:{port}/hook", KEYS, retries=3, backoff=0.01, on_outcome=outcomes.append
        ) as sender:
            result = await body(sender)  # type: ignore[misc]
            return (result, sender.attempts, sender.delivered, sender.failed, outcomes), received
    finally:
        await runner.cleanup()


def test_webhook_retries_server_errors_with_backoff_then_delivers_the_alert_json() -> None:
    outcome, received = asyncio.run(with_server([503, 500], lambda s: s.send(ALERT)))
    ok, attempts, delivered, failed, outcomes = outcome  # type: ignore[misc]
    assert ok is True and attempts == 3 and (delivered, failed) == (1, 0) and outcomes == [True]
    assert [Alert.model_validate_json(r) for r in received] == [ALERT] * 3


def test_webhook_gives_up_after_its_retries_counts_the_failure_and_does_not_raise() -> None:
    (ok, attempts, delivered, failed, outcomes), _ = asyncio.run(with_server([503] * 10, lambda s: s.send(ALERT)))
    assert ok is False and attempts == 4 and (delivered, failed) == (0, 1) and outcomes == [False]


def test_webhook_does_not_retry_a_client_error() -> None:
    (ok, attempts, _, failed, _), received = asyncio.run(with_server([400], lambda s: s.send(ALERT)))
    assert ok is False and attempts == 1 and failed == 1 and len(received) == 1


def test_webhook_to_a_closed_port_fails_quietly() -> None:
    async def scenario() -> tuple[bool, int]:
        async with WebhookSender(f"http://127.0.0.1:{free_port()}/hook", KEYS, retries=2, backoff=0.01) as sender:
            return await sender.send(ALERT), sender.failed

    assert asyncio.run(scenario()) == (False, 1)


def test_every_webhook_post_carries_a_signature_a_receiver_checks_with_plain_hmac() -> None:
    """X-Driftline-Signature is KEYID:HEX, HEX = HMAC-SHA256(alert key, b"alert\\0" + body): a receiver with the
    key printed by `driftline alerts key` checks it with hmac alone; an altered body fails."""
    import hashlib
    import hmac

    seen: list[tuple[bytes, str]] = []

    async def scenario() -> None:
        async def hook(request: web.Request) -> web.Response:
            seen.append((await request.read(), request.headers["X-Driftline-Signature"]))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with WebhookSender(f"http://127.0.0.1:{port}/hook", KEYS) as sender:
                assert await sender.send(ALERT)
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    [(body, header)] = seen
    key_id, _, mac = header.partition(":")
    assert key_id == KEYS.current_id
    assert hmac.compare_digest(mac, hmac.new(KEYS.current, b"alert\0" + body, hashlib.sha256).hexdigest())
    with pytest.raises(IntegrityError):
        verify_alert(KEYS, body.replace(b"concept_drift", b"data_drift"), header)
    with pytest.raises(IntegrityError):
        verify_alert(alert_keyring(Keyring(b"another-deployment")), body, header)
