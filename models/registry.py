"""Redis-backed, versioned and signed model registry.

Every model is stored as a pickle; its metadata holds the blob's SHA-256, the reference profile's SHA-256, the
schema, task, parent, version number and name, all under one signature made with the keyring's current key
(:meth:`ModelVersion.signed_bytes`, :mod:`driftline.contract.signing`). Reading a version verifies the signature
and the digests in constant time *before* unpickling: anything that fails raises :class:`IntegrityError` and is
never passed to :func:`pickle.loads` (loading a pickle runs code). A blob copied under another version number,
a schema cut, a reference profile swapped: each breaks the signature.

Its Redis keys (``models``, ``model:{N}:*``) are laid out in :mod:`driftline.contract.keys`; ``current`` is one GET,
cheap to poll. A reference profile is stored once under its SHA-256; a version registered without one inherits its
parent's digest (signed), so :meth:`ModelRegistry.reference` is one metadata read and one profile read however long
the lineage is.

Retention (:meth:`ModelRegistry.prune`) keeps the newest N versions, every pinned one (promoted by a person, an
offline registration or a winning challenger; not the learner's periodic snapshots), the current one, the
challenger and the versions a caller says are in use (the learners' checkpoint parents), and deletes the rest.

A version number is reserved with ``INCR``, the name added to ``models``, and everything else of a registration
is written in one ``MULTI``/``EXEC`` on the model's keys (one hash tag: one slot of a Redis Cluster); a crash in
between leaves a gap in the numbering, never a half-written version.
"""

from __future__ import annotations

import hmac
import pickle
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import redis

