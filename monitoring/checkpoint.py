"""Checkpoint envelopes: compressed pickles, optionally signed with HMAC-SHA256 and verified before loading.

Detector state holds River objects, so checkpoints are pickles, and loading a pickle runs code: with a key, the
signature is checked *before* anything is unpickled and a bad one is refused (as for model blobs, see
:mod:`driftline.contract.signing`); with a key configured, unsigned blobs are refused too. Every refusal, including
a blob written by an incompatible version of the code, is a ``ValueError``.

Examples
--------
>>> blob = seal({"events": 3}, key=b"secret")
>>> unseal(blob, key=b"secret")
{'events': 3}
>>> unseal(blob, key=b"wrong")
Traceback (most recent call last):
...
ValueError: checkpoint signature mismatch: refusing to load it
>>> unseal(seal([1, 2]))
[1, 2]
>>> unseal(MAGIC + b"U" + b"garbage")
Traceback (most recent call last):
...
ValueError: checkpoint cannot be loaded: error: Error -3 while decompressing data: incorrect header check
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import zlib
from typing import Any

MAGIC = b"DLMON1"
_SIGNED, _UNSIGNED = b"S", b"U"


def seal(obj: Any, key: bytes | None = None) -> bytes:
    """``obj`` pickled and compressed; signed when ``key`` is given."""
    return seal_pickled(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), key)


def seal_pickled(pickled: bytes, key: bytes | None = None) -> bytes:
    """:func:`seal` of an object pickled beforehand (pickle where the object is consistent, seal anywhere).

    >>> unseal(seal_pickled(pickle.dumps({"events": 3}), b"k"), b"k")
    {'events': 3}
    """
    payload = zlib.compress(pickled, 1)  # 2x faster than 6, 9% larger
    if key is None:
        return MAGIC + _UNSIGNED + payload
    return MAGIC + _SIGNED + hmac.new(key, payload, hashlib.sha256).digest() + payload


def unseal(blob: bytes, key: bytes | None = None) -> Any:
    """The object in ``blob``; with ``key``, only after its signature checked out."""
    if not blob.startswith(MAGIC) or len(blob) <= len(MAGIC):
        raise ValueError("not a driftline checkpoint")
    mode, body = blob[len(MAGIC) : len(MAGIC) + 1], blob[len(MAGIC) + 1 :]
    if mode == _SIGNED:
        if key is None:
            raise ValueError("signed checkpoint: a key is required")
        mac, body = body[:32], body[32:]
        if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
            raise ValueError("checkpoint signature mismatch: refusing to load it")
    elif mode != _UNSIGNED:
        raise ValueError("not a driftline checkpoint")
    elif key is not None:
        raise ValueError("unsigned checkpoint refused: a key was given")
    try:
        return pickle.loads(zlib.decompress(body))  # noqa: S301 - verified above when a key is configured
    except (pickle.UnpicklingError, zlib.error, EOFError, AttributeError, ImportError, TypeError) as exc:
        # e.g. written by another version of the code: the caller starts fresh instead of crashing
        raise ValueError(f"checkpoint cannot be loaded: {exc.__class__.__name__}: {exc}") from exc
