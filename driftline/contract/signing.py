"""Signing primitives: SHA-256 digests and HMAC-SHA256 signatures, verified in constant time.

Every stored model blob and checkpoint is signed with the deployment's key and verified *before* it is unpickled
(loading a pickle runs code): a blob that fails raises :class:`IntegrityError` and is never loaded.

Examples
--------
>>> blob = b"model bytes"
>>> digest, mac = sha256_hex(blob), sign_blob(b"key", blob)
>>> verify_blob(b"key", blob, digest, mac)
>>> verify_blob(b"other-key", blob, digest, mac)
Traceback (most recent call last):
...
driftline.contract.signing.IntegrityError: model blob HMAC does not match (wrong key or forged blob)
"""

from __future__ import annotations

import hashlib
import hmac


class IntegrityError(Exception):
    """A stored model blob failed SHA-256/HMAC verification; it was not unpickled."""


def sha256_hex(blob: bytes) -> str:
    """Hex SHA-256 of ``blob``."""
    return hashlib.sha256(blob).hexdigest()


def sign_blob(key: bytes, blob: bytes) -> str:
    """Hex HMAC-SHA256 of ``blob`` with ``key``."""
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def verify_blob(key: bytes, blob: bytes, expected_sha256: str, expected_hmac: str) -> None:
    """Raise :class:`IntegrityError` unless ``blob`` matches both its SHA-256 and its HMAC (constant time)."""
    if not hmac.compare_digest(sha256_hex(blob), expected_sha256):
        raise IntegrityError("model blob SHA-256 does not match its metadata (corrupted or replaced blob)")
    if not hmac.compare_digest(sign_blob(key, blob), expected_hmac):
        raise IntegrityError("model blob HMAC does not match (wrong key or forged blob)")