from driftline.contract import keys
from driftline.contract.signing import IntegrityError, Keyring, as_keyring, sha256_hex
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
    keyring
        The signing keyring (or one key): its current key signs new versions, every key of it verifies.
    prefix
        Prefix of every key the registry uses.
    """

    def __init__(self, client: redis.Redis, keyring: Keyring | bytes, prefix: str = "driftline:"):
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("ModelRegistry needs a Redis client with decode_responses=False (blobs are bytes)")
        self.client = client
        self.keyring = as_keyring(keyring)
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
        snapshot: bool = False,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` (1, 2, 3, ...); make it current when ``promote``.

        A promoted version is pinned (retention keeps it) unless it is a learner's periodic ``snapshot``. Without a
        ``reference`` the version inherits its parent's (the signed digest, not a copy of the profile).
        """
        check_name(name)
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        inherited = None
        if parent is not None:
            try:
                inherited = self.get(name, parent).reference_sha256
            except UnknownModelError:
                raise UnknownModelError(f"model {name!r} has no parent version {parent}") from None
        blob = dump_model(model)
        reference_json = reference.to_json() if reference is not None else None
        reference_sha256 = sha256_hex(reference_json.encode()) if reference_json is not None else inherited
        version = int(self.client.incr(self._key(name, "seq")))
        meta = self.sign(
            ModelVersion(
                name=name,
                version=version,
                parent=parent,
                created_ms=int(time.time() * 1000),
                sha256=sha256_hex(blob),
                hmac="",
                task=task,
                schema=schema.to_dict(),
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                data_summary=dict(data_summary or {}),
                note=note,
                reference_sha256=reference_sha256,
            )
        )
        self.client.sadd(self._names_key, name)  # not in the transaction: another slot on a Redis Cluster
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(name, f"blob:{version}"), blob)
            pipe.hset(self._key(name, "versions"), str(version), meta.to_json())
            if reference_json is not None:
                pipe.set(self._key(name, f"reference:{reference_sha256}"), reference_json)
            if promote:
                pipe.set(self._key(name, "current"), version)
                pipe.rpush(self._key(name, "history"), version)
                if not snapshot:
                    pipe.sadd(self._key(name, "pinned"), version)
            pipe.execute()
        return meta

    def promote(self, name: str, version: int) -> ModelVersion:
        """Pin ``version`` and make it current, pushed onto the promotion history (unless it already is current).

        A version whose blob fails verification is refused with :class:`IntegrityError`.
        """
        meta = self.verify(name, version)
        current_key, history_key = self._key(name, "current"), self._key(name, "history")

        def swap(pipe: Any) -> None:
            current = pipe.get(current_key)
            pipe.multi()
            pipe.sadd(self._key(name, "pinned"), version)
            if current is None or int(current) != version:
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
        raw = self.client.get(self.current_key(name))
        return None if raw is None else int(raw)

    def current_key(self, name: str) -> str:
        """The key holding the current version of ``name`` (for a caller that reads it with an async client)."""
        return self._key(name, "current")

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """Metadata of ``version`` (the current one when None), its signature verified (:class:`IntegrityError`)."""
        version = self._resolve(name, version)
        raw = self.client.hget(self._key(name, "versions"), str(version))
        if raw is None:
            raise UnknownModelError(f"model {name!r} has no version {version}")
        return self._verified(name, version, ModelVersion.from_json(raw))

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
        """Reference profile of ``version`` (stored with it or inherited from its parent), else None.

        Two reads whatever the lineage's length; the profile must match the digest the version signed
        (:class:`IntegrityError` otherwise). A version registered before profiles were stored by digest finds its
        own under its version number (in the same read); one that inherited it then has none.
        """
        meta = self.get(name, version)
        if meta.reference_sha256 is None:
            return None
        by_digest, by_version = (self._key(name, f"reference:{v}") for v in (meta.reference_sha256, meta.version))
        raw = next((r for r in self.client.mget([by_digest, by_version]) if r is not None), None)
        where = f"model {name!r} version {meta.version}"
        if raw is None:
            raise IntegrityError(f"{where}: reference profile missing")
        if not hmac.compare_digest(sha256_hex(raw if isinstance(raw, bytes) else raw.encode()), meta.reference_sha256):
            raise IntegrityError(f"{where}: reference profile does not match its signed SHA-256")
        return ReferenceProfile.from_json(_text(raw))

    def pinned(self, name: str) -> set[int]:
        """Versions of ``name`` retention always keeps (promoted other than as a learner snapshot)."""
        return {int(v) for v in self.client.smembers(self._key(name, "pinned"))}

    # --- retention ----------------------------------------------------------------------------
    def prune(self, name: str, keep: int, in_use: Iterable[int] = ()) -> list[int]:
        """Delete every version of ``name`` but the newest ``keep``, the pinned ones, the current one, the challenger
        and ``in_use``; the versions deleted, oldest first (:class:`UnknownModelError` for an unknown name).

        Blobs, metadata and promotion-history entries go with them, and each reference profile no kept version
        signed. One transaction, watched: a promotion or a new challenger meanwhile makes it start again.
        """
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self._require_name(name)
        key = partial(self._key, name)
        watched = key("versions"), key("current"), key("challenger"), key("pinned")

        def cut(pipe: Any) -> list[int]:
            metas = {int(v): ModelVersion.from_json(raw) for v, raw in pipe.hgetall(key("versions")).items()}
            held = [pipe.get(key("current")), pipe.get(key("challenger"))]
            kept = set(sorted(metas)[-keep:]) | {int(v) for v in held if v is not None} | set(in_use)
            kept |= {int(v) for v in pipe.smembers(key("pinned"))}
            doomed = sorted(set(metas) - kept)
            if not doomed:
                pipe.unwatch()
                return []
            signed = {metas[v].reference_sha256 for v in kept if v in metas}
            profiles = {metas[v].reference_sha256 for v in doomed} - signed - {None}
            pipe.multi()
            pipe.hdel(key("versions"), *map(str, doomed))
            pipe.delete(*(key(f"{part}:{v}") for v in doomed for part in ("blob", "reference")))
            if profiles:
                pipe.delete(*(key(f"reference:{sha}") for sha in profiles))
            for v in doomed:
                pipe.lrem(key("history"), 0, v)
            return doomed

        return list(self.client.transaction(cut, *watched, value_from_callable=True))

    # --- signing ------------------------------------------------------------------------------
    def sign(self, meta: ModelVersion) -> ModelVersion:
        """``meta`` with its signature made by the current key."""
        return replace(meta, hmac=self.keyring.sign(meta.signed_bytes(), "model-version"))

    def resign(self, name: str) -> list[int]:
        """Re-sign every version of ``name`` not signed by the current key (each verified first); the versions
        re-signed, oldest first. Blobs and profiles are untouched: only the signatures change."""
        done = []
        key = self._key(name, "versions")
        for field, raw in self.client.hgetall(key).items():
            meta = self._verified(name, int(field), ModelVersion.from_json(raw))
            self._check(meta, self.client.get(self._key(name, f"blob:{meta.version}")))
            if self.keyring.signed_by_current(meta.hmac):
                continue
            self.client.hset(key, str(meta.version), self.sign(meta).to_json())
            done.append(meta.version)
        return sorted(done)

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
        return self._verified(name, version, ModelVersion.from_json(raw_meta)), blob

    def _verified(self, name: str, version: int, meta: ModelVersion) -> ModelVersion:
        """``meta`` if its signature checks out and it is what was asked for (name, version)."""
        where = f"model {name!r} version {version}"
        try:
            self.keyring.verify(meta.signed_bytes(), meta.hmac, "model-version")
        except IntegrityError as exc:
            raise IntegrityError(f"{where}: metadata {exc}") from None
        if (meta.name, meta.version) != (name, version):
            raise IntegrityError(f"{where}: holds the signed metadata of {meta.name!r} version {meta.version}")
        return meta

    def _check(self, meta: ModelVersion, blob: bytes | None) -> None:
        where = f"model {meta.name!r} version {meta.version}"
        if blob is None:
            raise IntegrityError(f"{where} has metadata but no blob")
        if not hmac.compare_digest(sha256_hex(blob), meta.sha256):
            raise IntegrityError(f"{where}: blob SHA-256 does not match its signed metadata (replaced blob)")

    def _resolve(self, name: str, version: int | None) -> int:
        if version is not None:
            return int(version)
        current = self.current_version(name)
        if current is None:
            self._require_name(name)
            raise UnknownModelError(f"model {name!r} has no current (promoted) version")
        return current
