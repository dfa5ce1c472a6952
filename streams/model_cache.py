"""The models a worker scores with, hot-reloaded from the registry when a new version becomes current.

A version whose blob fails verification is never loaded: the worker keeps the last good version (at start, the
newest earlier promoted version that verifies) and reports the failure once per version through
``on_integrity_failure``. Redis being unreachable never stops scoring: the loaded models stay in use and the next
check tries again. Names asked for that the registry does not know are remembered for a second, at most
:data:`MAX_UNKNOWN_NAMES` of them (least recently asked forgotten first), and looked up with one ``SMEMBERS`` a
batch however many there are: random model names cannot grow memory or cost a registry round trip each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis

from driftline.contract.signing import IntegrityError
from driftline.models.champion import Challenger, as_challenger
from driftline.models.registry import ModelRegistry
from driftline.models.version import ModelVersion, UnknownModelError
from driftline.streams.metrics import MODEL_INTEGRITY_FAILURES, MODEL_RELOADS, MODEL_VERSION, REDIS_ERRORS
from driftline.streams.scoring_stage import LoadedModel

log = logging.getLogger(__name__)

IntegrityCallback = Callable[[str, int, str], None]
#: Unknown model names remembered (each is asked again after ``retry_unknown_after`` seconds).
MAX_UNKNOWN_NAMES = 10_000
#: Earlier promoted versions tried, newest first, when the current one is refused at first load.
MAX_FALLBACK_VERSIONS = 5


class ModelCache:
    """Current versions of the models this worker has been asked for."""

    def __init__(self, registry: ModelRegistry, on_integrity_failure: IntegrityCallback, role: str = "scorer"):
        self.registry = registry
        self.on_integrity_failure = on_integrity_failure
        self.role = role
        self._loaded: dict[str, LoadedModel] = {}
        self._unknown_until: OrderedDict[str, float] = OrderedDict()
        self._refused: set[tuple[str, int]] = set()
        #: Challengers scored in shadow: model name -> (version, adapter).
        self.challengers: dict[str, tuple[int, Challenger]] = {}

    def get(self, name: str) -> LoadedModel | None:
        """The loaded model called ``name``, if any (no I/O)."""
        return self._loaded.get(name)

    @property
    def names(self) -> list[str]:
        """The models loaded."""
        return list(self._loaded)

    @property
    def unknown_names(self) -> int:
        """How many unknown names are remembered (bounded by :data:`MAX_UNKNOWN_NAMES`)."""
        return len(self._unknown_until)

    async def ensure(self, names: set[str], retry_unknown_after: float = 1.0) -> None:
        """Load each model in ``names`` that is not loaded yet (unknown names are re-asked at most each second)."""
        now = time.monotonic()
        wanted = [n for n in names if n not in self._loaded and self._unknown_until.get(n, 0) <= now]
        if not wanted:
            return
        try:
            registered = set(await asyncio.to_thread(self.registry.names))
        except redis.RedisError as exc:
            REDIS_ERRORS.labels("model_load").inc()
            log.warning("registry unreachable while looking up %d model names: %r", len(wanted), exc)
            registered = set()
        for name in wanted:
            try:
                loaded = name in registered and await self._load_first(name)
                if loaded:
                    await self._refresh_challenger(name)
            except Exception as exc:  # noqa: BLE001 - a name must never stop the scorer: its events are dead-lettered
                log.error("model %s could not be loaded: %r", name, exc)
            if name in self._loaded:
                self._unknown_until.pop(name, None)
            else:
                self._unknown_until[name] = now + retry_unknown_after
                self._unknown_until.move_to_end(name)
                while len(self._unknown_until) > MAX_UNKNOWN_NAMES:
                    self._unknown_until.popitem(last=False)

    async def _load_first(self, name: str) -> bool:
        """Load the current version of ``name``; when it is refused, the newest promoted one that verifies (the
        integrity action may have rolled back meanwhile: the new current version comes first)."""
        if await self._load(name, None):
            return True
        if not any(refused == name for refused, _ in self._refused):
            return False  # unknown or unreachable, nothing refused
        try:
            current = await asyncio.to_thread(self.registry.current_version, name)
            history = await asyncio.to_thread(self.registry.history, name)
        except redis.RedisError:
            REDIS_ERRORS.labels("model_load").inc()
            return False
        candidates = ([current] if current is not None else []) + [v for v in reversed(history) if v != current]
        for version in [v for v in candidates if (name, v) not in self._refused][:MAX_FALLBACK_VERSIONS]:
            if await self._load(name, version):
                log.warning("%s: serving v%s, the newest promoted version that verifies", name, version)
                return True
        return False

    async def refresh(self) -> None:
        """Load the current version of every loaded model when it changed in the registry."""
        for name, loaded in list(self._loaded.items()):
            try:
                current = await asyncio.to_thread(self.registry.current_version, name)
            except redis.RedisError as exc:
                REDIS_ERRORS.labels("model_refresh").inc()
                log.warning("registry unreachable, keeping %s v%s: %r", name, loaded.version, exc)
                return
            if current is not None and current != loaded.version and (name, current) not in self._refused:
                await self._load(name, current)
            await self._refresh_challenger(name)

    async def _refresh_challenger(self, name: str) -> None:
        """Load the challenger of ``name`` when one was set or changed; drop it when it was cleared."""
        try:
            version = await asyncio.to_thread(self.registry.challenger_version, name)
        except redis.RedisError:
            REDIS_ERRORS.labels("challenger_refresh").inc()
            return
        held = self.challengers.get(name)
        if version is None:
            self.challengers.pop(name, None)
            return
        if (held is not None and held[0] == version) or (name, version) in self._refused:
            return
        fetched = await self._fetch(name, version)
        if fetched is None:
            return
        meta, model = fetched
        positive = meta.data_summary.get("positive_class")
        self.challengers[name] = (version, as_challenger(model, meta.task, positive))
        MODEL_VERSION.labels(name, "challenger").set(version)

    async def _fetch(self, name: str, version: int | None) -> tuple[ModelVersion, Any] | None:
        """A verified version from the registry; None when it is unknown, refused (reported once) or unreachable."""
        try:
            return await asyncio.to_thread(self.registry.load, name, version)
        except UnknownModelError:
            return None
        except IntegrityError as exc:
            bad_version = (
                version if version is not None else await asyncio.to_thread(self.registry.current_version, name)
            )
            self._refused.add((name, bad_version or 0))
            MODEL_INTEGRITY_FAILURES.labels(name).inc()
            log.error("refused %s v%s: %s", name, bad_version, exc)
            self.on_integrity_failure(name, bad_version or 0, str(exc))
            return None
        except redis.RedisError as exc:
            REDIS_ERRORS.labels("model_load").inc()
            log.warning("registry unreachable while loading %s: %r", name, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - e.g. a verified blob that no longer unpickles: never stop scoring
            log.error("model %s v%s could not be loaded: %r", name, version, exc)
            return None

    async def _load(self, name: str, version: int | None) -> bool:
        fetched = await self._fetch(name, version)
        if fetched is None:
            return False
        meta, model = fetched
        previous = self._loaded.get(name)
        self._loaded[name] = LoadedModel(meta, model)
        MODEL_VERSION.labels(name, self.role).set(meta.version)
        if previous is not None:
            MODEL_RELOADS.labels(name).inc()
            log.info("hot-reloaded %s v%s -> v%s", name, previous.version, meta.version)
        return True
