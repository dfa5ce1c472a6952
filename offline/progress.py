"""Progress of long training steps: a tiny protocol, a silent implementation and a rich one for the CLI.

Examples
--------
>>> progress = NullProgress()
>>> with progress.task("cross-validation", total=3) as advance:
...     for _ in range(3):
...         advance(1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    """Reports a named step; the context value advances it by a number of units of ``total``."""

    def task(self, description: str, total: int | None = None) -> contextlib.AbstractContextManager[Advance]: ...


class NullProgress:
    """Reports nothing (library use, tests)."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        yield lambda units: None


class RichProgress:
    """A rich progress bar per step on stderr (so ``--json`` output on stdout stays clean), shown only when
    stderr is a terminal: piped or captured output carries just the result or the one-line error."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBar

        console = console or Console(stderr=True)
        self.enabled = console.is_terminal
        self._bar = RichBar(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        if self.enabled:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        if not self.enabled:
            yield lambda units: None
            return
        task_id = self._bar.add_task(description, total=total)
        try:
            yield lambda units: self._bar.advance(task_id, units)
        finally:
            self._bar.update(task_id, completed=total if total is not None else 1, total=total or 1)
