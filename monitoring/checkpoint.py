"""Checkpoint envelopes: compressed pickles, optionally signed and verified before loading.

Detector state holds River objects, so checkpoints are pickles, and loading a pickle runs code: with a key (or a
keyring), the blob is sealed in driftline's one signing format (:func:`driftline.contract.signing.seal`, the
same as learner checkpoints) and its signature is checked *before* anything is unpickled; with a key configured,
unsigned blobs are refused too. Every refusal, including a blob written by an incompatible version of the code,
is a ``ValueError``.

Examples
--------
>>> blob = seal({"events": 3}, key=b"secret")
>>> unseal(blob, key=b"secret")
{'events': 3}
>>> unseal(blob, key=b"wrong")
Traceback (most recent call last):
...
ValueError: checkpoint signature refused: monitor signed with a key not in the keyring (key id ...)
>>> unseal(seal([1, 2]))
[1, 2]
>>> unseal(MAGIC + b"garbage")
Traceback (most recent call last):
...
ValueError: checkpoint cannot be loaded: error: Error -3 while decompressing data: incorrect header check
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any

from driftline.contract import signing
from driftline.contract.signing import IntegrityError, Keyring, as_keyring

#: First bytes of an unsigned checkpoint (signed ones start with :data:`driftline.contract.signing.SEAL_MAGIC`).
MAGIC = b"DLMON1U"
PURPOSE = "monitor"


def seal(obj: Any, key: Keyring | bytes | None = None, purpose: str = PURPOSE) -> bytes:
    """``obj`` pickled and compressed; signed for ``purpose`` when ``key`` is given."""
    return seal_pickled(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), key, purpose)


def seal_pickled(pickled: bytes, key: Keyring | bytes | None = None, purpose: str = PURPOSE) -> bytes:
    """:func:`seal` of an object pickled beforehand (pickle where the object is consistent, seal anywhere).

    >>> unseal(seal_pickled(pickle.dumps({"events": 3}), b"k"), b"k")
    {'events': 3}
    """
    payload = zlib.compress(pickled, 1)  # 2x faster than 6, 9% larger
    if key is None:
        return MAGIC + payload
    return signing.seal(as_keyring(key), payload, purpose)


def unseal(blob: bytes, key: Keyring | bytes | None = None, purpose: str = PURPOSE) -> Any:
    """The object in ``blob``; with ``key``, only after its signature (for ``purpose``) checked out."""
    if blob.startswith(signing.SEAL_MAGIC):
        if key is None:
            raise ValueError("signed checkpoint: a key is required")
        try:
            body = signing.unseal(as_keyring(key), blob, purpose)
        except IntegrityError as exc:
            raise ValueError(f"checkpoint signature refused: {exc}") from None
    elif not blob.startswith(MAGIC) or len(blob) <= len(MAGIC):
        raise ValueError("not a driftline checkpoint")
    elif key is not None:
        raise ValueError("unsigned checkpoint refused: a key was given")
    else:
        body = blob[len(MAGIC) :]
    try:
        return pickle.loads(zlib.decompress(body))  # noqa: S301 - verified above when a key is configured
    except (pickle.UnpicklingError, zlib.error, EOFError, AttributeError, ImportError, TypeError) as exc:
        # e.g. written by another version of the code: the caller starts fresh instead of crashing
        raise ValueError(f"checkpoint cannot be loaded: {exc.__class__.__name__}: {exc}") from exc
