"""Redis-backed, versioned and signed model registry.

Every model is stored as a pickle together with its SHA-256 and an HMAC-SHA256 made with the configured key.
:meth:`ModelRegistry.load` verifies both with :func:`hmac.compare_digest` *before* unpickling: a blob that
fails raises :class:`IntegrityError` and is never passed to :func:`pickle.loads` (loading a pickle runs code).

Its Redis keys (``models``, ``model:N:*``) are laid out in :mod:`driftline.contract.keys`; ``current`` is one GET,
cheap to poll.

A version number is reserved with ``INCR`` and everything else of a registration is written in one
``MULTI``/``EXEC``; a crash in between leaves a gap in the numbering, never a half-written version.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Mapping
from typing import Any

import redis

from driftline.contract import keys
from driftline.contract.signing import IntegrityError, sha256_hex, sign_blob, verify_blob
from driftline.models.features import FeatureSchema
from driftline.models.reference import ReferenceProfile
from driftline.models.specs import TASKS
from driftline.models.version import ModelVersion, UnknownModelError, check_name, dump_model


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ModelRegistry:
    """Versioned model store in Redis: register, load (verified), promote, roll back.

    Parameters
    ----------
    client
        A synchronous :class:`redis.Redis` that returns bytes (``decode_responses`` must be off).
    hmac_key
        Key of the HMAC-SHA256 that signs every blob.
    prefix
        Prefix of every key the registry uses.
    """

    def __init__(self, client: redis.Redis, hmac_key: bytes, prefix: str = "driftline:"):
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("ModelRegistry needs a Redis client with decode_responses=False (blobs are bytes)")
        if not hmac_key:
            raise ValueError("ModelRegistry needs a non-empty HMAC key")
        self.client = client
        self.hmac_key = bytes(hmac_key)
        self.prefix = prefix

    # --- keys ---------------------------------------------------------------------------------
    def _key(self, name: str, part: str) -> str:
        return keys.model(self.prefix, check_name(name), part)

    @property
    def _names_key(self) -> str:
        return keys.models(self.prefix)

    # --- writing ------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        *,
        schema: FeatureSchema,
        task: str,
        parent: int | None = None,
        metrics: Mapping[str, float] | None = None,
        data_summary: Mapping[str, Any] | None = None,
        note: str = "",
        reference: ReferenceProfile | None = None,
        promote: bool = True,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` (1, 2, 3, ...); make it current when ``promote``."""
        check_name(name)
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if parent is not None and not self.client.hexists(self._key(name, "versions"), str(parent)):
            raise UnknownModelError(f"model {name!r} has no parent version {parent}")
        blob = dump_model(model)
        version = int(self.client.incr(self._key(name, "seq")))
        meta = ModelVersion(
            name=name,
            version=version,
            parent=parent,
            created_ms=int(time.time() * 1000),
            sha256=sha256_hex(blob),
            hmac=sign_blob(self.hmac_key, blob),
            task=task,
            schema=schema.to_dict(),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            data_summary=dict(data_summary or {}),
            note=note,
        )
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(name, f"blob:{version}"), blob)
            pipe.hset(self._key(name, "versions"), str(version), meta.to_json())
            if reference is not None:
                pipe.set(self._key(name, f"reference:{version}"), reference.to_json())
            pipe.sadd(self._names_key, name)
            if promote:
                pipe.set(self._key(name, "current"), version)
                pipe.rpush(self._key(name, "history"), version)
            pipe.execute()
        return meta

    def promote(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` current and push it onto the promotion history (no-op if already current).

        A version whose blob fails verification is refused with :class:`IntegrityError`.
        """
        meta = self.verify(name, version)
        current_key, history_key = self._key(name, "current"), self._key(name, "history")

        def swap(pipe: Any) -> None:
            current = pipe.get(current_key)
            if current is not None and int(current) == version:
                return
            pipe.multi()
            pipe.set(current_key, version)
            pipe.rpush(history_key, version)

        self.client.transaction(swap, current_key, history_key)
        return meta

    def rollback(self, name: str) -> ModelVersion:
        """Make the previously promoted version current again (undoes the last promotion).

        Raises :class:`UnknownModelError` for an unknown model, :class:`ValueError` when there is no
        earlier promoted version and :class:`IntegrityError` when that version's blob fails verification.
        """
        self._require_name(name)
        current_key, history_key = self._key(name, "current"), self._key(name, "history")

        def undo(pipe: Any) -> int:
            history = [int(v) for v in pipe.lrange(history_key, 0, -1)]
            if len(history) < 2:
                raise ValueError(f"model {name!r} has no earlier promoted version to roll back to")
            previous = history[-2]
            self.verify(name, previous)
            pipe.multi()
            pipe.rpop(history_key)
            pipe.set(current_key, previous)
            return previous

        previous = self.client.transaction(undo, current_key, history_key, value_from_callable=True)
        return self.get(name, previous)

    # --- reading ------------------------------------------------------------------------------
    def set_challenger(self, name: str, version: int | None) -> None:
        """Mark ``version`` as the challenger scored in shadow beside the current version (None: no challenger)."""
        if version is None:
            self.client.delete(self._key(name, "challenger"))
            return
        self.verify(name, version)
        self.client.set(self._key(name, "challenger"), version)

    def replace_challenger(self, name: str, expected: int, version: int) -> bool:
        """Make ``version`` the challenger only if ``expected`` still is (False, nothing changed, otherwise).

        The learner moves the challenger to its newer snapshots with this, so that a challenger set or cleared
        meanwhile with ``driftline models challenge`` is never overwritten.
        """
        self.verify(name, version)
        key = self._key(name, "challenger")

        def swap(pipe: Any) -> bool:
            if pipe.get(key) not in (str(expected).encode(), str(expected)):
                pipe.unwatch()
                return False
            pipe.multi()
            pipe.set(key, version)
            return True

        return bool(self.client.transaction(swap, key, value_from_callable=True))

    def challenger_version(self, name: str) -> int | None:
        """The challenger version of ``name``, if one is set (one GET)."""
        raw = self.client.get(self._key(name, "challenger"))
        return None if raw is None else int(raw)

    def current_version(self, name: str) -> int | None:
        """The version scorers should serve (one GET), or None when none was promoted."""
        raw = self.client.get(self._key(name, "current"))
        return None if raw is None else int(raw)

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """Metadata of ``version`` (the current one when None)."""
        version = self._resolve(name, version)
        raw = self.client.hget(self._key(name, "versions"), str(version))
        if raw is None:
            raise UnknownModelError(f"model {name!r} has no version {version}")
        return ModelVersion.from_json(raw)

    def load(self, name: str, version: int | None = None) -> tuple[ModelVersion, Any]:
        """Metadata and model of ``version`` (current when None), verified before it is unpickled."""
        meta, blob = self._fetch(name, version)
        self._check(meta, blob)
        return meta, pickle.loads(blob)  # noqa: S301 - verified with the HMAC just above

    def verify(self, name: str, version: int | None = None) -> ModelVersion:
        """Check the blob of ``version`` (current when None) against its SHA-256 and HMAC without unpickling it.

        Returns the metadata; raises :class:`IntegrityError` or :class:`UnknownModelError`.
        """
        meta, blob = self._fetch(name, version)
        self._check(meta, blob)
        return meta

    def versions(self, name: str) -> list[ModelVersion]:
        """Metadata of every version of ``name``, oldest first (empty for an unknown name)."""
        raw = self.client.hgetall(self._key(name, "versions"))
        return sorted((ModelVersion.from_json(v) for v in raw.values()), key=lambda m: m.version)

    def names(self) -> list[str]:
        """Names of every registered model, sorted."""
        return sorted(_text(n) for n in self.client.smembers(self._names_key))

    def history(self, name: str) -> list[int]:
        """Promoted versions of ``name``, oldest first; the last one is current."""
        return [int(v) for v in self.client.lrange(self._key(name, "history"), 0, -1)]

    def reference(self, name: str, version: int | None = None) -> ReferenceProfile | None:
        """Reference profile stored with ``version``, else the nearest one up its parent chain, else None."""
        meta: ModelVersion | None = self.get(name, version)
        seen: set[int] = set()
        while meta is not None and meta.version not in seen:
            seen.add(meta.version)
            raw = self.client.get(self._key(name, f"reference:{meta.version}"))
            if raw is not None:
                return ReferenceProfile.from_json(_text(raw))
            meta = self.get(name, meta.parent) if meta.parent is not None else None
        return None

    # --- helpers ------------------------------------------------------------------------------
    def _require_name(self, name: str) -> None:
        if not self.client.sismember(self._names_key, check_name(name)):
            raise UnknownModelError(f"unknown model {name!r}")

    def _fetch(self, name: str, version: int | None) -> tuple[ModelVersion, bytes | None]:
        version = self._resolve(name, version)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(self._key(name, "versions"), str(version))
            pipe.get(self._key(name, f"blob:{version}"))
            raw_meta, blob = pipe.execute()
        if raw_meta is None:
            raise UnknownModelError(f"model {name!r} has no version {version}")
        return ModelVersion.from_json(raw_meta), blob

    def _check(self, meta: ModelVersion, blob: bytes | None) -> None:
        where = f"model {meta.name!r} version {meta.version}"
        if blob is None:
            raise IntegrityError(f"{where} has metadata but no blob")
        try:
            verify_blob(self.hmac_key, blob, meta.sha256, meta.hmac)
        except IntegrityError as exc:
            raise IntegrityError(f"{where}: {exc}") from None

    def _resolve(self, name: str, version: int | None) -> int:
        if version is not None:
            return int(version)
        current = self.current_version(name)
        if current is None:
            self._require_name(name)
            raise UnknownModelError(f"model {name!r} has no current (promoted) version")
        return current
