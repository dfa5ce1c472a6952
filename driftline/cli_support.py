"""What every command group shares: settings from the environment, or one clear line and a non-zero exit.

Misconfiguration (invalid settings, a broker or Redis that cannot be reached) is one line naming the setting and
the fix, exit status 2, never a traceback.

>>> setting_name("alert_actions")
'DRIFTLINE_ALERT_ACTIONS'
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # imported when settings are loaded, not by `driftline --help`
    from driftline.contract.settings import Settings


class Misconfigured(click.ClickException):
    """Settings that cannot work: one line on stderr, exit status 2."""

    exit_code = 2


class Unreachable(click.ClickException):
    """The broker or Redis cannot be reached (or is not configured): one line on stderr, exit status 2."""

    exit_code = 2


def require_key(settings: Settings) -> None:
    """One line and exit 2 unless a signing key is set: for the commands that read or write signed state (a
    producer, which only publishes, needs no key and should not hold one)."""
    try:
        settings.keyring()
    except ValueError as exc:
        raise Misconfigured(str(exc)) from None


def setting_name(field: str) -> str:
    """The environment variable of a settings field."""
    return f"DRIFTLINE_{field.upper()}"


def load_settings() -> Settings:
    """The settings of this process; invalid ones become one :class:`Misconfigured` line."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from driftline.contract.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        name = setting_name(where) if where in Settings.model_fields else where
        message = first["msg"].removeprefix("Value error, ")
        raise Misconfigured(f"invalid settings: {name + ': ' if name else ''}{message}") from None
    except SettingsError as exc:  # a complex field (dict, list) whose value is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = setting_name(field.group(1)) if field else "a DRIFTLINE_* variable"
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        raise Misconfigured(
            f"invalid settings: {name} is not valid JSON{cause}; set it to a JSON object, "
            'e.g. {"concept_drift": "retrain"}, or unset it'
        ) from None


def not_set(variable: str, needed_for: str) -> Unreachable:
    """The one line (exit 2) of a command that needs ``variable`` and finds it unset.

    >>> print(not_set("DRIFTLINE_REDIS_URL", "the registry is there").message)  # doctest: +NORMALIZE_WHITESPACE
    DRIFTLINE_REDIS_URL is not set (the registry is there); start `driftline up` and export what it prints,
    or point it at yours
    """
    return Unreachable(
        f"{variable} is not set ({needed_for}); start `driftline up` and export what it prints, or point it at yours"
    )


def require_redis(settings: Settings, needed_for: str) -> str:
    """The configured Redis URL; :func:`not_set` (exit 2) when it is unset."""
    if settings.redis_url is None:
        raise not_set("DRIFTLINE_REDIS_URL", needed_for)
    return settings.redis_url


def require_broker(settings: Settings, needed_for: str = "the command reads or writes topics") -> str:
    """The configured broker URL once a Kafka broker answered there within ``streams.connections.BROKER_CHECK_SECONDS``;
    :class:`Unreachable` when it is unset, down or not Kafka (a bounded wait, not aiokafka's minutes)."""
    import asyncio

    from driftline.streams.connections import BrokerUnreachable, check_broker

    if settings.broker_url is None:
        raise not_set("DRIFTLINE_BROKER_URL", needed_for)
    try:
        asyncio.run(check_broker(settings, settings.broker_url))
    except BrokerUnreachable as exc:
        raise Unreachable(f"{exc}; check DRIFTLINE_BROKER_URL") from None
    return settings.broker_url


def connection_error_line(exc: BaseException) -> str | None:
    """One line for a broker or Redis connection failure that escaped a command (or a Redis user whose ACL refuses
    this deployment's keys), else None."""
    import redis
    from aiokafka import errors

    broker_errors = (errors.KafkaConnectionError, errors.KafkaTimeoutError, errors.NodeNotReadyError)
    if isinstance(exc, broker_errors + (errors.RequestTimedOutError,)):
        return f"broker unreachable: {type(exc).__name__}: {exc}; check DRIFTLINE_BROKER_URL and that it is up"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis unreachable: {type(exc).__name__}: {exc}; check DRIFTLINE_REDIS_URL and that it is up"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return no_permission_line(exc)
    return None


def no_permission_line(exc: BaseException, settings: Settings | None = None) -> str:
    """Redis refused a key (NOPERM): the user's ACL does not cover the key prefix that DRIFTLINE_TOPIC_PREFIX gives.

    >>> from driftline.contract.settings import Settings
    >>> line = no_permission_line(Exception("no permissions"), Settings(topic_prefix="shop."))
    >>> "allowed the keys shop:* (the prefix follows DRIFTLINE_TOPIC_PREFIX='shop.')" in line
    True
    """
    if settings is None:
        from driftline.contract.settings import Settings

        settings = Settings()
    return (
        f"Redis refused this deployment's keys (NoPermissionError: {exc}): its user must be allowed the keys "
        f"{settings.redis_prefix}* (the prefix follows DRIFTLINE_TOPIC_PREFIX={settings.topic_prefix!r}); check "
        "DRIFTLINE_TOPIC_PREFIX, the user in DRIFTLINE_REDIS_URL and its ACL"
    )


#: Signals that end a command like Ctrl-C does (:func:`ending_signals_exit`): ``timeout``, systemd, a closed terminal.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def ending_signals_exit(signums: tuple[signal.Signals, ...] = ENDING_SIGNALS) -> Iterator[None]:
    """While inside, each of ``signums`` still at its default action raises ``SystemExit(128 + signum)`` instead of
    killing the process, so the command's ``finally`` blocks stop what it started (the embedded broker and Redis, a
    worker) by their pids instead of orphaning them; once one came, the others are ignored until the command is
    done cleaning up. The handlers before are put back on the way out (only in the main thread: elsewhere nothing
    changes).

    >>> try:
    ...     with ending_signals_exit((signal.SIGUSR1,)):
    ...         try:
    ...             signal.raise_signal(signal.SIGUSR1)
    ...         finally:
    ...             signal.raise_signal(signal.SIGUSR1)  # a second one while cleaning up: ignored
    ... except SystemExit as exc:
    ...     print("exit", exc.code)
    exit 138
    >>> signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    True
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in signums}

    def end(signum: int, _frame: object) -> None:
        for other in before:
            signal.signal(other, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for signum, handler in before.items():
        if handler is signal.SIG_DFL:  # not one a caller chose (nohup's SIG_IGN, a handler of its own)
            signal.signal(signum, end)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


class StopSignals:
    """Records the signals that ask a foreground command to stop; its loop polls :meth:`wait`.

    A Python signal handler runs in the main thread between two bytecodes, also while that thread holds a lock. A
    handler that takes a lock (``threading.Event.set`` does) deadlocks the process when the signal lands while
    ``Event.wait`` holds the same one: `driftline up` once hung that way on SIGTERM. This handler only appends.

    >>> stop = StopSignals(signal.SIGUSR1)
    >>> stop.wait(0.0)
    False
    >>> _ = signal.raise_signal(signal.SIGUSR1)
    >>> stop.wait(0.0), stop.received
    (True, [<Signals.SIGUSR1: 10>])
    >>> _ = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    """

    def __init__(self, *signums: signal.Signals) -> None:
        self.received: list[signal.Signals] = []
        for signum in signums:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.received.append(signal.Signals(signum))

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` (a handled signal does not cut it short), then whether a stop signal came."""
        time.sleep(seconds)
        return bool(self.received)
